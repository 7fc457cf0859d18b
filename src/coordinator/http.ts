import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Registry, Counter, Gauge, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';
import { rolloutSpecSchema } from '../config/rollout.js';
import { EdgektError, toEdgektError } from '../core/errors.js';
import type { CoordinatorStore } from '../store/coordinator/index.js';
import type { ArtifactStore } from './artifacts.js';
import { registerFederatedRoutes } from './rounds/http-routes.js';

export interface HttpApiOptions {
  store: CoordinatorStore;
  artifacts: ArtifactStore;
  readTokens: readonly string[];
  adminTokens: readonly string[];
  /** Blocks served so far (the block server's counter). */
  blocksServed: () => number;
  newId: () => string;
  /** Extra routes (the dashboard mounts its static files and event stream here). */
  extend?: (app: FastifyInstance, auth: { read: AuthHook; admin: AuthHook }) => void;
  /** After an admin abort: cancel the rollout's executions still in flight. */
  onAbort?: (rolloutId: string) => Promise<void>;
  /** Live progress of running jobs, by jobId. */
  progress?: () => ReadonlyMap<string, { deviceId: string; state: string; progress: unknown; at: number }>;
}

type AuthHook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

const same = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().optional(),
  profile: z.string().optional(),
  group: z.string().optional(),
  online: z.enum(['true', 'false']).optional(),
  state: z.string().optional(),
});

const TeacherUpload = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/),
  files: z.array(z.object({ path: z.string().min(1), base64: z.string() }).strict()).min(1).max(64),
  blockSize: z.number().int().min(256).max(128 * 1024).optional(),
}).strict();

const STATUS: Record<string, number> = { EDGEKT_ERR_USAGE: 400, EDGEKT_ERR_MALFORMED: 400, EDGEKT_ERR_NOT_FOUND: 404, EDGEKT_ERR_STORE_CONFLICT: 409,
  EDGEKT_ERR_MODEL_FORMAT: 400, EDGEKT_ERR_UPDATE_FORMAT: 400, EDGEKT_ERR_UPDATE_NONFINITE: 400 };

/**
 * The coordinator's HTTP API (fastify): the fleet CLI and the dashboard use it. Bearer tokens:
 * read-only tokens see everything, only admin tokens change anything (start/abort rollouts, publish
 * teachers) — whatever a page shows, the API refuses a forged admin call with 403.
 */
export async function createHttpApi(o: HttpApiOptions): Promise<FastifyInstance> {
  // Auth runs onRequest (before the body is parsed), so a forged admin call is refused 403 whatever its body.
  const app = Fastify({ logger: false, bodyLimit: 512 * 2 ** 20, forceCloseConnections: true });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const online = new Gauge({ name: 'edgekt_devices_online', help: 'devices whose last status is online', registers: [registry] });
  const total = new Gauge({ name: 'edgekt_devices_total', help: 'devices known to the registry', registers: [registry] });
  const jobs = new Gauge({ name: 'edgekt_rollout_executions', help: 'rollout executions by state', labelNames: ['rollout', 'state'], registers: [registry] });
  const progress = new Gauge({ name: 'edgekt_rollout_progress_ratio', help: 'finished share of a rollout\'s executions', labelNames: ['rollout'], registers: [registry] });
  const blocks = new Counter({ name: 'edgekt_blocks_served_total', help: 'artifact blocks served over MQTT', registers: [registry] });
  let blocksSeen = 0;

  const bearer = (req: FastifyRequest): string | null => {
    const h = req.headers.authorization;
    return h?.startsWith('Bearer ') ? h.slice(7).trim() : null;
  };
  const check = (tokens: readonly string[]) => async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const t = bearer(req);
    if (t === null) return void reply.code(401).send({ error: { code: 'EDGEKT_ERR_AUTH', message: 'a bearer token is required' } });
    if (!tokens.some((k) => same(k, t))) return void reply.code(403).send({ error: { code: 'EDGEKT_ERR_FORBIDDEN', message: 'this token may not do that' } });
  };
  const read = check([...o.readTokens, ...o.adminTokens]);
  const admin = check(o.adminTokens);

  app.setErrorHandler((e, _req, reply) => {
    const err = e instanceof z.ZodError ? new EdgektError('EDGEKT_ERR_USAGE', e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')) : toEdgektError(e);
    const status = STATUS[err.code] ?? ((e as { statusCode?: number }).statusCode && (e as { statusCode: number }).statusCode < 500 ? (e as { statusCode: number }).statusCode : 500);
    void reply.code(status).send({ error: { code: err.code, message: err.message } });
  });

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/metrics', async (_req, reply) => {
    online.set(await o.store.countDevices({ online: true }));
    total.set(await o.store.countDevices({}));
    jobs.reset();
    for (const r of await o.store.listRollouts({})) {
      const counts = await o.store.countExecutions(r.id);
      let n = 0;
      let fin = 0;
      for (const [state, c] of Object.entries(counts)) {
        jobs.set({ rollout: r.id, state }, c);
        n += c;
        if (['succeeded', 'failed', 'rejected', 'canceled', 'timed_out'].includes(state)) fin += c;
      }
      progress.set({ rollout: r.id }, n ? fin / n : 0);
    }
    const served = o.blocksServed();
    if (served > blocksSeen) blocks.inc(served - blocksSeen);
    blocksSeen = served;
    void reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  app.get('/api/devices', { onRequest: read }, async (req) => {
    const q = PageQuery.parse(req.query);
    const filter = { ...(q.profile ? { profile: q.profile } : {}), ...(q.group ? { group: q.group } : {}), ...(q.online ? { online: q.online === 'true' } : {}), ...(q.state ? { state: q.state } : {}) };
    const page = await o.store.listDevices(filter, { limit: q.limit, cursor: q.cursor ?? null });
    return { ...page, total: await o.store.countDevices(filter) };
  });
  app.get('/api/devices/:id', { onRequest: read }, async (req) => {
    const d = await o.store.getDevice((req.params as { id: string }).id);
    if (!d) throw new EdgektError('EDGEKT_ERR_NOT_FOUND', 'no such device');
    return d;
  });
  app.post('/api/teachers', { onRequest: admin }, async (req) => {
    const u = TeacherUpload.parse(req.body);
    const bundle = await o.artifacts.publishTeacher(u.name, u.files.map((f) => ({ path: f.path, bytes: Buffer.from(f.base64, 'base64') })), u.blockSize);
    return { sha256: bundle.sha256, name: bundle.name, version: bundle.version, size: bundle.size, files: bundle.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })) };
  });
  app.get('/api/teachers', { onRequest: read }, async () => (await o.store.listArtifacts({ kind: 'teacher' })).map((a) => ({ sha256: a.sha256, name: a.name, version: a.version, size: a.size, createdAt: a.createdAt })));
  app.post('/api/rollouts', { onRequest: admin }, async (req) => {
    const spec = rolloutSpecSchema.parse(req.body);
    if (!(await o.artifacts.getTeacher(spec.teacherSha256))) throw new EdgektError('EDGEKT_ERR_NOT_FOUND', `teacher ${spec.teacherSha256} is not published`);
    const r = await o.store.createRollout({ id: o.newId(), spec, state: 'running' });
    return r;
  });
  app.get('/api/rollouts', { onRequest: read }, async () => o.store.listRollouts({}));
  app.get('/api/rollouts/:id', { onRequest: read }, async (req) => {
    const id = (req.params as { id: string }).id;
    const r = await o.store.getRollout(id);
    if (!r) throw new EdgektError('EDGEKT_ERR_NOT_FOUND', 'no such rollout');
    return { ...r, counts: await o.store.countExecutions(id) };
  });
  app.get('/api/rollouts/:id/executions', { onRequest: read }, async (req) => {
    const q = PageQuery.parse(req.query);
    const live = o.progress?.();
    const page = await o.store.listExecutions((req.params as { id: string }).id, q.state ? { states: [q.state] } : {}, { limit: q.limit, cursor: q.cursor ?? null });
    return { ...page, items: page.items.map((e) => ({ ...e, live: live?.get(e.jobId) ?? null })) };
  });
  app.post('/api/rollouts/:id/abort', { onRequest: admin }, async (req) => {
    const r = await o.store.setRolloutState((req.params as { id: string }).id, 'aborted', ['scheduled', 'running', 'paused']);
    if (!r) throw new EdgektError('EDGEKT_ERR_NOT_FOUND', 'no such rollout, or it already ended');
    await o.onAbort?.(r.id);
    return r;
  });
  app.get('/api/results', { onRequest: read }, async (req) => {
    const q = z.object({ rollout: z.string().optional(), device: z.string().optional(), limit: z.coerce.number().int().min(1).max(1000).default(100), cursor: z.string().optional() }).parse(req.query);
    return o.store.listResults({ ...(q.rollout ? { rolloutId: q.rollout } : {}), ...(q.device ? { deviceId: q.device } : {}) }, { limit: q.limit, cursor: q.cursor ?? null });
  });
  registerFederatedRoutes(app, { store: o.store, artifacts: o.artifacts, read, admin, newId: o.newId, registry });
  o.extend?.(app, { read, admin });
  return app;
}
