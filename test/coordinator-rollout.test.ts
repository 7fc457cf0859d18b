import { readdirSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SimBehaviour } from '../src/cli/fleet-sim/sim-device.js';
import { createSqliteCoordinatorStore, type Rollout } from '../src/store/coordinator/index.js';
import {
  apiClient, coordinatorFiles, executionsOf, pad, publishTeacher, sleep, startSimFleet, startTestCoordinator, waitForDevices, waitForRollout, waitUntil,
  type CoordinatorFiles, type SimFleet, type TestCoordinator,
} from './helpers/coordinator-harness.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';

/**
 * A real coordinator (in-process, SQLite, HTTP on port 0) and simulated devices on a spawned
 * Mosquitto: staged rollouts that abort, time out and retry, and students that must be refused.
 */
describe('coordinator rollouts (Mosquitto, SQLite, simulated devices)', () => {
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

  async function setup(devices: Array<{ id: string; behaviour?: SimBehaviour }>, redispatchMs?: number): Promise<{ files: CoordinatorFiles; c: TestCoordinator; fleet: SimFleet; teacher: string; api: ReturnType<typeof apiClient> }> {
    const files = coordinatorFiles();
    cleanups.push(() => files.cleanup());
    const c = await startTestCoordinator({ id: 'c1', brokerUrl: broker.url, files, store: await createSqliteCoordinatorStore(files.sqlite), tickMs: 100, ...(redispatchMs ? { redispatchMs } : {}) });
    cleanups.push(() => c.stop());
    const fleet = await startSimFleet({ brokerUrl: broker.url, fleet: files.fleet, devices });
    cleanups.push(() => fleet.stop());
    await waitForDevices(c.store, devices.length);
    const api = apiClient(c.url, files.adminToken);
    return { files, c, fleet, api, teacher: await publishTeacher(api) };
  }

  async function startRollout(api: ReturnType<typeof apiClient>, spec: Record<string, unknown>): Promise<Rollout> {
    const r = await api('POST', '/api/rollouts', spec);
    expect(r.status).toBe(200);
    return r.body as Rollout;
  }

  it('a staged rollout halts by itself past the failure threshold: later steps never dispatched, in-flight devices cancelled', async () => {
    const fail: SimBehaviour = { fail: { code: 'EDGEKT_ERR_WORKER' }, stepMs: 50 };
    // Sorted targets d00..d09; steps 20/50/100 % admit d00-d01, then d02-d04, then d05-d09.
    const behaviour = (i: number): SimBehaviour | undefined => ([2, 3, 5, 6, 7, 8].includes(i) ? fail : i === 4 ? { hang: true } : undefined);
    const devices = Array.from({ length: 10 }, (_, i) => ({ id: `d${pad(i)}`, ...(behaviour(i) ? { behaviour: behaviour(i)! } : {}) }));
    const { c, fleet, api, teacher } = await setup(devices);
    const r = await startRollout(api, {
      teacherSha256: teacher, target: { kind: 'all' }, staging: { kind: 'percentages', steps: [20, 50, 100] },
      abort: { failureShare: 0.5, minFinished: 2 }, job: { dataset: 'digits' },
    });

    await waitForRollout(c.store, r.id, ['aborted', 'completed']);
    await sleep(1000); // ~10 ticks: nothing more may be dispatched
    expect((await c.store.getRollout(r.id))?.state).toBe('aborted');
    const ex = await executionsOf(c.store, r.id);
    expect([...ex.keys()]).toEqual(['d00', 'd01', 'd02', 'd03', 'd04']);
    for (const d of ['d05', 'd06', 'd07', 'd08', 'd09']) expect(fleet.jobs(d)).toEqual([]);
    for (const d of ['d00', 'd01', 'd02', 'd03', 'd04']) expect(fleet.jobs(d)).toHaveLength(1);
    expect(ex.get('d02')).toMatchObject({ state: 'failed', error: { code: 'EDGEKT_ERR_WORKER' } });
    expect(ex.get('d03')).toMatchObject({ state: 'failed', error: { code: 'EDGEKT_ERR_WORKER' } });
    // The hanging device was in flight: it got a cancel for its job and answered `canceled`.
    const d04 = ex.get('d04')!;
    expect(fleet.cancels('d04')).toEqual([d04.jobId]);
    await waitUntil('d04 canceled', async () => (await c.store.getExecution(d04.jobId))?.state === 'canceled');
    // Finished devices got no cancel.
    for (const d of ['d00', 'd01', 'd02', 'd03']) expect(fleet.cancels(d)).toEqual([]);
    expect(c.log.count('rollout aborted')).toBe(1);
  });

  it('a timed-out device is cancelled and retried, then marked timed_out; the rollout completes', async () => {
    const { c, fleet, api, teacher } = await setup([{ id: 'h00', behaviour: { hang: true } }, { id: 'h01' }]);
    const r = await startRollout(api, {
      teacherSha256: teacher, target: { kind: 'all' }, staging: { kind: 'rate', perMinute: 10 },
      timeouts: { inProgressMs: 700 }, retries: { max: 1 }, job: { dataset: 'digits' },
    });
    const done = await waitForRollout(c.store, r.id, ['completed', 'aborted'], 20_000);
    expect(done.state).toBe('completed');
    const ex = await executionsOf(c.store, r.id);
    expect(ex.get('h00')).toMatchObject({ state: 'timed_out', attempts: 2, error: { code: 'EDGEKT_ERR_TIMEOUT' } });
    expect(ex.get('h01')).toMatchObject({ state: 'succeeded', attempts: 1 });
    const jobs = fleet.jobs('h00');
    expect(jobs).toHaveLength(2);
    expect(jobs[1]).toBe(ex.get('h00')!.jobId);
    expect(fleet.jobs('h01')).toHaveLength(1);
    // Each timed-out attempt is cancelled on the device, else a real agent (one job at a time) would keep the retry queued behind the stuck one.
    await waitUntil('both attempts cancelled', () => fleet.cancels('h00').length >= 2);
    expect(fleet.cancels('h00')).toEqual(jobs);
    // The device's late `canceled` for the final attempt does not overwrite timed_out (fenced seq).
    await sleep(300);
    expect((await c.store.getExecution(jobs[1]!))?.state).toBe('timed_out');
    expect(fleet.counters.duplicateJobs).toBe(0);
  });

  it('refuses a student with a forged signature or bytes that do not match its hash; records the good one', async () => {
    const { c, api, teacher, files } = await setup([{ id: 's00' }, { id: 's01', behaviour: { badStudentSignature: true } }, { id: 's02', behaviour: { badStudentHash: true } }]);
    const r = await startRollout(api, { teacherSha256: teacher, target: { kind: 'all' }, job: { dataset: 'digits' } });
    await waitUntil('refusals logged', () => c.log.count(/^student refused/) >= 2 && c.log.count('student received and verified') >= 1, 30_000);
    const results = (await api('GET', `/api/results?rollout=${r.id}`)).body as { items: Array<{ deviceId: string; studentSha256: string }> };
    expect(results.items.map((x) => x.deviceId)).toEqual(['s00']);
    expect(await c.store.listResults({ deviceId: 's01' }, { limit: 10 })).toEqual({ items: [], nextCursor: null });
    expect(await c.store.listResults({ deviceId: 's02' }, { limit: 10 })).toEqual({ items: [], nextCursor: null });
    const refused = c.log.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('student refused'));
    expect(Object.fromEntries(refused.map((l) => [l.deviceId, l.code]))).toEqual({ s01: 'EDGEKT_ERR_SIGNATURE', s02: 'EDGEKT_ERR_HASH' });
    // A refused student is a failed execution (it counts against the abort threshold), with the refusal's code.
    const ex = await executionsOf(c.store, r.id);
    expect(ex.get('s00')).toMatchObject({ state: 'succeeded' });
    expect(ex.get('s01')).toMatchObject({ state: 'failed', error: { code: 'EDGEKT_ERR_SIGNATURE' } });
    expect(ex.get('s02')).toMatchObject({ state: 'failed', error: { code: 'EDGEKT_ERR_HASH' } });
    expect((await waitForRollout(c.store, r.id, ['completed', 'aborted'])).state).toBe('completed');
    // Refused bytes are not left behind in the artifacts dir.
    expect(readdirSync(files.artifactsDir).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it('publishes a job again when its device never acknowledged it, under the same job id', async () => {
    const { c, api, teacher, fleet } = await setup([{ id: 'l00', behaviour: { loseFirstJob: true } }, { id: 'l01' }], 500);
    const r = await startRollout(api, { teacherSha256: teacher, target: { kind: 'all' }, job: { dataset: 'digits' } });
    expect((await waitForRollout(c.store, r.id, ['completed', 'aborted'], 30_000)).state).toBe('completed');
    const ex = await executionsOf(c.store, r.id);
    expect(ex.get('l00')).toMatchObject({ state: 'succeeded', attempts: 1 });
    expect(fleet.counters.duplicateJobs).toBe(0);
  });
});
