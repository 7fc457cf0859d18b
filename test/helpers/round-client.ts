import { createHash } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { parseRoundConfig, RoundInviteSchema, updateManifestIdentity, type RoundConfig, type UpdateSummary } from '../../src/config/federated.js';
import type { Manifest, ManifestFile } from '../../src/config/manifest.js';
import { decodeUpdate, encodeUpdate, type ClientUpdate, type WeightSet, type WeightTensor } from '../../src/federated/index.js';
import { createBlockServer, createMemoryBlockLedger, createMemoryBlockSink, pullFile } from '../../src/transport/blocks/index.js';
import { generateKeyPair, keyIdOf, publicKeyPem, type KeyPair } from '../../src/transport/keys.js';
import { signManifest, verifyManifest } from '../../src/transport/signing.js';
import { allowServeResponse, topics } from '../../src/transport/topics.js';

/** How a simulated client answers (default: global + delta, float32, honestly signed). */
export interface RoundClientBehaviour {
  /** Added to every coordinate of the global (or a function of the tensor name and index). */
  delta?: number | ((name: string, i: number) => number);
  numSamples?: number;
  metrics?: Record<string, number>;
  /** Never answers invites. */
  silent?: boolean;
  /** Ends its MQTT connection as soon as it got the invite (a crash mid-round). */
  disconnectOnInvite?: boolean;
  /** Waits this long before answering. */
  delayMs?: number;
  /** Answers with round-failed and this code. */
  fail?: string;
  badSignature?: boolean;
  badHash?: boolean;
  nan?: boolean;
  wrongShape?: boolean;
  badIndexMap?: boolean;
  /** Reports (and encodes) round − 1. */
  staleRound?: boolean;
  /** Signs its update manifest under this name instead of the round's (all else right). */
  manifestName?: string;
  /** Signs its update manifest targeting this device instead of itself (all else right). */
  manifestDevice?: string;
}

export interface RoundClient {
  id: string;
  key: KeyPair;
  /** Invites received (round ids, in order). */
  invites: string[];
  configs: RoundConfig[];
  /** Reports published (round ids). */
  reported: string[];
  /** Publishes an update for `roundId` without an invite (a device the round did not select). */
  intrude(roundId: string, round: number, weights: WeightSet): Promise<void>;
  stop(): Promise<void>;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function fileEntry(bytes: Uint8Array, path: string, blockSize = 1024): ManifestFile {
  const blocks: string[] = [];
  for (let at = 0; at < bytes.length; at += blockSize) blocks.push(sha(bytes.subarray(at, Math.min(bytes.length, at + blockSize))));
  return { path, size: bytes.length, sha256: sha(bytes), blockSize, blocks };
}

/**
 * A protocol-level round client: real MQTT (3.1.1 for aedes), the real block client to pull the
 * global and the real block server to serve its update, real Ed25519 signing. Training is replaced
 * by a known delta, so a test can compute the aggregate by hand.
 */
export async function startRoundClient(o: { url: string; id: string; fleetKey: KeyPair; profile?: string; behaviour?: RoundClientBehaviour; protocolVersion?: 4 | 5 }): Promise<RoundClient> {
  const id = o.id;
  const key = generateKeyPair();
  const b = o.behaviour ?? {};
  const status = (state: 'online' | 'offline'): string => JSON.stringify({
    type: 'status', deviceId: id, state, at: new Date().toISOString(), profile: o.profile ?? 'sim-small', groups: ['sim'], versions: { edgekt: 'sim' },
    capacity: { arch: 'sim', cpus: 1, memoryMB: 1024 }, publicKey: publicKeyPem(key.publicKey),
  });
  const client: MqttClient = mqtt.connect(o.url, {
    protocolVersion: o.protocolVersion ?? 4, clientId: `round-${id}`, clean: true, reconnectPeriod: 0,
    will: { topic: topics.status(id), payload: Buffer.from(status('offline')), qos: 1, retain: true },
  });
  client.setMaxListeners(0);
  const served = new Map<string, Uint8Array>();
  let timer: NodeJS.Timeout | undefined;
  createBlockServer({
    client, requestFilter: topics.serve(id), allowResponseTopic: allowServeResponse,
    source: { stat: async (s) => (served.has(s) ? { size: served.get(s)!.byteLength } : null), read: async (s, off, len) => served.get(s)!.subarray(off, off + len) },
  });
  const self: RoundClient = { id, key, invites: [], configs: [], reported: [], intrude, stop: async () => {
    clearInterval(timer);
    await client.endAsync(true);
  } };
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(topics.jobs(id), { qos: 1 });
  await client.publishAsync(topics.status(id), status('online'), { qos: 1, retain: true });
  // Telemetry of a device not yet registered is ignored, so it repeats (as an agent's does).
  const telemetry = (): void => void client.publish(topics.telemetry(id), JSON.stringify({
    type: 'telemetry', deviceId: id, at: new Date().toISOString(), cpuLoadPercent: 5, loadAverage1: 0.1, memUsedMB: 100, memTotalMB: 1024,
    rssMB: 60, temperatureC: 45, throttled: null, activeJob: null, paused: null,
  }), { qos: 0 });
  telemetry();
  timer = setInterval(telemetry, 250);
  timer.unref();

  async function publishUpdate(roundId: string, round: number, update: ClientUpdate, encoding: 'float32' | 'float16'): Promise<void> {
    const bytes = encodeUpdate(update, { roundId, encoding, metrics: b.metrics ?? {} });
    const entry = fileEntry(bytes, 'update.ekup');
    served.set(entry.sha256, b.badHash ? bytes.map((x, i) => (i === bytes.length - 1 ? x ^ 0xff : x)) : bytes);
    const summary: UpdateSummary = { roundId, round, numSamples: update.numSamples, encoding, payload: update.isDelta ? 'delta' : 'weights', metrics: b.metrics ?? {} };
    const now = Date.now();
    const manifest: Manifest = {
      schema: 1, kind: 'weights', ...updateManifestIdentity(b.manifestName ?? roundId, b.manifestDevice ?? id), version: now,
      issuedAt: new Date(now).toISOString(), expires: new Date(now + 3600_000).toISOString(), files: [entry], meta: { update: summary },
    };
    let envelope = signManifest(manifest, key.privateKey);
    if (b.badSignature) {
      // Signed by another key, under this device's key id: the pinned key does not verify it.
      const other = signManifest(manifest, generateKeyPair().privateKey);
      envelope = { ...other, signatures: [{ keyId: keyIdOf(key.privateKey), sig: other.signatures[0]!.sig }] };
    }
    await client.publishAsync(topics.roundReport(roundId, id), JSON.stringify({ type: 'round-update', roundId, deviceId: id, round, manifest: envelope }), { qos: 1 });
    self.reported.push(roundId);
  }

  async function intrude(roundId: string, round: number, weights: WeightSet): Promise<void> {
    await publishUpdate(roundId, round, { clientId: id, round, numSamples: 10, weights }, 'float32');
  }

  async function onInvite(payload: Buffer): Promise<void> {
    const inv = RoundInviteSchema.safeParse(JSON.parse(payload.toString('utf8')));
    if (!inv.success || self.invites.includes(inv.data.roundId)) return;
    self.invites.push(inv.data.roundId);
    const m = verifyManifest(inv.data.manifest, { trustedKeys: [o.fleetKey.publicKey], now: Date.now(), deviceId: id, groups: ['sim'] });
    const config = parseRoundConfig(m.meta?.round);
    self.configs.push(config);
    if (b.disconnectOnInvite) {
      clearInterval(timer);
      return void client.end(true);
    }
    if (b.silent) return;
    const f = m.files.find((x) => x.path === 'global.ekup')!;
    const sink = createMemoryBlockSink(f.size);
    await pullFile({
      client, requestTopic: topics.pull(id), responseTopicPrefix: topics.deviceBlocks(id, 'round'), timeoutMs: 5000, retries: 5,
      file: { sha256: f.sha256, size: f.size, blockSize: f.blockSize, ...(f.blocks ? { blocks: f.blocks } : {}) }, ledger: createMemoryBlockLedger(), sink,
    });
    const global = decodeUpdate(await sink.read()).update.weights;
    if (b.delayMs) await new Promise((r) => setTimeout(r, b.delayMs));
    const round = b.staleRound ? config.round - 1 : config.round;
    if (b.fail) {
      await client.publishAsync(topics.roundReport(config.roundId, id), JSON.stringify({ type: 'round-failed', roundId: config.roundId, deviceId: id, round, error: { code: b.fail, message: 'simulated' } }), { qos: 1 });
      self.reported.push(config.roundId);
      return;
    }
    const d = b.delta ?? 0;
    const weights: Record<string, WeightTensor> = {};
    for (const [name, t] of Object.entries(global)) {
      const values = Float32Array.from(t.values, (v, i) => v + (typeof d === 'number' ? d : d(name, i)));
      weights[name] = { shape: [...t.shape], values };
    }
    const names = Object.keys(weights);
    if (b.nan) weights[names[0]!]!.values[0] = Number.NaN;
    if (b.wrongShape) {
      const t = weights[names[0]!]!;
      weights[names[0]!] = { shape: [t.values.length - 1], values: t.values.subarray(0, t.values.length - 1) };
    }
    const update: ClientUpdate = { clientId: id, round, numSamples: b.numSamples ?? 10, weights };
    if (b.badIndexMap) update.indexMap = { [names[0]!]: weights[names[0]!]!.shape.map((dim) => [dim + 5]) };
    await publishUpdate(config.roundId, round, update, config.encoding);
  }

  client.on('message', (topic, payload) => {
    if (topic === topics.jobs(id)) void onInvite(payload).catch(() => undefined);
  });
  return self;
}
