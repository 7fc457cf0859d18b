import Database from 'better-sqlite3';
import { EdgektError } from '../core/errors.js';
import { STORE_MIGRATIONS } from './migrations.js';

/** The connection type every store factory takes (better-sqlite3, synchronous). */
export type Db = Database.Database;

/**
 * One schema step. Versions are 1, 2, 3, … with no gaps; `PRAGMA user_version` records the last one
 * applied, so a module that needs a table appends a migration instead of editing an old one.
 */
export interface Migration {
  version: number;
  name: string;
  up(db: Db): void;
}

export interface OpenDatabaseOptions {
  /** Applied in order after the pragmas; default STORE_MIGRATIONS (jobs, outbox, ledger, checkpoints, versions). */
  migrations?: readonly Migration[];
  /** How long a statement waits for another connection's write lock before SQLITE_BUSY. Default 5000. */
  busyTimeoutMs?: number;
}

/**
 * Opens (creating if needed) the agent's SQLite file with the pragmas the crash-safety promises rest on:
 *
 * - `journal_mode=WAL`: readers never block the writer, and a commit is one append to the WAL.
 * - `synchronous=FULL`: in WAL mode, NORMAL is safe against a process crash but a power cut may roll
 *   back the last commits. That would break two promises: `BlockLedger.mark` is durable when it
 *   returns, and an outbox row whose report may already have reached the coordinator must not vanish
 *   (the device would then re-send the same `${jobId}:${seq}` key with different content, which the
 *   coordinator drops as a duplicate). FULL adds one fsync of the WAL per commit; commits here are
 *   few (state changes, rate-limited progress, one per 64–256 KB block), so the cost is small.
 * - `foreign_keys=ON`: SQLite leaves it off per connection unless asked.
 * - `busy_timeout`: a second connection (CLI inspection, a test) waits instead of failing.
 */
export function openDatabase(file: string, options: OpenDatabaseOptions = {}): Db {
  const db = new Database(file);
  try {
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal' && file !== ':memory:') {
      throw new EdgektError('EDGEKT_ERR_STORE', `${file}: journal_mode is ${String(mode)}, WAL required`, { file });
    }
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
    migrate(db, options.migrations ?? STORE_MIGRATIONS);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/** The schema version recorded in the file (0 for a new file). */
export function schemaVersion(db: Db): number {
  const v = db.pragma('user_version', { simple: true });
  return typeof v === 'number' ? v : 0;
}

/**
 * Applies the migrations newer than the file's `user_version`, each in its own transaction together
 * with the version bump, so a crash mid-migration leaves the previous version intact. Refuses a file
 * written by a newer build (downgraded software must not guess at a schema it does not know).
 * Returns the version after migrating.
 */
export function migrate(db: Db, migrations: readonly Migration[]): number {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new EdgektError('EDGEKT_ERR_STORE', `migration ${m.name} has version ${m.version}, expected ${i + 1}`, { name: m.name });
    }
  });
  const current = schemaVersion(db);
  if (current > migrations.length) {
    throw new EdgektError('EDGEKT_ERR_STORE', `store schema ${current} is newer than this build knows (${migrations.length})`, {
      current,
      known: migrations.length,
    });
  }
  for (const m of migrations.slice(current)) {
    db.transaction(() => {
      m.up(db);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return schemaVersion(db);
}
