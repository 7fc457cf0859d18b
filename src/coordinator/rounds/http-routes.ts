import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import { FederatedRunSpecSchema } from '../../config/federated.js';
import { EdgektError } from '../../core/errors.js';
import type { CoordinatorStore, Round } from '../../store/coordinator/index.js';
import type { ArtifactStore } from '../artifacts.js';
import { decodeGlobal, encodeGlobal, MODEL_FILE, topologyOnly } from './files.js';
import { readRoundRecord } from './round-record.js';

type AuthHook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/**
 * `POST /api/federated` body. `base.modelJson` is the base model's tfjs model.json (its
 * weightsManifest is dropped: devices get the topology only); `base.weights` is base64 of a global
 * weights file (EKUP, float32 whole weights, as `edgekt fleet federated start` builds it with
 * weightSetFromModel). The coordinator re-encodes it as round 0 of the run.
 */
const FederatedStart = z.object({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/).optional(),
  spec: z.unknown(),
  base: z.object({ modelJson: z.record(z.string(), z.unknown()), weights: z.string().min(1) }).strict(),
}).strict();

/** A round as the API shows it: the row plus who was invited, the attempt, and the result once closed. */
function roundView(r: Round): Record<string, unknown> {
  let invited: string[] = [];
  let attempt = 1;
  try {
    ({ invited, attempt } = readRoundRecord(r));
  } catch {
    // a round row written by something else: show it as is
  }
  return { id: r.id, runId: r.runId, round: r.roundNumber, state: r.state, deadline: r.deadline, attempt, invited, result: r.result, createdAt: r.createdAt, updatedAt: r.updatedAt };
}

export function registerFederatedRoutes(app: FastifyInstance, o: { store: CoordinatorStore; artifacts: ArtifactStore; read: AuthHook; admin: AuthHook; newId: () => string; registry: Registry }): void {
  const store = o.store;
  new Gauge({
    name: 'edgekt_federated_rounds', help: 'federated rounds by state', labelNames: ['state'], registers: [o.registry],
    async collect() {
      this.reset();
      const counts = new Map<string, number>();
      for (const r of await store.listRounds({})) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'edgekt_federated_run_round', help: 'rounds completed per federated run', labelNames: ['run', 'state'], registers: [o.registry],
    async collect() {
      this.reset();
      for (const r of await store.listFederatedRuns({})) this.set({ run: r.id, state: r.state }, r.roundNumber);
    },
  });

  app.get('/api/rounds', { onRequest: o.read }, async (req) => {
    const q = z.object({ runId: z.string().optional() }).parse(req.query);
    return (await store.listRounds(q.runId ? { runId: q.runId } : {})).map(roundView);
  });
  app.get('/api/federated', { onRequest: o.read }, async () => store.listFederatedRuns({}));
  app.get('/api/federated/:id', { onRequest: o.read }, async (req) => {
    const id = (req.params as { id: string }).id;
    const run = await store.getFederatedRun(id);
    if (!run) throw new EdgektError('EDGEKT_ERR_NOT_FOUND', 'no such federated run');
    return { ...run, rounds: (await store.listRounds({ runId: id })).map(roundView) };
  });
  app.post('/api/federated', { onRequest: o.admin }, async (req) => {
    const body = FederatedStart.parse(req.body);
    const spec = FederatedRunSpecSchema.safeParse(body.spec);
    if (!spec.success) throw new EdgektError('EDGEKT_ERR_USAGE', `spec: ${spec.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    if (!('modelTopology' in body.base.modelJson)) throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', 'base.modelJson has no modelTopology');
    const weights = decodeGlobal(new Uint8Array(Buffer.from(body.base.weights, 'base64')));
    for (const [name, t] of Object.entries(weights)) {
      if (t.values.some((v) => !Number.isFinite(v))) throw new EdgektError('EDGEKT_ERR_UPDATE_NONFINITE', `base weight ${name} holds NaN or Infinity`);
    }
    const id = body.id ?? o.newId();
    if (await store.getFederatedRun(id)) throw new EdgektError('EDGEKT_ERR_STORE_CONFLICT', `federated run ${id} already exists`);
    const model = await o.artifacts.publishFile(`${id}/${MODEL_FILE}`, MODEL_FILE, Buffer.from(JSON.stringify(topologyOnly(body.base.modelJson))));
    const global = await o.artifacts.publishFile(`${id}/global-r0`, 'global.ekup', encodeGlobal(weights, 0, `${id}-r0`));
    return store.createFederatedRun({ id, spec: { ...spec.data, baseSha256: model.sha256 } as never, globalSha256: global.sha256 });
  });
}
