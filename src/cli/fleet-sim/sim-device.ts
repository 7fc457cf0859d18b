import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { JobMessageSchema, type JobMessage } from '../../config/messages.js';
import { toEdgektError } from '../../core/errors.js';
import { createBlockServer, createMemoryBlockLedger, pullFile, type BlockSink } from '../../transport/blocks/index.js';
import { keyIdOf } from '../../transport/keys.js';
import { signManifest, verifyManifest } from '../../transport/signing.js';
import { allowServeResponse, topics } from '../../transport/topics.js';

export interface SimCounters {
  connected: number;
  jobs: number;
  duplicateJobs: number;
  succeeded: number;
  failed: number;
  bytesPulled: number;
  messagesOut: number;
  messagesIn: number;
}

export interface SimDeviceOptions {
  url: string;
  id: string;
  profile: string;
  trustedKeys: ReadonlyMap<string, KeyObject>;
  deviceKey: { privateKey: KeyObject; publicKeyPem: string };
  controlOnly: boolean;
  counters: SimCounters;
  telemetryMs: number;
  /** How this device's jobs go (default: every job succeeds with a good student). */
  behaviour?: SimBehaviour;
  /** Every job message the device accepted (compress and cancel), in arrival order: what tests count. */
  onMessage?: (message: JobMessage) => void;
}

/**
 * Misbehaviours for coordinator tests. At most one outcome applies; `stepMs` slows any of them.
 * A cancel for a job still in flight is answered with `canceled`, as the agent does.
 */
export interface SimBehaviour {
  /** Report `failed` with this error code after `downloading` (and the pull). */
  fail?: { code: string; message?: string };
  /** Stop after `received`: no further update until a cancel. */
  hang?: boolean;
  /** Sign the student manifest with another key, under the key id of the one in the device's status. */
  badStudentSignature?: boolean;
  /** Serve different bytes (same size) than the student manifest's sha256 says. */
  badStudentHash?: boolean;
  /** Drop the first job message unanswered, as if it was lost (the coordinator must send it again). */
  loseFirstJob?: boolean;
  /** Delay before each state update after `received`, ms (a job then takes ~7 × stepMs). */
  stepMs?: number;
}

const STATES = ['received', 'downloading', 'verified', 'lightening', 'distilling', 'pruning', 'benchmarking', 'reporting'] as const;

/** Counts bytes and hashes them as they land; keeps nothing (a thousand 5 MB downloads fit in memory that way). */
function hashingSink(): BlockSink & { sha256(): Promise<string> } {
  const parts = new Map<number, Uint8Array>();
  return {
    async write(index, _offset, bytes) {
      parts.set(index, bytes);
    },
    async read() {
      return Buffer.concat([...parts.entries()].sort((a, b) => a[0] - b[0]).map(([, b]) => b));
    },
    async sha256() {
      const h = createHash('sha256');
      for (const [, b] of [...parts.entries()].sort((a, b) => a[0] - b[0])) h.update(b);
      parts.clear();
      return h.digest('hex');
    },
  };
}

/**
 * A device that speaks the whole protocol — status with Last Will, telemetry, signed-manifest
 * verification, block pulls with hashes, sequenced updates, a signed student served over `serve` —
 * but skips the training: what `edgekt bench fleet` runs by the thousand.
 */
export function startSimDevice(o: SimDeviceOptions): MqttClient {
  const id = o.id;
  const status = (state: 'online' | 'offline') => JSON.stringify({
    type: 'status', deviceId: id, state, at: new Date().toISOString(), profile: o.profile, groups: ['sim'], versions: { edgekt: 'sim' },
    capacity: { arch: 'sim', cpus: 1, memoryMB: 1024 }, publicKey: o.deviceKey.publicKeyPem,
  });
  const client = mqtt.connect(o.url, {
    protocolVersion: 5, clientId: `sim-${id}`, clean: true, reconnectPeriod: 1000, keepalive: 120, connectTimeout: 60_000,
    will: { topic: topics.status(id), payload: Buffer.from(status('offline')), qos: 1, retain: true },
  });
  client.setMaxListeners(0);
  const seen = new Set<string>();
  /** Jobs in flight: a cancel settles them (`canceled`) and stops their next update. */
  const active = new Map<string, { canceled: boolean; cancel: () => void }>();
  const students = new Map<string, Uint8Array>();
  const b = o.behaviour ?? {};
  let lostOne = false;
  createBlockServer({
    client, requestFilter: topics.serve(id), allowResponseTopic: allowServeResponse,
    source: { stat: async (sha) => (students.has(sha) ? { size: students.get(sha)!.byteLength } : null), read: async (sha, off, len) => students.get(sha)!.subarray(off, off + len) },
  });
  let telemetry: NodeJS.Timeout | null = null;
  const pub = (topic: string, payload: string, retain = false): Promise<unknown> => {
    o.counters.messagesOut++;
    return client.publishAsync(topic, payload, { qos: 1, retain });
  };
  const sendTelemetry = (): void => {
    o.counters.messagesOut++;
    client.publish(topics.telemetry(id), JSON.stringify({
      type: 'telemetry', deviceId: id, at: new Date().toISOString(), cpuLoadPercent: 5, loadAverage1: 0.1, memUsedMB: 100, memTotalMB: 1024,
      rssMB: 60, temperatureC: 45, throttled: null, activeJob: null, paused: null,
    }), { qos: 0 });
  };
  client.once('connect', () => {
    o.counters.connected++;
    void pub(topics.status(id), status('online'), true);
    sendTelemetry();
    telemetry = setInterval(sendTelemetry, o.telemetryMs);
    telemetry.unref();
  });
  client.subscribe(topics.jobs(id), { qos: 1 });
  client.on('message', (topic, payload) => {
    if (topic !== topics.jobs(id)) return;
    o.counters.messagesIn++;
    void onJob(payload).catch(() => {
      o.counters.failed++;
    });
  });

  async function onJob(payload: Buffer): Promise<void> {
    const msg = JobMessageSchema.parse(JSON.parse(payload.toString('utf8')));
    o.onMessage?.(msg);
    if (msg.type === 'cancel') {
      active.get(msg.jobId)?.cancel();
      return;
    }
    if (b.loseFirstJob && !lostOne) {
      lostOne = true;
      return;
    }
    if (seen.has(msg.jobId)) {
      o.counters.duplicateJobs++;
      return;
    }
    seen.add(msg.jobId);
    o.counters.jobs++;
    let seq = 0;
    const update = (state: string, extra: object = {}): Promise<unknown> =>
      pub(topics.jobUpdate(id, msg.jobId), JSON.stringify({ kind: 'state', jobId: msg.jobId, seq: ++seq, progressSeq: 0, state, at: Date.now(), ...extra }));
    let wake: () => void = () => undefined;
    const job = {
      canceled: false,
      cancel: () => {
        if (job.canceled) return;
        job.canceled = true;
        active.delete(msg.jobId);
        wake();
        void update('canceled', { error: { code: 'EDGEKT_ERR_ABORTED', message: 'canceled by the coordinator' } });
      },
    };
    active.set(msg.jobId, job);
    /** Waits stepMs (or forever, for a hang) unless canceled; false once canceled. */
    const pause = (ms: number): Promise<boolean> => new Promise((resolve) => {
      if (job.canceled) return resolve(false);
      const t = Number.isFinite(ms) ? setTimeout(() => resolve(!job.canceled), ms) : undefined;
      wake = () => {
        clearTimeout(t);
        resolve(false);
      };
    });
    await update('received');
    try {
      if (b.hang) {
        await pause(Infinity);
        return;
      }
      const step = async (state: string): Promise<boolean> => {
        if (b.stepMs && !(await pause(b.stepMs))) return false;
        if (job.canceled) return false;
        await update(state);
        return true;
      };
      const m = verifyManifest(msg.manifest, { trustedKeys: o.trustedKeys, now: Date.now(), deviceId: id, groups: ['sim'] });
      if (!(await step('downloading'))) return;
      if (!o.controlOnly) {
        for (const f of m.files) {
          const sink = hashingSink();
          await pullFile({
            client, requestTopic: topics.pull(id), responseTopicPrefix: topics.deviceBlocks(id, 'sim'), window: 4, timeoutMs: 30_000, retries: 20,
            file: { sha256: f.sha256, size: f.size, blockSize: f.blockSize, ...(f.blocks ? { blocks: f.blocks } : {}) }, ledger: createMemoryBlockLedger(), sink,
          });
          o.counters.bytesPulled += f.size;
        }
      }
      if (b.fail) {
        if (b.stepMs && !(await pause(b.stepMs))) return;
        active.delete(msg.jobId);
        await update('failed', { error: { code: b.fail.code, message: b.fail.message ?? 'simulated failure' } });
        o.counters.failed++;
        return;
      }
      for (const s of STATES.slice(2)) if (!(await step(s))) return;
      const student = new TextEncoder().encode(JSON.stringify({ sim: id, job: msg.jobId }));
      const sha256 = createHash('sha256').update(student).digest('hex');
      // badStudentHash: the manifest names `student`, the serve topic answers with other bytes of the same size.
      students.set(sha256, b.badStudentHash ? student.map((x) => x ^ 0xff) : student);
      const now = Date.now();
      const signer = b.badStudentSignature ? generateKeyPairSync('ed25519').privateKey : o.deviceKey.privateKey;
      const signed = signManifest({
        schema: 1, kind: 'student', name: `${id}.${msg.jobId}`, version: 1, target: { groups: ['coordinators'] }, issuedAt: new Date(now).toISOString(),
        expires: new Date(now + 86400_000).toISOString(), files: [{ path: 'weights.bin', size: student.byteLength, sha256, blockSize: 4096 }],
      }, signer);
      // A forgery: another key's signature under this device's key id (the coordinator must say EDGEKT_ERR_SIGNATURE).
      const envelope = b.badStudentSignature ? { ...signed, signatures: signed.signatures.map((x) => ({ ...x, keyId: keyIdOf(o.deviceKey.privateKey) })) } : signed;
      const report = { profile: o.profile, met: true, teacher: { params: 878106, latencyP95Ms: 2, accuracy: 0.98 }, student: { params: 10000, latencyP95Ms: 0.5, accuracy: 0.97 } };
      if (b.stepMs && !(await pause(b.stepMs))) return;
      active.delete(msg.jobId);
      await update('succeeded', { result: { met: true, report, student: envelope } });
      o.counters.succeeded++;
    } catch (e) {
      active.delete(msg.jobId);
      if (job.canceled) return;
      await update('rejected', { error: { code: toEdgektError(e).code, message: toEdgektError(e).message } });
      o.counters.failed++;
    }
  }
  client.on('close', () => {
    if (telemetry) clearInterval(telemetry);
  });
  return client;
}
