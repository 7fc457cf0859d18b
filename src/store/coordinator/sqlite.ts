import Database from 'better-sqlite3';
import { EdgektError } from '../../core/errors.js';
import { migrations, SQLITE_TYPES } from './migrations.js';
import type { SqlDriver, SqlRow, SqlValue } from './sql-driver.js';
import { createSqlCoordinatorStore, type CoordinatorStoreOptions } from './sql-store.js';
import type { CoordinatorStore } from './types.js';

function isConstraint(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'code' in e
    && (e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY');
}

/**
 * better-sqlite3 is synchronous, but the store's callers are async: without a queue, a statement of
 * one caller could run inside another caller's open transaction. Every call therefore waits its turn.
 */
function createSqliteDriver(db: Database.Database): SqlDriver {
  const cache = new Map<string, Database.Statement>();
  const run = (sql: string, params: readonly SqlValue[]): SqlRow[] => {
    let stmt = cache.get(sql);
    if (!stmt) {
      stmt = db.prepare(sql);
      if (cache.size > 500) cache.clear();
      cache.set(sql, stmt);
    }
    const values = params.map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v));
    if (stmt.reader) return stmt.all(...values) as SqlRow[];
    stmt.run(...values);
    return [];
  };
  let tail: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = tail.then(fn, fn);
    tail = next.catch(() => undefined);
    return next;
  };
  const inTx: SqlDriver = {
    dialect: 'sqlite',
    query: async (sql, params = []) => run(sql, params),
    transaction: (fn) => fn(inTx),
    isUniqueViolation: isConstraint,
    close: async () => undefined,
  };
  return {
    ...inTx,
    query: (sql, params = []) => exclusive(async () => run(sql, params)),
    transaction: (fn) =>
      exclusive(async () => {
        db.exec('BEGIN IMMEDIATE');
        try {
          const out = await fn(inTx);
          db.exec('COMMIT');
          return out;
        } catch (e) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw e;
        }
      }),
    close: () => exclusive(async () => void db.close()),
  };
}

function migrate(db: Database.Database): void {
  const steps = migrations(SQLITE_TYPES);
  const version = (): number => Number(db.pragma('user_version', { simple: true }));
  if (version() > steps.length) {
    throw new EdgektError('EDGEKT_ERR_STORE_SCHEMA', `coordinator store is at schema ${version()}, this build knows ${steps.length}`);
  }
  db.transaction(() => {
    for (let v = version(); v < steps.length; v++) {
      for (const sql of steps[v]!) db.exec(sql);
      db.pragma(`user_version = ${v + 1}`);
    }
  }).immediate();
}

/** The single-coordinator store: one SQLite file in WAL mode, migrated on open (PRAGMA user_version). */
export async function createSqliteCoordinatorStore(file: string, options: CoordinatorStoreOptions = {}): Promise<CoordinatorStore> {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db);
  } catch (e) {
    db.close();
    throw e;
  }
  return createSqlCoordinatorStore(createSqliteDriver(db), options);
}
