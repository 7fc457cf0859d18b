import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresCoordinatorStore, type Rollout } from '../src/store/coordinator/index.js';
import {
  apiClient, coordinatorFiles, executionsOf, pad, publishTeacher, startSimFleet, startTestCoordinator, waitForDevices, waitForRollout, waitUntil,
} from './helpers/coordinator-harness.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';
import { findPostgresBinaries, startPostgres, type TestPostgres } from './helpers/postgres.js';

const binaries = findPostgresBinaries();
if (!binaries) console.warn('coordinator-postgres: skipped, no PostgreSQL binaries (initdb, pg_ctl) found; set EDGEKT_PG_BIN or install postgresql');

describe.skipIf(!binaries)('two coordinators, one broker, one PostgreSQL', () => {
  let broker: Mosquitto;
  let pg: TestPostgres;
  const cleanups: Array<() => Promise<void> | void> = [];
  beforeAll(async () => {
    [broker, pg] = await Promise.all([startMosquitto(), startPostgres()]);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await broker?.stop();
    await pg?.stop();
  });

  it('share $share/edgekt reports: a rollout to 20 devices completes, each device dispatched once, each result recorded once', async () => {
    const files = coordinatorFiles();
    cleanups.push(() => files.cleanup());
    const url = await pg.newDatabase();
    const [a, b] = await Promise.all(['ca', 'cb'].map(async (id) => startTestCoordinator({ id, brokerUrl: broker.url, files, store: await createPostgresCoordinatorStore(url) })));
    cleanups.push(() => a!.stop(), () => b!.stop());
    const devices = Array.from({ length: 20 }, (_, i) => ({ id: `p${pad(i)}`, behaviour: { stepMs: 20 } }));
    const fleet = await startSimFleet({ brokerUrl: broker.url, fleet: files.fleet, devices });
    cleanups.push(() => fleet.stop());
    await waitForDevices(a!.store, 20);
    const api = apiClient(a!.url, files.adminToken);
    const teacher = await publishTeacher(api);
    // Started through b's API, on the same database: whichever holds the lease dispatches.
    const started = await apiClient(b!.url, files.adminToken)('POST', '/api/rollouts', { teacherSha256: teacher, target: { kind: 'all' }, staging: { kind: 'percentages', steps: [25, 100] }, job: { dataset: 'digits' } });
    expect(started.status).toBe(200);
    const id = (started.body as Rollout).id;

    expect((await waitForRollout(a!.store, id, ['completed', 'aborted'], 60_000)).state).toBe('completed');
    await waitUntil('20 results', async () => ((await a!.store.listResults({ rolloutId: id }, { limit: 100 })).items.length >= 20 ? true : null), 20_000);
    const results = (await a!.store.listResults({ rolloutId: id }, { limit: 100 })).items;
    expect(results).toHaveLength(20);
    expect(new Set(results.map((r) => r.deviceId)).size).toBe(20);
    const ex = await executionsOf(b!.store, id);
    for (const d of fleet.ids) {
      expect(ex.get(d), d).toMatchObject({ state: 'succeeded', attempts: 1 });
      expect(fleet.jobs(d), d).toEqual([ex.get(d)!.jobId]);
      expect(results.find((r) => r.deviceId === d)?.jobId).toBe(ex.get(d)!.jobId);
    }
    expect(fleet.counters.duplicateJobs).toBe(0);
    // Each student was pulled and recorded by exactly one coordinator, and the job updates really were split.
    const verified = [a!, b!].map((c) => c.log.count('student received and verified'));
    expect(verified[0]! + verified[1]!).toBe(20);
    expect(verified[0]).toBeGreaterThan(0);
    expect(verified[1]).toBeGreaterThan(0);
    expect(a!.log.count(/^student refused/) + b!.log.count(/^student refused/)).toBe(0);
    // One lease holder dispatched the whole rollout.
    const lease = await a!.store.getRolloutLease(id);
    expect(['ca', 'cb']).toContain(lease?.owner);
  });
});
