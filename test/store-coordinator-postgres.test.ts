import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresCoordinatorStore } from '../src/store/coordinator/postgres.js';
import type { CoordinatorStore } from '../src/store/coordinator/types.js';
import { coordinatorStoreContract, fakeClock, status } from './contracts/coordinator-store.contract.js';
import { findPostgresBinaries, startPostgres, type TestPostgres } from './helpers/postgres.js';

const binaries = findPostgresBinaries();
if (!binaries) console.warn('store-coordinator-postgres: skipped, no PostgreSQL binaries (initdb, pg_ctl) found; set EDGEKT_PG_BIN or install postgresql');

describe.skipIf(!binaries)('postgres coordinator store', () => {
  let server: TestPostgres;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });

  coordinatorStoreContract('postgres', async (clock) => {
    const url = await server.newDatabase();
    const opened: CoordinatorStore[] = [];
    const open = async (): Promise<CoordinatorStore> => {
      const s = await createPostgresCoordinatorStore(url, { clock });
      opened.push(s);
      return s;
    };
    const store = await open();
    return {
      store,
      open,
      async cleanup() {
        for (const s of opened) await s.close();
      },
    };
  });

  it('two coordinators migrating at once leave one schema at version 2; a newer schema is refused', async () => {
    const url = await server.newDatabase();
    const [a, b] = await Promise.all([createPostgresCoordinatorStore(url), createPostgresCoordinatorStore(url)]);
    await a.close();
    await b.close();
    const pool = new pg.Pool({ connectionString: url });
    try {
      expect((await pool.query('SELECT version FROM schema_version')).rows).toEqual([{ version: 3 }]);
      await pool.query('UPDATE schema_version SET version = 99');
      await expect(createPostgresCoordinatorStore(pool)).rejects.toMatchObject({ code: 'EDGEKT_ERR_STORE_SCHEMA' });
    } finally {
      await pool.end();
    }
  });

  it('uses a caller-owned pool without ending it, and parses JSONB on the way out', async () => {
    const pool = new pg.Pool({ connectionString: await server.newDatabase() });
    try {
      const store = await createPostgresCoordinatorStore(pool, { clock: fakeClock() });
      await store.upsertDevices([status('a'), status('b')]);
      await pool.query(`UPDATE devices SET capacity = '"a string"'::jsonb WHERE id = 'a'`);
      await expect(store.getDevice('a')).rejects.toMatchObject({ code: 'EDGEKT_ERR_STORE_DATA' });
      expect((await store.getDevice('b'))?.capacity).toEqual({ memoryMb: 4096 });
      await store.close();
      expect((await pool.query('SELECT COUNT(*)::int AS n FROM devices')).rows).toEqual([{ n: 2 }]);
    } finally {
      await pool.end();
    }
  });

  it('two coordinators racing for one lease: exactly one wins', async () => {
    const url = await server.newDatabase();
    const clock = fakeClock();
    const stores = await Promise.all([1, 2, 3, 4].map(() => createPostgresCoordinatorStore(url, { clock })));
    try {
      await stores[0]!.createRollout({ id: 'r1', spec: { teacherSha256: '0'.repeat(64), target: { kind: 'all' }, staging: { kind: 'percentages', steps: [100] } } });
      for (let round = 0; round < 5; round++) {
        clock.advance(20_000);
        const got = await Promise.all(stores.map((s, i) => s.acquireRolloutLease('r1', `coord-${i}-${round}`, 10_000)));
        expect(got.filter((l) => l !== null)).toHaveLength(1);
        expect(got.find((l) => l !== null)?.fence).toBe(round + 1);
      }
    } finally {
      for (const s of stores) await s.close();
    }
  });
});
