import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSqliteCoordinatorStore, type Rollout } from '../src/store/coordinator/index.js';
import {
  apiClient, coordinatorFiles, executionsOf, pad, publishTeacher, sleep, startSimFleet, startTestCoordinator, waitForDevices, waitForRollout, waitUntil,
} from './helpers/coordinator-harness.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';

describe('coordinator restart mid-rollout (Mosquitto, SQLite)', () => {
  let broker: Mosquitto;
  const cleanups: Array<() => Promise<void> | void> = [];
  beforeAll(async () => {
    broker = await startMosquitto();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it('a new coordinator with the same id, store and artifacts carries the rollout on to completion, one dispatch per device', async () => {
    const files = coordinatorFiles();
    cleanups.push(() => files.cleanup());
    const a = await startTestCoordinator({ id: 'c1', brokerUrl: broker.url, files, store: await createSqliteCoordinatorStore(files.sqlite) });
    cleanups.push(() => a.stop());
    // ~8 × 150 ms a job: the rollout is still running when the coordinator goes away.
    const devices = Array.from({ length: 10 }, (_, i) => ({ id: `r${pad(i)}`, behaviour: { stepMs: 150 } }));
    const fleet = await startSimFleet({ brokerUrl: broker.url, fleet: files.fleet, devices });
    cleanups.push(() => fleet.stop());
    await waitForDevices(a.store, devices.length);
    const api = apiClient(a.url, files.adminToken);
    const teacher = await publishTeacher(api);
    const started = await api('POST', '/api/rollouts', { teacherSha256: teacher, target: { kind: 'all' }, staging: { kind: 'percentages', steps: [20, 50, 100] }, job: { dataset: 'digits' } });
    expect(started.status).toBe(200);
    const id = (started.body as Rollout).id;

    // Stop once the second step is dispatched and past its download (in-flight updates then queue in the coordinator's session).
    await waitUntil('second step in flight', async () => {
      const ex = await executionsOf(a.store, id);
      const step2 = ['r02', 'r03', 'r04'].map((d) => ex.get(d)?.state);
      return step2.every((s) => s === 'lightening' || s === 'distilling');
    }, 20_000, 20);
    await a.stop();
    const peek = await createSqliteCoordinatorStore(files.sqlite);
    const atStop = await executionsOf(peek, id);
    await peek.close();
    expect(atStop.size).toBe(5);
    await sleep(800); // devices keep reporting while no coordinator is connected

    const b = await startTestCoordinator({ id: 'c1', brokerUrl: broker.url, files, store: await createSqliteCoordinatorStore(files.sqlite) });
    cleanups.push(() => b.stop());
    const done = await waitForRollout(b.store, id, ['completed', 'aborted'], 30_000);
    expect(done.state).toBe('completed');
    const ex = await executionsOf(b.store, id);
    expect(ex.size).toBe(10);
    for (const d of fleet.ids) {
      expect(ex.get(d), d).toMatchObject({ state: 'succeeded', attempts: 1 });
      expect(fleet.jobs(d), d).toEqual([ex.get(d)!.jobId]);
    }
    expect(fleet.counters.duplicateJobs).toBe(0);
    await waitUntil('10 results', async () => ((await b.store.listResults({ rolloutId: id }, { limit: 100 })).items.length === 10 ? true : null), 10_000);
    const results = (await b.store.listResults({ rolloutId: id }, { limit: 100 })).items;
    expect(new Set(results.map((r) => r.deviceId)).size).toBe(10);
    // The step that was in flight at the stop finished through the restarted coordinator's session.
    for (const d of ['r02', 'r03', 'r04']) expect(results.find((r) => r.deviceId === d)).toBeDefined();
  });
});
