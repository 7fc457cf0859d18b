import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from './helpers/fleet.js';
import { startDashboardStack, until, type DashboardStack } from './helpers/dashboard.js';

// The event stream over plain HTTP: auth by header or ?token=, per-client watch sets, clean shutdown.
interface Sse {
  events: Array<{ type: string; data: Record<string, unknown> }>;
  next(pred: (e: Sse['events'][number]) => boolean, what: string): Promise<Sse['events'][number]>;
  close(): void;
}

// node:http rather than fetch: an aborted fetch leaves undici's spare connection open on the
// server, which then holds the server's close for seconds (not the dashboard's doing).
function openSse(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string | null; sse: Sse | null }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      const type = res.headers['content-type'] ?? null;
      if (res.statusCode !== 200) {
        res.resume();
        return resolve({ status: res.statusCode ?? 0, type, sse: null });
      }
      const events: Sse['events'] = [];
      let buf = '';
      res.on('data', (d: Buffer) => {
        buf += d.toString('utf8');
        let at: number;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          const t = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (t && data) events.push({ type: t, data: JSON.parse(data) as Record<string, unknown> });
        }
      });
      res.on('error', () => undefined);
      resolve({ status: 200, type, sse: { events, close: () => req.destroy(), next: (pred, what) => until(async () => events.find(pred), what, 10_000) } });
    });
    req.on('error', reject);
  });
}

describe('dashboard event stream', () => {
  let stack: DashboardStack;
  let mqttClient: MqttClient;
  beforeAll(async () => {
    stack = await startDashboardStack({ devices: 0 });
    mqttClient = await connectClient(stack.brokerUrl, `dash-events-${randomBytes(3).toString('hex')}`);
  });
  afterAll(async () => {
    await mqttClient?.endAsync();
    await stack?.stop().catch(() => undefined);
  });

  it('refuses a missing or unknown token; takes the read token in the header or the query', async () => {
    expect((await openSse(`${stack.url}/api/events`)).status).toBe(401);
    expect((await openSse(`${stack.url}/api/events?token=nope`)).status).toBe(403);
    const q = await openSse(`${stack.url}/api/events?token=${stack.readToken}`);
    const h = await openSse(`${stack.url}/api/events`, { authorization: `Bearer ${stack.adminToken}` });
    for (const s of [q, h]) {
      expect(s.status).toBe(200);
      expect(s.type).toMatch(/^text\/event-stream/);
      expect((await s.sse!.next((e) => e.type === 'hello', 'hello')).data.client).toMatch(/^[\w-]{16}$/);
      s.sse!.close();
    }
  });

  it('sends device-scoped deltas only for watched devices, and fleet counts', async () => {
    const { sse } = await openSse(`${stack.url}/api/events?token=${stack.readToken}`);
    const client = (await sse!.next((e) => e.type === 'hello', 'hello')).data.client as string;
    const watch = (body: object): Promise<Response> =>
      fetch(`${stack.url}/api/events/watch`, { method: 'POST', headers: { authorization: `Bearer ${stack.readToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await watch({ client: 'gone', devices: ['w-1'] })).status).toBe(404);
    expect((await watch({ client, devices: 'w-1' })).status).toBe(400);
    expect((await watch({ client, devices: ['w-1'] })).status).toBe(200);

    const at = (): string => new Date().toISOString();
    for (const id of ['w-2', 'w-1']) {
      await mqttClient.publishAsync(`edgekt/v1/devices/${id}/status`, JSON.stringify({ type: 'status', deviceId: id, state: 'online', at: at(), profile: 'pi4' }), { qos: 1, retain: true });
    }
    await until(async () => (await stack.store.countDevices({ online: true })) === 2, 'two devices online');
    for (const id of ['w-2', 'w-1']) {
      await mqttClient.publishAsync(`edgekt/v1/devices/${id}/telemetry`, JSON.stringify({
        type: 'telemetry', deviceId: id, at: at(), cpuLoadPercent: 33, loadAverage1: 0.5, memUsedMB: 512, memTotalMB: 2048, rssMB: 80, temperatureC: null, throttled: null, activeJob: null, paused: null,
      }), { qos: 1 });
    }
    const t = await sse!.next((e) => e.type === 'telemetry', 'telemetry of w-1');
    expect(t.data).toEqual({ type: 'telemetry', id: 'w-1', samples: [[expect.any(Number), 33, null, 25]] });
    await mqttClient.publishAsync('edgekt/v1/devices/w-2/jobs/j2/update', JSON.stringify({ kind: 'progress', jobId: 'j2', seq: 1, progressSeq: 1, state: 'distilling', at: Date.now(), progress: { stage: 'distill', done: 1, total: 4 } }), { qos: 1 });
    await mqttClient.publishAsync('edgekt/v1/devices/w-1/jobs/j1/update', JSON.stringify({ kind: 'progress', jobId: 'j1', seq: 1, progressSeq: 1, state: 'distilling', at: Date.now(), progress: { stage: 'distill', done: 2, total: 4, junk: 'x'.repeat(10) } }), { qos: 1 });
    const j = await sse!.next((e) => e.type === 'job', 'job of w-1');
    expect(j.data).toMatchObject({ id: 'w-1', jobId: 'j1', state: 'distilling', progress: { stage: 'distill', done: 2, total: 4 } });
    expect(await sse!.next((e) => e.type === 'fleet' && e.data.total === 2, 'fleet of two')).toMatchObject({ data: { online: 2 } });
    const scoped = sse!.events.filter((e) => ['device', 'telemetry', 'job'].includes(e.type));
    expect(scoped.map((e) => e.data.id)).toEqual(scoped.map(() => 'w-1'));
    expect(scoped.map((e) => e.type).sort()).toEqual(['device', 'job', 'telemetry']);

    const live = await (await fetch(`${stack.url}/api/live?devices=w-1,w-2,none`, { headers: { authorization: `Bearer ${stack.readToken}` } })).json() as { devices: Record<string, { telemetry: unknown[]; job: unknown }> };
    expect(live.devices['w-2']!.telemetry).toHaveLength(1);
    expect(live.devices.none).toEqual({ telemetry: [], job: null });
    expect(live.devices['w-1']!.job).toMatchObject({ jobId: 'j1', progress: { done: 2 } });
    sse!.close();
  });

  it('stops the coordinator promptly with a stream still open', async () => {
    const { sse } = await openSse(`${stack.url}/api/events?token=${stack.readToken}`);
    await sse!.next((e) => e.type === 'hello', 'hello');
    const t0 = Date.now();
    await stack.stop();
    // The stream must not hold the HTTP server's close until keep-alive runs out (5 s).
    expect(Date.now() - t0).toBeLessThan(1500);
  });
});
