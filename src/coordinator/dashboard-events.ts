import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { CoordinatorStore, Rollout } from '../store/coordinator/index.js';
import { RING_SIZE, type LiveState, type Sample } from './dashboard-live.js';
import type { ReportEvent } from './reports.js';

/**
 * The event stream's messages (`event: <type>`, `data: <json>`). Device-scoped events (`device`,
 * `telemetry`, `job`) reach a client only for the devices it watches (the rows on its screen), and
 * each is coalesced to the latest per device between flushes: a 10,000-device fleet costs a page
 * what its 50 rows cost, never the fleet.
 */
export type DashboardEvent =
  | { type: 'hello'; client: string; at: number }
  | { type: 'device'; id: string; online: boolean; state: string | null; lastSeen: number }
  /** The samples since the last flush, oldest first: [epoch ms, CPU %, temperature °C | null, memory %]. */
  | { type: 'telemetry'; id: string; samples: Sample[] }
  | { type: 'job'; id: string; jobId: string; rolloutId: string | null; state: string; progress: unknown; at: number }
  | { type: 'rollout'; id: string; state: string; counts: Record<string, number>; updatedAt: number }
  | { type: 'fleet'; total: number; online: number }
  | { type: 'result'; deviceId: string; jobId: string; profile: string | null; met: boolean | null };

interface Client {
  id: string;
  res: ServerResponse;
  watch: Set<string>;
  /** Pending events by coalescing key: the latest wins, except telemetry, whose samples accumulate. */
  queue: Map<string, DashboardEvent>;
  blocked: boolean;
}

export interface EventHubOptions {
  store: CoordinatorStore;
  live: LiveState;
  now: () => number;
  flushMs?: number;
  pollMs?: number;
  /** A client with more pending frames than this is dropped (its EventSource reconnects and reloads). */
  maxQueue?: number;
}

const frame = (e: DashboardEvent): string => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
export const MAX_WATCH = 1000;

/** Server-Sent Events to dashboard pages, fed by the report handler and a light rollout poll. */
export function createEventHub(o: EventHubOptions) {
  const clients = new Map<string, Client>();
  const lastRollout = new Map<string, string>();
  const dirtyRollouts = new Set<string>();
  let fleetDirty = true;
  let polling = false;
  const flushMs = o.flushMs ?? 250;
  const maxQueue = o.maxQueue ?? 5000;

  const send = (key: string, e: DashboardEvent, deviceId?: string): void => {
    for (const c of clients.values()) {
      if (deviceId !== undefined && !c.watch.has(deviceId)) continue;
      const prev = c.queue.get(key);
      c.queue.delete(key);
      c.queue.set(key, prev?.type === 'telemetry' && e.type === 'telemetry' ? { ...e, samples: [...prev.samples, ...e.samples].slice(-RING_SIZE) } : e);
      if (c.queue.size > maxQueue) drop(c);
    }
  };

  function drop(c: Client): void {
    clients.delete(c.id);
    c.res.end();
  }

  function flush(): void {
    for (const c of clients.values()) {
      if (c.blocked || c.queue.size === 0) continue;
      const out = [...c.queue.values()].map(frame).join('');
      c.queue.clear();
      if (!c.res.write(out)) {
        c.blocked = true;
        c.res.once('drain', () => (c.blocked = false));
      }
    }
  }

  async function poll(): Promise<void> {
    if (polling || clients.size === 0) return;
    polling = true;
    try {
      if (fleetDirty) {
        fleetDirty = false;
        send('fleet', { type: 'fleet', total: await o.store.countDevices({}), online: await o.store.countDevices({ online: true }) });
      }
      for (const r of await o.store.listRollouts({})) await pollRollout(r);
    } catch {
      // the store is busy or closing: the next poll tries again
    } finally {
      polling = false;
    }
  }

  async function pollRollout(r: Rollout): Promise<void> {
    const seen = lastRollout.get(r.id);
    if (seen !== undefined && r.state !== 'running' && !dirtyRollouts.has(r.id) && seen.startsWith(`${r.state}|`)) return;
    dirtyRollouts.delete(r.id);
    const counts = await o.store.countExecutions(r.id);
    const sig = `${r.state}|${JSON.stringify(counts)}`;
    if (sig === seen) return;
    lastRollout.set(r.id, sig);
    send(`rollout:${r.id}`, { type: 'rollout', id: r.id, state: r.state, counts, updatedAt: r.updatedAt });
  }

  const flushTimer = setInterval(flush, flushMs);
  flushTimer.unref();
  const pollTimer = setInterval(() => void poll(), o.pollMs ?? 1000);
  pollTimer.unref();
  // SSE comment lines keep proxies from closing idle streams.
  const pingTimer = setInterval(() => {
    for (const c of clients.values()) if (!c.blocked) c.res.write(': ping\n\n');
  }, 15_000);
  pingTimer.unref();

  return {
    /** Called by the report handler after each applied change; never throws. */
    onReport(e: ReportEvent): void {
      try {
        const delta = o.live.apply(e);
        if (e.type === 'status') {
          fleetDirty = true;
          send(`device:${e.deviceId}`, { type: 'device', id: e.deviceId, online: e.online, state: e.state, lastSeen: e.at }, e.deviceId);
        } else if (delta && 'sample' in delta) send(`telemetry:${e.deviceId}`, { type: 'telemetry', id: e.deviceId, samples: [delta.sample] }, e.deviceId);
        else if (delta && 'job' in delta) {
          send(`job:${e.deviceId}`, { type: 'job', id: e.deviceId, ...delta.job }, e.deviceId);
          if (delta.job.rolloutId) dirtyRollouts.add(delta.job.rolloutId);
        } else if (e.type === 'result') {
          const profile = typeof e.report.profile === 'string' ? e.report.profile : null;
          send(`result:${e.jobId}`, { type: 'result', deviceId: e.deviceId, jobId: e.jobId, profile, met: typeof e.report.met === 'boolean' ? e.report.met : null });
        }
      } catch {
        // a dashboard must never break report handling
      }
    },
    /** Takes over a hijacked response as an event stream. */
    open(res: ServerResponse): string {
      const id = randomBytes(12).toString('base64url');
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'close', 'x-accel-buffering': 'no' });
      res.write(`retry: 2000\n\n${frame({ type: 'hello', client: id, at: o.now() })}`);
      const c: Client = { id, res, watch: new Set(), queue: new Map(), blocked: false };
      clients.set(id, c);
      res.on('close', () => clients.delete(id));
      fleetDirty = true;
      return id;
    },
    /** Sets which devices a client gets device-scoped events for; false for an unknown client. */
    watch(clientId: string, deviceIds: readonly string[]): boolean {
      const c = clients.get(clientId);
      if (!c) return false;
      c.watch = new Set(deviceIds.slice(0, MAX_WATCH));
      return true;
    },
    get clients(): number {
      return clients.size;
    },
    close(): void {
      clearInterval(flushTimer);
      clearInterval(pollTimer);
      clearInterval(pingTimer);
      for (const c of clients.values()) c.res.end();
      clients.clear();
    },
  };
}
export type EventHub = ReturnType<typeof createEventHub>;
