import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteCoordinatorStore, type Rollout } from '../src/store/coordinator/index.js';
import {
  apiClient, coordinatorFiles, executionsOf, pad, publishTeacher, sleep, startSimFleet, startTestCoordinator, waitForDevices, waitForRollout, waitUntil,
} from './helpers/coordinator-harness.js';
import { ROOT } from './helpers/cli.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';

const BIN = path.join(ROOT, 'bin', 'edgekt.js');
/** Teacher pulled, job not finished: a stop here leaves updates, not block requests (QoS 0, retried only after 30 s), in flight. */
const PAST_DOWNLOAD = ['verified', 'lightening', 'distilling', 'pruning', 'benchmarking', 'reporting'];

/** `edgekt coordinator --config FILE` as a child process; resolves with its API URL once it says so. */
async function spawnCoordinator(config: string): Promise<{ proc: ChildProcess; url: string; stderr: () => string }> {
  const proc = spawn(process.execPath, [BIN, 'coordinator', '--config', config], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const url = await waitUntil('coordinator API line', () => {
    if (proc.exitCode !== null) throw new Error(`coordinator exited ${proc.exitCode}: ${err}`);
    return /API on (http:\/\/\S+)/.exec(err)?.[1] ?? null;
  }, 30_000);
  return { proc, url, stderr: () => err };
}

function kill(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill(signal);
  });
}

describe('coordinator restart mid-rollout (Mosquitto, SQLite)', () => {
  let broker: Mosquitto;
  const cleanups: Array<() => Promise<void> | void> = [];
  // A broker per test: a stopped coordinator's persistent session stays in the `$share/edgekt` group
  // (session expiry 1 h), and Mosquitto keeps routing its share of pulls and updates to it.
  beforeEach(async () => {
    broker = await startMosquitto();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
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
      return step2.every((s) => PAST_DOWNLOAD.includes(s ?? ''));
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

  it.skipIf(!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js')))('the CLI coordinator, SIGKILLed mid-rollout and started again with the same config, completes it', async () => {
    const files = coordinatorFiles();
    cleanups.push(() => files.cleanup());
    const config = path.join(files.dir, 'coordinator.yaml');
    writeFileSync(config, [
      'id: k1', 'broker:', `  url: ${broker.url}`, 'store:', `  sqlite: ${files.sqlite}`,
      'http:', '  port: 0', `  adminTokensFile: ${files.adminTokensFile}`, `  readTokensFile: ${files.readTokensFile}`,
      `fleetKey: ${files.fleetKeyFile}`, `artifactsDir: ${files.artifactsDir}`, 'tickMs: 100', 'log:', '  level: warn', '',
    ].join('\n'));
    const first = await spawnCoordinator(config);
    cleanups.push(() => kill(first.proc, 'SIGKILL'));
    const store = await createSqliteCoordinatorStore(files.sqlite); // the test's own reader of the coordinator's WAL file
    cleanups.push(() => store.close());
    const devices = Array.from({ length: 10 }, (_, i) => ({ id: `k${pad(i)}`, behaviour: { stepMs: 150 } }));
    const fleet = await startSimFleet({ brokerUrl: broker.url, fleet: files.fleet, devices });
    cleanups.push(() => fleet.stop());
    await waitForDevices(store, devices.length);
    const teacher = await publishTeacher(apiClient(first.url, files.adminToken));
    const started = await apiClient(first.url, files.adminToken)('POST', '/api/rollouts', { teacherSha256: teacher, target: { kind: 'all' }, staging: { kind: 'percentages', steps: [20, 50, 100] }, job: { dataset: 'digits' } });
    expect(started.status).toBe(200);
    const id = (started.body as Rollout).id;
    await waitUntil('second step in flight', async () => {
      const ex = await executionsOf(store, id);
      return ['k02', 'k03', 'k04'].every((d) => PAST_DOWNLOAD.includes(ex.get(d)?.state ?? ''));
    }, 20_000, 20);
    await kill(first.proc, 'SIGKILL');
    await sleep(800);

    const second = await spawnCoordinator(config);
    cleanups.push(() => kill(second.proc, 'SIGTERM'));
    expect((await waitForRollout(store, id, ['completed', 'aborted'], 30_000)).state).toBe('completed');
    const ex = await executionsOf(store, id);
    for (const d of fleet.ids) {
      expect(ex.get(d), d).toMatchObject({ state: 'succeeded', attempts: 1 });
      expect(fleet.jobs(d), d).toEqual([ex.get(d)!.jobId]);
    }
    expect(fleet.counters.duplicateJobs).toBe(0);
    await waitUntil('10 results', async () => ((await store.listResults({ rolloutId: id }, { limit: 100 })).items.length === 10 ? true : null), 10_000);
    await kill(second.proc, 'SIGTERM');
    expect(second.proc.exitCode).toBe(0);
  });
});
