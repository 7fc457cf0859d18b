import pg from 'pg';
import { EdgektError } from '../../core/errors.js';
import { migrations, POSTGRES_TYPES } from './migrations.js';
import type { SqlDriver, SqlRow, SqlValue } from './sql-driver.js';
import { createSqlCoordinatorStore, type CoordinatorStoreOptions } from './sql-store.js';
import type { CoordinatorStore } from './types.js';

const JSON_OID = 114;
const JSONB_OID = 3802;
const INT8_OID = 20;
/** Any constant: serialises concurrent migrations of coordinators starting together. */
const MIGRATION_LOCK = 0x6564676b;

/** JSON comes back as text (the store parses it with zod, as on SQLite) and BIGINT as a number (epoch ms fit). */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === JSON_OID || oid === JSONB_OID) return (v: string) => v;
    if (oid === INT8_OID) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** The store writes `?`; PostgreSQL wants `$1, $2, …` (no `?` occurs in the store's SQL otherwise). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function isUniqueViolation(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && e.code === '23505';
}

type Queryable = pg.Pool | pg.PoolClient;

async function query(q: Queryable, sql: string, params: readonly SqlValue[] = []): Promise<SqlRow[]> {
  const r = await q.query<SqlRow>({ text: numbered(sql), values: [...params], types });
  return r.rows ?? [];
}

function createPgDriver(pool: pg.Pool, ownsPool: boolean): SqlDriver {
  let closed = false;
  const inClient = (client: pg.PoolClient): SqlDriver => {
    const d: SqlDriver = {
      dialect: 'postgres',
      query: (sql, params) => query(client, sql, params),
      transaction: (fn) => fn(d),
      isUniqueViolation,
      close: async () => undefined,
    };
    return d;
  };
  return {
    dialect: 'postgres',
    query: (sql, params) => query(pool, sql, params),
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const out = await fn(inClient(client));
        await client.query('COMMIT');
        return out;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw e;
      } finally {
        client.release();
      }
    },
    isUniqueViolation,
    close: async () => {
      if (ownsPool && !closed) await pool.end();
      closed = true;
    },
  };
}

async function migrate(pool: pg.Pool): Promise<void> {
  const steps = migrations(POSTGRES_TYPES);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const rows = await query(client, 'SELECT version FROM schema_version');
    if (rows.length === 0) await client.query('INSERT INTO schema_version (version) VALUES (0)');
    const current = rows.length === 0 ? 0 : Number(rows[0]!.version);
    if (current > steps.length) {
      throw new EdgektError('EDGEKT_ERR_STORE_SCHEMA', `coordinator store is at schema ${current}, this build knows ${steps.length}`);
    }
    for (let v = current; v < steps.length; v++) {
      for (const sql of steps[v]!) await client.query(sql);
    }
    await client.query('UPDATE schema_version SET version = $1', [steps.length]);
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}

/**
 * The store several coordinators share. Given a URL it owns its pool (close ends it); given a pool,
 * the caller keeps ownership. Migrates on open, under an advisory lock.
 */
export async function createPostgresCoordinatorStore(target: string | pg.Pool, options: CoordinatorStoreOptions = {}): Promise<CoordinatorStore> {
  const ownsPool = typeof target === 'string';
  const pool = typeof target === 'string' ? new pg.Pool({ connectionString: target, max: 8 }) : target;
  try {
    await migrate(pool);
  } catch (e) {
    if (ownsPool) await pool.end();
    throw e;
  }
  return createSqlCoordinatorStore(createPgDriver(pool, ownsPool), options);
}
