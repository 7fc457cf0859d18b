import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { CoordinatorStore } from '../store/coordinator/index.js';
import { renderScatterSvg } from './dashboard-chart.js';
import { createEventHub, MAX_WATCH, type EventHub } from './dashboard-events.js';
import { createLiveState } from './dashboard-live.js';
import type { ReportEvent } from './reports.js';

/** web/ at the repository root: the same from src/coordinator (tsx, vitest) and dist/coordinator. */
export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');

export interface DashboardOptions {
  store: CoordinatorStore;
  now: () => number;
  webDir?: string;
  flushMs?: number;
  pollMs?: number;
}

type AuthHook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

const Ids = z.string().max(64 * MAX_WATCH).transform((s) => s.split(',').filter(Boolean)).pipe(z.array(z.string().min(1).max(128)).max(MAX_WATCH));
const WatchBody = z.object({ client: z.string().min(1).max(64), devices: z.array(z.string().min(1).max(128)).max(MAX_WATCH) }).strict();
const TokenQuery = z.object({ token: z.string().min(1).max(512).optional() });
const ScatterQuery = z.object({ rollout: z.string().min(1).optional() });

/**
 * The dashboard: static page from web/ (every asset local), the event stream (`/api/events`, SSE,
 * read token in the Authorization header or `?token=` since EventSource cannot set headers), and
 * the little API the page needs beyond the fleet API: who am I, live rows (telemetry ring, current
 * job) for the devices on screen, and the results scatter as SVG.
 */
export function createDashboard(o: DashboardOptions) {
  const live = createLiveState();
  const hub: EventHub = createEventHub({ store: o.store, live, now: o.now, ...(o.flushMs ? { flushMs: o.flushMs } : {}), ...(o.pollMs ? { pollMs: o.pollMs } : {}) });
  let results = 0;

  function mount(app: FastifyInstance, auth: { read: AuthHook; admin: AuthHook }): void {
    void app.register(fastifyStatic, { root: o.webDir ?? WEB_DIR, prefix: '/', index: ['index.html'], cacheControl: false });
    const tokenFromQuery = async (req: FastifyRequest): Promise<void> => {
      const q = TokenQuery.safeParse(req.query);
      if (!req.headers.authorization && q.success && q.data.token) req.headers.authorization = `Bearer ${q.data.token}`;
    };

    app.get('/api/session', { preHandler: auth.read }, async () => ({ role: 'read' }));
    app.get('/api/session/admin', { preHandler: auth.admin }, async () => ({ role: 'admin' }));

    app.get('/api/events', { preHandler: [tokenFromQuery, auth.read] }, (req, reply) => {
      reply.hijack();
      hub.open(reply.raw);
      req.raw.socket.setTimeout(0);
    });
    app.post('/api/events/watch', { preHandler: auth.read }, async (req, reply) => {
      const b = WatchBody.parse(req.body);
      if (!hub.watch(b.client, b.devices)) return reply.code(404).send({ error: { code: 'EDGEKT_ERR_NOT_FOUND', message: 'no such event stream (reconnect)' } });
      return { watching: b.devices.length };
    });

    app.get('/api/live', { preHandler: auth.read }, async (req) => {
      const ids = Ids.parse((req.query as { devices?: unknown }).devices ?? '');
      return { devices: Object.fromEntries(ids.map((id) => [id, { telemetry: live.samples(id), job: live.job(id) }])) };
    });

    let cache: { key: string; body: { svg: string; points: number } } | null = null;
    app.get('/api/results/scatter.svg', { preHandler: auth.read }, async (req, reply) => {
      const q = ScatterQuery.parse(req.query);
      // Rendered again only after a new result, however many pages ask.
      const key = `${q.rollout ?? ''}|${results}`;
      if (cache?.key !== key) cache = { key, body: await renderScatterSvg(o.store, q.rollout ? { rolloutId: q.rollout } : {}) };
      return reply.header('content-type', 'image/svg+xml').header('x-points', String(cache.body.points)).send(cache.body.svg);
    });
  }

  return {
    onReport(e: ReportEvent): void {
      if (e.type === 'result') results++;
      hub.onReport(e);
    },
    mount,
    get clients(): number {
      return hub.clients;
    },
    /** Ends every event stream (before the HTTP server closes, which waits for open connections). */
    close: (): void => hub.close(),
  };
}
export type Dashboard = ReturnType<typeof createDashboard>;
