import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from './helpers/fleet.js';
import { launchChromium, startDashboardStack, until, type DashboardStack } from './helpers/dashboard.js';

// The dashboard end to end: real Mosquitto, a real coordinator, simulated devices, Debian chromium.
const DOCS = path.resolve(__dirname, '..', 'docs');
let stack: DashboardStack;
let browser: Browser;
let admin: Page;
let mqttClient: MqttClient;
const requests: string[] = [];

async function login(token: string): Promise<Page> {
  const page = await (await browser.newContext({ viewport: { width: 1360, height: 820 } })).newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(stack.url);
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('[data-testid=live].on');
  return page;
}

const api = async (p: string, init: RequestInit & { token?: string } = {}): Promise<Response> =>
  fetch(`${stack.url}${p}`, { ...init, headers: { authorization: `Bearer ${init.token ?? stack.adminToken}`, ...(init.body ? { 'content-type': 'application/json' } : {}) } });

/** A device played by the test client: its status and telemetry with known, varying values. */
async function labDevice(samples: number[]): Promise<void> {
  const id = 'lab-pi';
  const at = (): string => new Date().toISOString();
  await mqttClient.publishAsync(`edgekt/v1/devices/${id}/status`, JSON.stringify({ type: 'status', deviceId: id, state: 'online', at: at(), profile: 'pi4', groups: ['lab'] }), { qos: 1, retain: true });
  await until(async () => (await stack.store.getDevice(id))?.online === true, 'lab-pi registered');
  for (const cpu of samples) {
    await mqttClient.publishAsync(`edgekt/v1/devices/${id}/telemetry`, JSON.stringify({
      type: 'telemetry', deviceId: id, at: at(), cpuLoadPercent: cpu, loadAverage1: cpu / 25, memUsedMB: 300 + cpu, memTotalMB: 4096, rssMB: 120,
      temperatureC: 40 + cpu / 4, throttled: null, activeJob: null, paused: null,
    }), { qos: 1 });
    await new Promise((r) => setTimeout(r, 5));
  }
}

const progress = (jobId: string, received: number, total: number, seq: number): string =>
  JSON.stringify({ kind: 'progress', jobId, seq: 1, progressSeq: seq, state: 'downloading', at: Date.now(), progress: { stage: 'download', done: received, total, blocks: { received, total } } });

describe('dashboard in chromium', () => {
  beforeAll(async () => {
    stack = await startDashboardStack({ devices: 4 });
    browser = await launchChromium();
    mqttClient = await connectClient(stack.brokerUrl, `dash-test-${randomBytes(3).toString('hex')}`);
    await until(async () => (await stack.store.countDevices({ online: true })) === 4, 'four sim devices online');
  });
  afterAll(async () => {
    await mqttClient?.endAsync();
    await browser?.close();
    await stack?.stop();
  });

  it('refuses a wrong token and fills the device table, telemetry sparklines growing live', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(stack.url);
    await page.fill('#token', 'not-a-token');
    await page.click('#login button[type=submit]');
    await expect.poll(() => page.textContent('#login-error')).toBe('token refused');
    await page.context().close();

    const cpu = Array.from({ length: 24 }, (_, i) => Math.round(50 + 40 * Math.sin(i / 3)));
    await labDevice(cpu.slice(0, 12));
    admin = await login(stack.adminToken);
    expect(await admin.textContent('[data-testid=role]')).toBe('admin');
    const rows = admin.locator('[data-testid=devices] tbody tr');
    await expect.poll(() => rows.count()).toBe(5);
    expect(await rows.evaluateAll((trs) => trs.map((t) => t.getAttribute('data-id')))).toEqual(['lab-pi', ...stack.simIds]);
    expect(await admin.locator('[data-testid=devices] [data-testid=online]').allTextContents()).toEqual(Array(5).fill('online'));
    const points = (id: string): Promise<number> => admin.locator(`tr[data-id=${id}] [data-testid=cpu]`).evaluate((s) => Number(s.getAttribute('data-points')));
    // The first 12 samples come from the ring (GET /api/live), the next 12 as SSE deltas on the open page.
    await expect.poll(() => points('lab-pi')).toBe(12);
    await labDevice(cpu.slice(12));
    await expect.poll(() => points('lab-pi')).toBe(24);
    expect(await admin.locator('tr[data-id=lab-pi] [data-testid=cpu] title').textContent()).toBe(`last ${cpu[23]}`);
    expect(await admin.locator('tr[data-id=lab-pi] [data-testid=temp] title').textContent()).toBe(`last ${Math.round((40 + cpu[23]! / 4) * 10) / 10}`);
    // The simulators' telemetry (every 400 ms) grows their sparklines too, without a reload.
    const before = await points('sim-0');
    await expect.poll(() => points('sim-0'), { timeout: 10_000 }).toBeGreaterThan(before + 1);
  });

  it('advances a job\'s progress live over SSE, without refetching the devices', async () => {
    const jobId = 'dash-job-1';
    const topic = `edgekt/v1/devices/sim-1/jobs/${jobId}/update`;
    const cell = admin.locator('tr[data-id=sim-1] [data-testid=progress]');
    const fetchedBefore = requests.filter((u) => u.includes('/api/devices')).length;
    await mqttClient.publishAsync(topic, progress(jobId, 3, 10, 1), { qos: 1 });
    await expect.poll(() => cell.textContent()).toBe('download · blocks 3/10');
    await mqttClient.publishAsync(topic, progress(jobId, 7, 10, 2), { qos: 1 });
    await expect.poll(() => cell.textContent()).toBe('download · blocks 7/10');
    expect(await admin.locator('tr[data-id=sim-1] [data-testid=job]').textContent()).toBe('downloading');
    expect(await cell.locator('.bar i').getAttribute('style')).toBe('width:70%');
    expect(requests.filter((u) => u.includes('/api/devices')).length).toBe(fetchedBefore);
    await admin.screenshot({ path: path.join(DOCS, 'dashboard-devices.png'), fullPage: true });
  });

  it('starts a rollout from the page (admin); counts go live; results fill the scatter', async () => {
    await admin.goto(`${stack.url}/#results`);
    await expect.poll(() => admin.textContent('[data-testid=scatter]')).toBe('no results yet');
    const weights = randomBytes(40_000);
    const pub = await api('/api/teachers', { method: 'POST', body: JSON.stringify({ name: 'dash-teacher', blockSize: 8192, files: [{ path: 'model.json', base64: Buffer.from('{"format":"layers-model"}').toString('base64') }, { path: 'weights.bin', base64: weights.toString('base64') }] }) });
    expect(pub.status).toBe(200);

    await admin.goto(`${stack.url}/#rollouts`);
    await admin.waitForSelector('[data-testid=teacher] option', { state: 'attached' });
    await admin.selectOption('[data-testid=target-kind]', 'group');
    await admin.fill('[data-testid=target-value]', 'sim');
    await admin.click('[data-testid=start-rollout]');
    const card = admin.locator('article.rollout').first();
    await expect.poll(() => card.locator('[data-testid=rollout-state]').textContent(), { timeout: 60_000 }).toBe('completed');
    expect(await card.locator('[data-testid=counts]').textContent()).toBe('succeeded 4');
    expect(await card.locator('[data-testid=threshold]').textContent()).toBe('failures 0/4 finished = 0.0 % · abort at 25 % after 2 finished');
    await admin.screenshot({ path: path.join(DOCS, 'dashboard-rollouts.png'), fullPage: true });

    await until(async () => (await stack.store.listResults({}, { limit: 10 })).items.length === 4, 'four results recorded');
    // The simulators report one fixed figure set; two results shaped like the agent's CompressReport
    // (budget table, test accuracy, peak memory) cover the other rendering path.
    for (const [i, met] of [[1, true], [2, false]] as const) {
      const side = (params: number, lat: number, acc: number, mem: number) => ({ params, latencyP50Ms: lat * 0.8, latencyP95Ms: lat, latencyP99Ms: lat * 1.2, peakMemoryMB: mem, modelSizeKB: params / 256, accuracy: acc, testAccuracy: acc - 0.004 });
      await stack.store.recordResult({
        jobId: `lab-job-${i}`, deviceId: 'lab-pi', studentSha256: 'f'.repeat(64), studentManifest: {},
        report: { version: 2, profile: 'pi4', met, teacher: side(878106, 9.5, 0.983, 6.1), student: side(12000 * i, 1.1 * i, 0.975 - 0.02 * i, 0.9),
          budgetTable: [{ budget: 'latencyP95Ms', spec: '0.5x', limit: 4.75, value: 1.1 * i, met: true, source: 'side by side' }, { budget: 'minAccuracy', spec: '0.97x', limit: 0.953, value: 0.975 - 0.02 * i, met, source: 'validation' }] },
      });
    }
    await admin.goto(`${stack.url}/#results`);
    const marks = admin.locator('[data-testid=scatter] svg g.mark-symbol.role-mark path');
    await expect.poll(() => marks.count(), { timeout: 15_000 }).toBe(6);
    const legend = await admin.locator('[data-testid=scatter] svg').textContent();
    for (const p of ['pi4', 'sim-fast', 'sim-small']) expect(legend).toContain(p);
    await expect.poll(() => admin.locator('[data-testid=results] tbody tr').count()).toBe(6);
    expect(await admin.locator('[data-testid=results] [data-testid=met]').allTextContents()).toEqual(['✓ met', '✓ met', '✓ met', '✓ met', '✓ met (2/2)', '✗ missed (1/2)']);
    expect(await admin.locator('[data-testid=results] tbody tr:last-child td:nth-child(6)').textContent()).toBe('6.10 → 0.90');
    await admin.screenshot({ path: path.join(DOCS, 'dashboard-results.png'), fullPage: true });

    await admin.goto(`${stack.url}/#rounds`);
    await expect.poll(() => admin.textContent('[data-testid=rounds]')).toBe('no rounds');
  });

  it('shows a federated run\'s rounds as /api/rounds gives them: included, refusal codes, late, dropped, accuracy', async () => {
    const sha = (c: string): string => c.repeat(64);
    await stack.store.createFederatedRun({ id: 'fl-dash', spec: { rounds: 3, strategy: 'trimmed-mean' }, globalSha256: sha('a') });
    const base = { type: 'round-result', runId: 'fl-dash', failed: [] as string[] };
    const closed = [
      { n: 1, result: { ...base, roundId: 'fl-dash-r1-a1', round: 1, state: 'completed', included: ['sim-0', 'sim-1', 'sim-2'], refused: [{ deviceId: 'sim-3', codes: ['EDGEKT_ERR_UPDATE_NONFINITE'] }], late: [], dropped: [], globalSha256: sha('b'), metrics: { accuracy: 0.712, 'client.loss': 0.9123 } } },
      { n: 2, result: { ...base, roundId: 'fl-dash-r2-a1', round: 2, state: 'completed', included: ['sim-0', 'sim-1'], refused: [], late: ['sim-2'], dropped: ['sim-3'], globalSha256: sha('c'), metrics: { accuracy: 0.784, 'client.loss': 0.6 } } },
    ];
    for (const c of closed) {
      await stack.store.createRound({ id: c.result.roundId, runId: 'fl-dash', roundNumber: c.n, config: {}, state: 'open', deadline: Date.now() + 60_000 });
      expect(await stack.store.finishRound(c.result.roundId, 'completed', c.result, ['open'])).not.toBeNull();
    }
    // Round 3 lost its quorum and the run failed: a failed run is history, the round driver leaves it alone.
    await stack.store.createRound({ id: 'fl-dash-r3-a1', runId: 'fl-dash', roundNumber: 3, config: {}, state: 'open', deadline: Date.now() + 60_000 });
    const quorum = { ...base, roundId: 'fl-dash-r3-a1', round: 3, state: 'failed', included: [], refused: [], late: [], dropped: ['sim-0', 'sim-1', 'sim-2', 'sim-3'], error: { code: 'EDGEKT_ERR_ROUND_QUORUM', message: '0 of 2 updates' } };
    expect(await stack.store.finishRound('fl-dash-r3-a1', 'failed', quorum, ['open'])).not.toBeNull();
    await stack.store.updateFederatedRun('fl-dash', { state: 'failed', roundNumber: 2, globalSha256: sha('c') });

    await admin.goto(`${stack.url}/#rounds`);
    const rows = admin.locator('section[data-run="fl-dash"] [data-testid=round-table] tbody tr');
    await expect.poll(() => rows.count()).toBe(3);
    const cells = await rows.evaluateAll((trs) => trs.map((t) => [...t.querySelectorAll('td')].map((td) => td.textContent)));
    expect(cells).toEqual([
      ['1', 'completed', '3', '1 refused', '—', '—', '71.2 %', '0.912', 'bbbbbbbbbb'],
      ['2', 'completed', '2', '—', '1', '1', '78.4 %', '0.600', 'cccccccccc'],
      ['3', 'failed', '0', '—', '—', '4', '—', '—', '—'],
    ]);
    expect(await rows.first().locator('[data-testid=refused]').getAttribute('title')).toBe('sim-3: EDGEKT_ERR_UPDATE_NONFINITE');
    expect(await admin.textContent('section[data-run="fl-dash"] h3 small')).toBe('failed · 2 of 3 rounds · trimmed-mean');
    expect(await admin.locator('section[data-run="fl-dash"] [data-testid=round-accuracy]').getAttribute('data-points')).toBe('2');
    await admin.screenshot({ path: path.join(DOCS, 'dashboard-rounds.png'), fullPage: true });
  });

  it('read-only: no admin buttons, a forged admin call gets 403; the admin page aborts', async () => {
    const teacher = ((await (await api('/api/teachers')).json()) as Array<{ sha256: string }>)[0]!.sha256;
    // A closed maintenance window keeps this rollout running (nothing dispatched) until aborted.
    const held = await api('/api/rollouts', { method: 'POST', body: JSON.stringify({ teacherSha256: teacher, target: { kind: 'group', group: 'sim' }, maintenanceWindow: { cron: '0 0 1 1 *', durationMs: 1000 } }) });
    expect(held.status).toBe(200);
    const heldId = ((await held.json()) as { id: string }).id;

    const ro = await login(stack.readToken);
    expect(await ro.textContent('[data-testid=role]')).toBe('read-only');
    await ro.goto(`${stack.url}/#rollouts`);
    await ro.waitForSelector(`article[data-rollout="${heldId}"]`);
    expect(await ro.textContent(`article[data-rollout="${heldId}"] [data-testid=rollout-state]`)).toBe('running');
    expect(await ro.locator('button.admin, [data-testid=abort], [data-testid=start-form]').count()).toBe(0);
    expect(await ro.isVisible('[data-testid=read-only]')).toBe(true);
    const forged = await ro.evaluate(async (id) => {
      const stored = (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem('edgekt.token');
      const authorization = `Bearer ${stored}`;
      const abort = await fetch(`/api/rollouts/${id}/abort`, { method: 'POST', headers: { authorization } });
      const start = await fetch('/api/rollouts', { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: '{}' });
      return [abort.status, start.status, ((await abort.json()) as { error: { code: string } }).error.code];
    }, heldId);
    expect(forged).toEqual([403, 403, 'EDGEKT_ERR_FORBIDDEN']);
    expect(((await (await api(`/api/rollouts/${heldId}`)).json()) as { state: string }).state).toBe('running');

    await admin.goto(`${stack.url}/#rollouts`);
    const card = admin.locator(`article[data-rollout="${heldId}"]`);
    await card.locator('[data-testid=abort]').click();
    await expect.poll(() => card.locator('[data-testid=rollout-state]').textContent()).toBe('aborted');
    // The read-only page learns it from the event stream.
    await expect.poll(() => ro.textContent(`article[data-rollout="${heldId}"] [data-testid=rollout-state]`)).toBe('aborted');
    await ro.context().close();
  });

  it('pages 10,000 devices by server-side cursor, never loading the fleet', async () => {
    const now = Date.now();
    await stack.store.upsertDevices(Array.from({ length: 10_000 }, (_, i) => ({
      id: `bulk-${String(i).padStart(5, '0')}`, online: i % 3 !== 0, profile: i % 2 ? 'jetson' : 'pi4', groups: ['bulk'], versions: {}, capacity: {}, state: i % 3 ? 'idle' : 'offline', lastSeen: now - i * 1000,
    })));
    requests.length = 0;
    await admin.goto(`${stack.url}/#devices`);
    const info = admin.locator('[data-testid=page-info]');
    await expect.poll(() => info.textContent()).toBe('1–50 of 10,005');
    const rows = admin.locator('[data-testid=devices] tbody tr');
    expect(await rows.count()).toBe(50);
    const first = await rows.first().getAttribute('data-id');
    const t0 = Date.now();
    await admin.click('[data-testid=next]');
    await expect.poll(() => info.textContent()).toBe('51–100 of 10,005');
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await rows.first().getAttribute('data-id')).not.toBe(first);
    await admin.click('[data-testid=prev]');
    await expect.poll(() => rows.first().getAttribute('data-id')).toBe(first);

    await admin.fill('[data-testid=filter-profile]', 'jetson');
    await admin.fill('[data-testid=filter-group]', 'bulk');
    await admin.selectOption('[data-testid=filter-online]', 'true');
    await admin.fill('[data-testid=filter-state]', 'idle');
    await admin.press('[data-testid=filter-state]', 'Enter');
    // odd i with i % 3 != 0: 5,000 - 1,667 = 3,333 of the bulk devices.
    await expect.poll(() => info.textContent()).toBe('1–50 of 3,333');
    expect(await admin.locator('[data-testid=devices] tbody tr td:nth-child(3)').allTextContents()).toEqual(Array(50).fill('jetson'));

    const deviceCalls = requests.filter((u) => new URL(u).pathname === '/api/devices');
    expect(deviceCalls.length).toBeGreaterThanOrEqual(4);
    for (const u of deviceCalls) expect(new URL(u).searchParams.get('limit')).toBe('50');
    for (const u of requests.filter((x) => new URL(x).pathname === '/api/live')) expect(new URL(u).searchParams.get('devices')!.split(',').length).toBeLessThanOrEqual(50);
  });
});
