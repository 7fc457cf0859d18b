import { createHash, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { AgentConfigSchema } from '../../src/config/agent-config.js';
import { parseDeviceProfile } from '../../src/config/device-profile.js';
import { RoundReportSchema, type RoundReport } from '../../src/config/federated.js';
import type { Manifest } from '../../src/config/manifest.js';
import { createAgent, type Agent } from '../../src/agent/daemon.js';
import type { RoundTrainerFor } from '../../src/agent/round-client.js';
import type { HostSample } from '../../src/agent/telemetry.js';
import { decodeUpdate, encodeUpdate, type DecodedUpdate, type WeightSet } from '../../src/federated/index.js';
import { createMemoryBlockLedger, createMemoryBlockSink, pullFile } from '../../src/transport/blocks/index.js';
import { generateKeyPair, publicKeyPem, trustedKeyMap, type KeyPair } from '../../src/transport/keys.js';
import { signManifest, verifyEnvelope } from '../../src/transport/signing.js';
import { filters, topics } from '../../src/transport/topics.js';
import { blockHashes, serveFiles, TINY_PROFILE } from './fleet.js';

/** An aedes broker on a port it keeps across `stop()` / `start()` (a broker outage in a test). */
export async function restartableAedes(): Promise<{ url: string; start(): Promise<void>; stop(): Promise<void> }> {
  let port = 0;
  let broker: Aedes | null = null;
  let server: net.Server | null = null;
  const b = {
    url: '',
    async start() {
      broker = await Aedes.createBroker();
      server = net.createServer(broker.handle);
      await new Promise<void>((r) => server!.listen(port, '127.0.0.1', r));
      port = (server.address() as AddressInfo).port;
      b.url = `mqtt://127.0.0.1:${port}`;
    },
    async stop() {
      await new Promise<void>((r) => broker!.close(() => r()));
      await new Promise<void>((r) => server!.close(() => r()));
    },
  };
  await b.start();
  return b;
}

/** A mutable host reading: tests push RSS over the profile limit to pause work. */
export const hostSample = (): HostSample & { rssMB: number } => ({ cpuLoadPercent: 1, loadAverage1: 0.1, memUsedMB: 100, memTotalMB: 1000, rssMB: 100, temperatureC: null, throttled: null });

export interface InProcessAgent {
  agent: Agent;
  deviceId: string;
  dir: string;
  deviceKey: KeyPair;
  sample: ReturnType<typeof hostSample>;
  log: string[];
  start(): Promise<void>;
  /** A fresh daemon on the same state dir (a restart). */
  restart(): Promise<void>;
  stop(): Promise<void>;
  remove(): Promise<void>;
}

/** The real daemon in this process (aedes speaks 3.1.1), with real SQLite state, trusting `fleet`. */
export function inProcessAgent(o: { brokerUrl: string; deviceId: string; fleet: KeyPair; trainerFor?: RoundTrainerFor; federated?: object; profile?: object; reconnectSeconds?: number; datasets?: Record<string, string> }): InProcessAgent {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-rounds-'));
  const deviceKey = generateKeyPair();
  const log: string[] = [];
  const sample = hostSample();
  const config = AgentConfigSchema.parse({
    broker: { url: o.brokerUrl, protocolVersion: 4, reconnectSeconds: o.reconnectSeconds ?? 0.3 },
    device: { id: o.deviceId, groups: ['lab'] },
    trust: { coordinatorKeys: ['(in memory)'] },
    datasets: o.datasets ?? {},
    stateDir: path.join(dir, 'state'),
    telemetry: { cron: '* * * * * *' },
    federated: o.federated ?? { enabled: true },
  });
  const make = (): Agent => createAgent({
    config, profile: parseDeviceProfile(o.profile ?? TINY_PROFILE), secrets: {}, trustedKeys: trustedKeyMap([o.fleet.publicKey]),
    deviceKey: { privateKey: deviceKey.privateKey, publicKeyPem: publicKeyPem(deviceKey.publicKey) },
    run: async () => {
      throw new Error('no compress jobs in this test');
    },
    logger: pino({ level: 'debug' }, { write: (s: string) => void log.push(s.trimEnd()) }),
    sampler: async () => ({ ...sample }),
    ...(o.trainerFor ? { roundTrainerFor: o.trainerFor } : {}),
  });
  const h: InProcessAgent = {
    agent: make(), deviceId: o.deviceId, dir, deviceKey, sample, log,
    async start() {
      await h.agent.start();
      await new Promise<void>((r) => (h.agent.client!.connected ? r() : h.agent.client!.once('connect', () => r())));
      await new Promise((r) => setTimeout(r, 100)); // its subscriptions land
    },
    async restart() {
      await h.agent.stop();
      h.agent = make();
      await h.start();
    },
    stop: () => h.agent.stop(),
    async remove() {
      await h.agent.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The test's coordinator, speaking exactly the round protocol: serves files, signs invites, collects reports, pulls updates. */
export async function stubCoordinator(url: string) {
  const client: MqttClient = mqtt.connect(url, { protocolVersion: 4, clientId: 'stub-coordinator', reconnectPeriod: 100 });
  await new Promise<void>((r, j) => {
    client.once('connect', () => r());
    client.once('error', j);
  });
  const files = new Map<string, Uint8Array>();
  const served = serveFiles(client, files);
  await served.server.ready;
  const reports: Array<RoundReport & { topic: string }> = [];
  const telemetry: Array<{ deviceId: string; activeJob: { jobId: string; state: string } | null }> = [];
  await client.subscribeAsync([filters.allRoundReports, filters.allTelemetry], { qos: 1 });
  client.on('message', (topic, payload) => {
    if (topic.endsWith('/telemetry')) telemetry.push(JSON.parse(payload.toString('utf8')));
    else if (topic.includes('/rounds/')) reports.push({ ...RoundReportSchema.parse(JSON.parse(payload.toString('utf8'))), topic });
  });
  const blockSize = 1024;
  const fileEntry = (p: string, bytes: Uint8Array) => {
    files.set(sha256(bytes), bytes);
    return { path: p, size: bytes.byteLength, sha256: sha256(bytes), blockSize, blocks: blockHashes(bytes, blockSize) };
  };

  return {
    client, files, served, reports, telemetry,
    /** A signed invite: global.ekup (EKUP float32 `weights`) + model.json under the fleet key, RoundConfig in meta.round. */
    invite(o: { deviceId: string; roundId: string; round: number; global: WeightSet; key: KeyObject; modelJson?: string; runId?: string; deadlineMs?: number; encoding?: 'float32' | 'float16'; config?: object }): string {
      const globalBytes = encodeUpdate({ clientId: 'global', round: o.round, numSamples: 1, weights: o.global }, { roundId: o.roundId, encoding: 'float32' });
      const model = new TextEncoder().encode(o.modelJson ?? JSON.stringify({ modelTopology: { class_name: 'Sequential' }, weightsManifest: [] }));
      const g = fileEntry('global.ekup', globalBytes);
      const m = fileEntry('model.json', model);
      const now = Date.now();
      const config = {
        type: 'round-config', roundId: o.roundId, round: o.round, strategy: 'fedavg', epochs: 1, learningRate: 0.01, batchSize: 8,
        deadline: new Date(now + (o.deadlineMs ?? 60_000)).toISOString(), encoding: o.encoding ?? 'float32', runId: o.runId ?? 'run1',
        globalSha256: g.sha256, baseSha256: m.sha256, ...o.config,
      };
      const manifest: Manifest = {
        schema: 1, kind: 'weights', name: `global.${o.roundId}`, version: now, target: { devices: [o.deviceId] },
        issuedAt: new Date(now - 1000).toISOString(), expires: new Date(now + 3600_000).toISOString(), files: [g, m], meta: { round: config },
      };
      return JSON.stringify({ type: 'round-invite', roundId: o.roundId, manifest: signManifest(manifest, o.key) });
    },
    send: (deviceId: string, payload: string) => client.publishAsync(topics.jobs(deviceId), payload, { qos: 1 }),
    async report(roundId: string, deviceId: string, ms = 30_000, what = `${deviceId}'s report for ${roundId}`): Promise<RoundReport & { topic: string }> {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = reports.find((r) => r.roundId === roundId && r.deviceId === deviceId);
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(reports.map((r) => [r.roundId, r.deviceId, r.type]))}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    /** Verifies the device manifest with the device key, pulls the file over the device's serve topic, checks its hash, decodes it. */
    async pullUpdate(r: RoundReport, devicePublicKey: KeyObject): Promise<{ manifest: Manifest; decoded: DecodedUpdate }> {
      if (r.type !== 'round-update') throw new Error(`not an update: ${JSON.stringify(r)}`);
      const manifest = verifyEnvelope(r.manifest, { trustedKeys: [devicePublicKey], now: Date.now() });
      const f = manifest.files[0]!;
      const sink = createMemoryBlockSink(f.size);
      await pullFile({
        client, requestTopic: topics.serve(r.deviceId), responseTopicPrefix: topics.coordinatorBlocksPrefix('stub'),
        file: { sha256: f.sha256, size: f.size, blockSize: f.blockSize, ...(f.blocks ? { blocks: f.blocks } : {}) }, ledger: createMemoryBlockLedger(), sink,
      });
      if (sha256(sink.bytes) !== f.sha256) throw new Error('update file hash mismatch');
      return { manifest, decoded: decodeUpdate(sink.bytes) };
    },
    stop: () => client.endAsync(true),
  };
}
