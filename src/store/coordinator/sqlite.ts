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

/** Statements of one batch at most (a batch is one transaction). */
const MAX_BATCH = 1000;

interface Pending {
  sql: string;
  params: readonly SqlValue[];
  resolve: (rows: SqlRow[]) => void;
  reject: (e: unknown) => void;
}

/**
 * better-sqlite3 is synchronous, but the store's callers are async: without a queue, a statement of
 * one caller could run inside another caller's open transaction. Every call therefore waits its turn.
 *
 * Single statements (`query` outside `transaction`) that queue up while the database is busy, or
 * arrive in the same event-loop turn, run as one batch inside one transaction: a fleet's job
 * updates and telemetry cost one commit per batch instead of one each. Each statement keeps its
 * own outcome: a failing statement (a constraint) is undone alone (SQLite's statement rollback)
 * and rejects only its caller; results are handed out after COMMIT. A batch closes when it starts
 * or when a transaction is queued after it, so calls still run in the order they were made.
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
  /** Runs each statement on its own (autocommit), settling each caller. */
  const runEach = (items: readonly Pending[]): void => {
    for (const p of items) {
      try {
        p.resolve(run(p.sql, p.params));
      } catch (e) {
        p.reject(e);
      }
    }
  };
  const runBatch = (items: Pending[]): void => {
    if (items.length === 1) return runEach(items);
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch (e) {
      for (const p of items) p.reject(e);
      return;
    }
    const done: Array<{ p: Pending; rows: SqlRow[] } | { p: Pending; error: unknown }> = [];
    try {
      for (const p of items) {
        try {
          done.push({ p, rows: run(p.sql, p.params) });
        } catch (error) {
          // Some errors (disk full, I/O) roll the whole transaction back: redo the rest one by one.
          if (!db.inTransaction) throw Object.assign(new Error('batch rolled back'), { failed: p, error });
          done.push({ p, error });
        }
      }
      db.exec('COMMIT');
    } catch (e) {
      if (db.inTransaction) db.exec('ROLLBACK');
      const failed = (e as { failed?: Pending }).failed;
      failed?.reject((e as { error: unknown }).error);
      return runEach(items.filter((p) => p !== failed));
    }
    for (const d of done) {
      if ('rows' in d) d.p.resolve(d.rows);
      else d.p.reject(d.error);
    }
  };
  let open: Pending[] | null = null;
  const batched = (sql: string, params: readonly SqlValue[]): Promise<SqlRow[]> =>
    new Promise<SqlRow[]>((resolve, reject) => {
      if (!open || open.length >= MAX_BATCH) {
        const batch: Pending[] = [];
        open = batch;
        void exclusive(async () => {
          if (open === batch) open = null;
          runBatch(batch);
        });
      }
      open.push({ sql, params, resolve, reject });
    });
  const inTx: SqlDriver = {
    dialect: 'sqlite',
    query: async (sql, params = []) => run(sql, params),
    transaction: (fn) => fn(inTx),
    isUniqueViolation: isConstraint,
    close: async () => undefined,
  };
  return {
    ...inTx,
    query: (sql, params = []) => batched(sql, params),
    transaction: (fn) => {
      open = null; // later single statements queue behind this transaction
      return exclusive(async () => {
        db.exec('BEGIN IMMEDIATE');
        try {
          const out = await fn(inTx);
          db.exec('COMMIT');
          return out;
        } catch (e) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw e;
        }
      });
    },
    close: () => {
      open = null;
      return exclusive(async () => void db.close());
    },
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
