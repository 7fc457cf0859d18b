import mqtt from 'mqtt';
import pino from 'pino';
import { CoordinatorConfigSchema } from '../../src/config/coordinator-config.js';
import { RoundResultSchema, type RoundResult } from '../../src/config/federated.js';
import { createCoordinator } from '../../src/coordinator/daemon.js';
import { decodeGlobal, encodeGlobal } from '../../src/coordinator/rounds/files.js';
import { tensor, type WeightSet } from '../../src/federated/index.js';
import { createSqliteCoordinatorStore, type CoordinatorStore, type FederatedRun } from '../../src/store/coordinator/index.js';
import { topics } from '../../src/transport/topics.js';
import { apiClient, logSink, waitUntil, type Api, type CoordinatorFiles, type TestCoordinator } from './coordinator-harness.js';

/** A coordinator on an MQTT 3.1.1 broker (aedes): no shared subscriptions, protocol 4. */
export async function startAedesCoordinator(o: { id: string; brokerUrl: string; files: CoordinatorFiles; tickMs?: number }): Promise<TestCoordinator & { api: Api }> {
  const store = await createSqliteCoordinatorStore(o.files.sqlite);
  const config = CoordinatorConfigSchema.parse({
    id: o.id, broker: { url: o.brokerUrl, protocolVersion: 4, shareGroup: null }, store: { sqlite: o.files.sqlite },
    http: { port: 0, adminTokensFile: o.files.adminTokensFile, readTokensFile: o.files.readTokensFile },
    fleetKey: o.files.fleetKeyFile, artifactsDir: o.files.artifactsDir, tickMs: o.tickMs ?? 100, log: { level: 'info' },
  });
  const { sink, stream } = logSink();
  const coordinator = createCoordinator({
    config, store, fleetKey: o.files.fleet.privateKey, secrets: {}, dashboard: false,
    readTokens: [o.files.readToken], adminTokens: [o.files.adminToken], logger: pino({ level: 'info', base: { coordinator: o.id } }, stream),
  });
  const { httpUrl } = await coordinator.start();
  let stopped = false;
  return {
    id: o.id, coordinator, store, url: httpUrl, log: sink, api: apiClient(httpUrl, o.files.adminToken),
    async stop() {
      if (stopped) return;
      stopped = true;
      await coordinator.stop();
    },
  };
}

/** A small two-tensor base model: `d/kernel` [2,3] = 0, 0.1 … 0.5 and `d/bias` [3]. */
export function baseWeights(): WeightSet {
  return { 'd/kernel': tensor([2, 3], [0, 0.1, 0.2, 0.3, 0.4, 0.5]), 'd/bias': tensor([3], [0.5, -0.5, 0]) };
}

/** A tfjs-shaped model.json for the base (the coordinator strips its weightsManifest). */
export const BASE_MODEL_JSON = {
  format: 'layers-model', generatedBy: 'test', modelTopology: { class_name: 'Sequential', config: { name: 'tiny', layers: [] } },
  weightsManifest: [{ paths: ['weights.bin'], weights: [{ name: 'd/kernel', shape: [2, 3], dtype: 'float32' }] }],
};

export async function startRun(api: Api, id: string, spec: Record<string, unknown>, weights: WeightSet = baseWeights(), token?: string): Promise<{ status: number; body: unknown }> {
  const body = { id, spec, base: { modelJson: BASE_MODEL_JSON, weights: Buffer.from(encodeGlobal(weights, 0, 'upload')).toString('base64') } };
  return token === undefined ? api('POST', '/api/federated', body) : api('POST', '/api/federated', body, token);
}

export function waitForRun(store: CoordinatorStore, id: string, states: readonly string[], timeoutMs = 30_000): Promise<FederatedRun> {
  return waitUntil(`run ${id} in ${states.join('|')}`, async () => {
    const r = await store.getFederatedRun(id);
    return r && states.includes(r.state) ? r : null;
  }, timeoutMs);
}

/** The retained result of a round, read by a fresh subscriber (what a late dashboard or device sees). */
export async function retainedResult(url: string, roundId: string): Promise<RoundResult> {
  const c = await mqtt.connectAsync(url, { protocolVersion: 4, clean: true, reconnectPeriod: 0 });
  try {
    const got = new Promise<RoundResult>((resolve) => c.on('message', (_t, p) => resolve(RoundResultSchema.parse(JSON.parse(p.toString('utf8'))))));
    await c.subscribeAsync(topics.roundResult(roundId), { qos: 1 });
    return await Promise.race([got, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no retained result on ${roundId}`)), 5000))]);
  } finally {
    await c.endAsync(true);
  }
}

/** The run's current global weights, read from the artifact store's file. */
export async function globalOf(store: CoordinatorStore, sha256: string): Promise<WeightSet> {
  const a = await store.getArtifact(sha256);
  if (!a) throw new Error(`no artifact ${sha256}`);
  const { readFile } = await import('node:fs/promises');
  return decodeGlobal(new Uint8Array(await readFile(a.location)));
}
