import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino, { type Logger } from 'pino';
import { createAgent, type Agent } from '../../agent/daemon.js';
import type { RoundTrainerFor } from '../../agent/round-client.js';
import { AgentConfigSchema } from '../../config/agent-config.js';
import { CoordinatorConfigSchema } from '../../config/coordinator-config.js';
import { parseDeviceProfile } from '../../config/device-profile.js';
import { FederatedRunSpecSchema, type RoundConfig, type RoundResult } from '../../config/federated.js';
import { EdgektError } from '../../core/errors.js';
import { createArtifactStore } from '../../coordinator/artifacts.js';
import { createCoordinator, type Coordinator } from '../../coordinator/daemon.js';
import { encodeGlobal, MODEL_FILE, topologyOnly } from '../../coordinator/rounds/files.js';
import { roundIdFor } from '../../coordinator/rounds/round-record.js';
import { decodeUpdate, type ClientUpdate, type RoundTrainer } from '../../federated/index.js';
import { createSqliteCoordinatorStore, type CoordinatorStore } from '../../store/coordinator/index.js';
import { generateKeyPair, publicKeyPem, trustedKeyMap } from '../../transport/keys.js';
import { spawnMosquitto, type SpawnedMosquitto } from '../spawn-mosquitto.js';
import type { FleetClient, RoundTransport } from './transport.js';


/** The client-side fields of a round config: the coordinator's must equal the bench's, or training would differ. */
const CLIENT_FIELDS = ['round', 'epochs', 'learningRate', 'batchSize', 'mu', 'clip', 'sigma', 'encoding'] as const;

export interface MqttTransportOptions {
  /** The global base's model.json (its topology goes to the devices, as `fleet federated start` sends it). */
  modelJson: Record<string, unknown>;
  log: (line: string) => void;
  /** Seconds a round may take before the bench gives up on it. */
  deadlineSeconds?: number;
}

/**
 * The bench's rounds over a spawned Mosquitto: the real coordinator (round driver, intake, SQLite)
 * in this process and one real agent daemon per simulated client, each on its own TCP session.
 * Every bench round is a one-round federated run from the bench's global (created at that round
 * number), so globals go out fleet-signed in blocks and updates come back device-signed over the
 * broker; the updates returned are the ones the coordinator took in, read back from its store.
 * The agents' trainers are the bench's (RoundTrainer injection), run one at a time in the
 * request's client order, so the compute and the figures are those of the in-process transport.
 */
export async function createMqttTransport(o: MqttTransportOptions): Promise<RoundTransport> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-fedbench-mqtt-'));
  let broker: SpawnedMosquitto | null = null;
  const agents = new Map<string, Agent>();
  let coordinator: Coordinator | null = null;
  const logger: Logger = pino({ level: 'warn' }, { write: (s: string) => o.log(`mqtt transport: ${s.trim()}`) });
  /** The current round's trainers and their turns, by device id. */
  let current: { config: RoundConfig; trainers: Map<string, { trainer: RoundTrainer; turn: Promise<void>; done: () => void }> } | null = null;
  // On an early exit (the command's signal handler calls process.exit) the broker and the temp dir go too.
  const onExit = (): void => {
    broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  const close = async (): Promise<void> => {
    process.removeListener('exit', onExit);
    for (const a of agents.values()) await a.stop().catch(() => {});
    await coordinator?.stop().catch(() => {});
    onExit();
  };
  try {
    broker = await spawnMosquitto({ dir });
    const url = broker.url;
    const fleet = generateKeyPair();
    const store: CoordinatorStore = await createSqliteCoordinatorStore(path.join(dir, 'c.db'));
    const config = CoordinatorConfigSchema.parse({
      id: 'fedbench', broker: { url, protocolVersion: 5, shareGroup: null }, store: { sqlite: path.join(dir, 'c.db') },
      http: { port: 0, adminTokensFile: path.join(dir, 'none') }, fleetKey: path.join(dir, 'none'), artifactsDir: path.join(dir, 'artifacts'), tickMs: 50, log: { level: 'warn' },
    });
    coordinator = createCoordinator({ config, store, fleetKey: fleet.privateKey, secrets: {}, dashboard: false, readTokens: [], adminTokens: [], logger });
    await coordinator.start();
    const artifacts = createArtifactStore(store, config.artifactsDir);
    const model = await artifacts.publishFile(`fedbench/${MODEL_FILE}`, MODEL_FILE, Buffer.from(JSON.stringify(topologyOnly(o.modelJson))));

    const trainerFor = (deviceId: string): RoundTrainerFor => async (config) => {
      const c = current;
      const mine = c?.trainers.get(deviceId);
      if (!c || !mine) throw new EdgektError('EDGEKT_ERR_INTERNAL', `${deviceId} was invited to a round the bench did not ask it for`);
      for (const f of CLIENT_FIELDS) {
        if (config[f] !== c.config[f]) throw new EdgektError('EDGEKT_ERR_INTERNAL', `round config ${f}: the coordinator sent ${String(config[f])}, the bench asked ${String(c.config[f])}`);
      }
      return async (req) => {
        await mine.turn;
        try {
          return await mine.trainer(req);
        } finally {
          mine.done();
        }
      };
    };

    async function ensureAgent(id: string): Promise<void> {
      if (agents.has(id)) return;
      const device = generateKeyPair();
      const agent = createAgent({
        config: AgentConfigSchema.parse({
          broker: { url, reconnectSeconds: 0.5 }, device: { id, groups: ['fedbench'] }, trust: { coordinatorKeys: ['(in memory)'] }, datasets: {},
          stateDir: path.join(dir, 'agents', id), telemetry: { cron: '*/5 * * * * *' }, federated: { enabled: true },
        }),
        // One profile per simulated device: a round selects exactly the bench's clients by profile.
        profile: parseDeviceProfile({
          name: `fedbench-${id}`, description: 'a simulated device of the federated bench', match: { arch: [os.arch()] }, budgets: {}, runtime: { backend: 'cpu', threads: 1 },
          training: { batchSize: 32, maxRssMB: 1_000_000, maxTemperatureC: 150, allowedCron: '* * * * *' },
        }),
        secrets: {}, trustedKeys: trustedKeyMap([fleet.publicKey]), deviceKey: { privateKey: device.privateKey, publicKeyPem: publicKeyPem(device.publicKey) },
        run: async () => {
          throw new EdgektError('EDGEKT_ERR_INTERNAL', 'no compress jobs in the federated bench');
        },
        logger, roundTrainerFor: trainerFor(id),
      });
      agents.set(id, agent);
      await agent.start();
      for (let i = 0; !(await store.getDevice(id))?.online; i++) {
        if (i > 200) throw new EdgektError('EDGEKT_ERR_INTERNAL', `simulated device ${id} did not register with the coordinator`);
        await sleep(25);
      }
    }

    return {
      name: 'mqtt',
      async round(req) {
        for (const c of req.clients) await ensureAgent(c.id);
        const trainers = new Map<string, { trainer: RoundTrainer; turn: Promise<void>; done: () => void }>();
        let prior: Promise<void> = Promise.resolve();
        for (const c of req.clients as FleetClient[]) {
          let done!: () => void;
          const next = new Promise<void>((r) => (done = r));
          trainers.set(c.id, { trainer: c.trainer, turn: prior, done });
          prior = next;
        }
        current = { config: req.config, trainers };
        const runId = req.roundId;
        const global = await artifacts.publishFile(`${runId}/global-r${req.round - 1}`, 'global.ekup', encodeGlobal(req.global, req.round - 1, `${runId}-start`));
        const c = req.config;
        const spec = FederatedRunSpecSchema.parse({
          rounds: req.round, strategy: c.strategy, epochs: c.epochs, learningRate: c.learningRate, batchSize: c.batchSize, mu: c.mu, sigma: c.sigma, trimBeta: c.trimBeta, trimWeighted: c.trimWeighted,
          minHolders: c.minHolders, encoding: c.encoding, ...(c.clip !== undefined ? { clip: c.clip } : {}), deadlineSeconds: o.deadlineSeconds ?? 3600, maxAttempts: 1,
          selection: { fraction: 1, minCount: req.clients.length, profiles: req.clients.map((k) => `fedbench-${k.id}`), idleOnly: false },
        });
        await store.createFederatedRun({ id: runId, spec: { ...spec, baseSha256: model.sha256 } as never, globalSha256: global.sha256, roundNumber: req.round - 1 });
        let run = await store.getFederatedRun(runId);
        while (run && run.state === 'running') {
          await sleep(10);
          run = await store.getFederatedRun(runId);
        }
        current = null;
        const round = await store.getRound(roundIdFor(runId, req.round, 1));
        const result = round?.result as unknown as RoundResult | null;
        const ids = req.clients.map((k) => k.id);
        if (run?.state !== 'completed' || !result || [...result.included].sort().join() !== [...ids].sort().join()) {
          throw new EdgektError('EDGEKT_ERR_INTERNAL', `bench round ${runId} over MQTT: ${JSON.stringify({ state: run?.state, included: result?.included, refused: result?.refused, failed: result?.failed, dropped: result?.dropped })}`);
        }
        const rows = new Map((await store.listRoundUpdates(round!.id)).map((r) => [r.deviceId, r]));
        const out: ClientUpdate[] = [];
        for (const id of ids) {
          const u = decodeUpdate(new Uint8Array(await readFile(rows.get(id)!.payloadLocation))).update;
          out.push({ clientId: u.clientId, round: req.round, numSamples: u.numSamples, weights: u.weights, ...(u.indexMap ? { indexMap: u.indexMap } : {}) });
        }
        return out;
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
