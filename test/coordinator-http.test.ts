import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSqliteCoordinatorStore, type Rollout } from '../src/store/coordinator/index.js';
import {
  apiClient, coordinatorFiles, publishTeacher, startSimFleet, startTestCoordinator, waitForDevices, waitForRollout, waitUntil,
  type Api, type CoordinatorFiles, type SimFleet, type TestCoordinator,
} from './helpers/coordinator-harness.js';
import { ROOT } from './helpers/cli.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';

const BIN = path.join(ROOT, 'bin', 'edgekt.js');

/** The built CLI (npm test builds dist/ first), run without blocking this process: the coordinator under test lives here. */
function runCliAsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    p.once('error', reject);
    p.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The value of one Prometheus sample line (`name{labels} value`), null when absent. */
function sample(text: string, name: string, labels = ''): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : null;
}

describe('coordinator HTTP API: tokens, /healthz, /metrics', () => {
  let broker: Mosquitto;
  let files: CoordinatorFiles;
  let c: TestCoordinator;
  let fleet: SimFleet;
  let api: Api;
  let teacher: string;
  const spec = (): Record<string, unknown> => ({ teacherSha256: teacher, target: { kind: 'all' }, job: { dataset: 'digits' } });

  beforeAll(async () => {
    broker = await startMosquitto();
    files = coordinatorFiles();
    c = await startTestCoordinator({ id: 'h1', brokerUrl: broker.url, files, store: await createSqliteCoordinatorStore(files.sqlite) });
    fleet = await startSimFleet({ brokerUrl: broker.url, fleet: files.fleet, devices: [{ id: 'm00' }, { id: 'm01' }] });
    await waitForDevices(c.store, 2);
    api = apiClient(c.url, files.adminToken);
    teacher = await publishTeacher(api);
  });
  afterAll(async () => {
    await fleet?.stop();
    await c?.stop();
    await broker?.stop();
    files?.cleanup();
  });

  it('listens on the port the OS gave it (http.port 0)', () => {
    expect(c.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Number(new URL(c.url).port)).toBeGreaterThan(0);
  });

  it('a read-only token cannot start or abort a rollout (403 EDGEKT_ERR_FORBIDDEN), no token is 401, admin is 200', async () => {
    const ro = await api('POST', '/api/rollouts', spec(), files.readToken);
    expect(ro.status).toBe(403);
    expect(ro.body).toMatchObject({ error: { code: 'EDGEKT_ERR_FORBIDDEN' } });
    const none = await api('POST', '/api/rollouts', spec(), null);
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ error: { code: 'EDGEKT_ERR_AUTH' } });
    const wrong = await api('POST', '/api/rollouts', spec(), 'not-a-token');
    expect(wrong.status).toBe(403);
    expect(await c.store.listRollouts({})).toEqual([]);
    // The read token still reads.
    const list = await api('GET', '/api/rollouts', undefined, files.readToken);
    expect(list).toEqual({ status: 200, body: [] });

    const ok = await api('POST', '/api/rollouts', spec());
    expect(ok.status).toBe(200);
    const r = ok.body as Rollout;
    expect(r.state).toBe('running');
    const abort = await api('POST', `/api/rollouts/${r.id}/abort`, undefined, files.readToken);
    expect(abort.status).toBe(403);
    expect(abort.body).toMatchObject({ error: { code: 'EDGEKT_ERR_FORBIDDEN' } });
    expect((await waitForRollout(c.store, r.id, ['completed', 'aborted'])).state).toBe('completed');
  });

  it.skipIf(!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js')))('`edgekt fleet rollout start` with the read token file exits non-zero with EDGEKT_ERR_FORBIDDEN', async () => {
    const before = (await c.store.listRollouts({})).length;
    const ro = await runCliAsync(['fleet', '--url', c.url, '--token-file', files.readTokensFile, 'rollout', 'start', '--teacher', teacher, '--all']);
    expect(ro.code).not.toBe(0);
    expect(ro.code).toBe(3);
    expect(ro.stderr).toMatch(/^edgekt: error EDGEKT_ERR_FORBIDDEN: /m);
    expect((await c.store.listRollouts({})).length).toBe(before);
    const admin = await runCliAsync(['fleet', '--url', c.url, '--token-file', files.adminTokensFile, '--json', 'rollout', 'start', '--teacher', teacher, '--devices', 'm00']);
    expect(admin.stderr).toBe('');
    expect(admin.code).toBe(0);
    const id = (JSON.parse(admin.stdout) as { id: string }).id;
    expect((await waitForRollout(c.store, id, ['completed', 'aborted'])).state).toBe('completed');
  });

  it('/healthz answers without a token; /metrics is Prometheus text with devices, executions by state and blocks served', async () => {
    expect(await api('GET', '/healthz', undefined, null)).toEqual({ status: 200, body: { ok: true } });
    await waitUntil('a completed rollout', async () => (await c.store.listRollouts({ states: ['completed'] })).length > 0 ? true : null);
    const res = await fetch(new URL('/metrics', c.url));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/^# TYPE edgekt_devices_online gauge$/m);
    expect(sample(text, 'edgekt_devices_online')).toBe(2);
    expect(sample(text, 'edgekt_devices_total')).toBe(2);
    const [r] = await c.store.listRollouts({ states: ['completed'] });
    expect(sample(text, 'edgekt_rollout_executions', `{rollout="${r!.id}",state="succeeded"}`)).toBe(2);
    expect(sample(text, 'edgekt_rollout_progress_ratio', `{rollout="${r!.id}"}`)).toBe(1);
    // Two devices pulled the 2-file teacher (1 + 5 blocks of 1 KB) at least once each.
    expect(sample(text, 'edgekt_blocks_served_total')).toBeGreaterThanOrEqual(12);
    expect(fleet.counters.bytesPulled).toBeGreaterThan(0);
  });
});
