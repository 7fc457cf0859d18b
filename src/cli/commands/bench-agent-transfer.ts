import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Manifest } from '../../config/manifest.js';
import { EdgektError } from '../../core/errors.js';
import { openDatabase } from '../../store/sqlite.js';
import { createBlockLedger } from '../../store/block-ledger.js';
import { createBlockServer, createFileBlockSink, pullFile, type BlockServer } from '../../transport/blocks/index.js';
import { manifestForDir } from '../../transport/manifest-dir.js';
import { TOPIC_PREFIX, allowPullResponse, topics } from '../../transport/topics.js';
import { spawnMosquitto } from '../spawn-mosquitto.js';

/** Pieces of `edgekt bench agent`: a spawned broker, the bench teacher, one transfer each way. */

const MOSQUITTO_SUB = 'mosquitto_sub';
const MOSQUITTO_PUB = 'mosquitto_pub';
/** The agent's defaults (AgentConfigSchema `limits.window`, manifest DEFAULT_BLOCK_SIZE). */
export const AGENT_WINDOW = 8;
export const BLOCK_SIZE = 64 * 1024;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const round = (v: number, digits = 3): number => Math.round(v * 10 ** digits) / 10 ** digits;

export interface Spread {
  median: number;
  min: number;
  max: number;
  values: number[];
}

export function spreadOf(values: readonly number[]): Spread {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median: round(median), min: round(s[0]!), max: round(s[s.length - 1]!), values: values.map((v) => round(v)) };
}

export interface Broker {
  port: number;
  url: string;
  stop(): void;
}

/** Debian's mosquitto on a free port: MQTT 5, anonymous, no persistence, no message size cap. */
export async function startBroker(dir: string): Promise<Broker> {
  const b = await spawnMosquitto({ dir });
  return { port: b.port, url: b.url, stop: b.stop };
}

export async function connect(url: string, clientId: string): Promise<MqttClient> {
  const c = mqtt.connect(url, { protocolVersion: 5, clientId, reconnectPeriod: 500 });
  await new Promise<void>((resolve, reject) => c.once('connect', () => resolve()).once('error', reject));
  return c;
}

// --- the teacher and its two transfers ----------------------------------------------------------

export interface BenchTeacher {
  dir: string;
  manifest: Manifest;
  bytes: number;
  /** sha256 → file bytes, what the block server serves. */
  files: Map<string, Uint8Array>;
}

/** Random bytes as weights.bin plus a small model.json, with its manifest (64 KB blocks). */
export async function writeTeacherDir(dir: string, o: { deviceId: string; weightsBytes?: number; name: string; version: number }): Promise<BenchTeacher> {
  mkdirSync(dir, { recursive: true });
  if (o.weightsBytes !== undefined) {
    writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ format: 'layers-model', bench: true, weightsManifest: [{ paths: ['weights.bin'], weights: [] }] }));
    writeFileSync(path.join(dir, 'weights.bin'), randomBytes(o.weightsBytes));
  }
  const manifest = await manifestForDir(dir, { kind: 'teacher', name: o.name, version: o.version, target: { devices: [o.deviceId] }, expiresInSeconds: 3600, blockSize: BLOCK_SIZE });
  const files = new Map<string, Uint8Array>();
  for (const f of manifest.files) files.set(f.sha256, new Uint8Array(readFileSync(path.join(dir, f.path))));
  return { dir, manifest, bytes: manifest.files.reduce((a, f) => a + f.size, 0), files };
}

/** The coordinator's side: serves teachers' files from memory on every device's pull topic. */
export function serveTeachers(client: MqttClient, files: Map<string, Uint8Array>): BlockServer {
  return createBlockServer({
    client, requestFilter: `${TOPIC_PREFIX}/devices/+/pull`, allowResponseTopic: allowPullResponse,
    source: {
      stat: async (sha) => (files.has(sha) ? { size: files.get(sha)!.byteLength } : null),
      read: async (sha, offset, length) => files.get(sha)!.subarray(offset, offset + length),
    },
  });
}

export interface TransferTrial {
  seconds: number;
  bytes: number;
}

/**
 * Pulls every file of the teacher as the agent's executor does: file sink (fsync per block), the
 * SQLite block ledger on a WAL database with synchronous=FULL, the agent's window, trusted block
 * hashes; the time runs from the first ledger row to the last whole-file sha256 check.
 */
export async function pullTeacher(device: MqttClient, deviceId: string, t: BenchTeacher, dir: string, trial: number): Promise<TransferTrial> {
  mkdirSync(dir, { recursive: true });
  const db = openDatabase(path.join(dir, 'agent.db'));
  try {
    const t0 = performance.now();
    for (const f of t.manifest.files) {
      const ledger = createBlockLedger(db, `bench-${trial}:${f.path}`, Math.ceil(f.size / f.blockSize));
      const sink = await createFileBlockSink(path.join(dir, f.path), f.size);
      try {
        await pullFile({
          client: device, requestTopic: topics.pull(deviceId), responseTopicPrefix: topics.deviceBlocks(deviceId, `bench-${trial}`),
          file: { sha256: f.sha256, size: f.size, blockSize: f.blockSize, ...(f.blocks ? { blocks: f.blocks } : {}) }, ledger, sink, window: AGENT_WINDOW,
        });
      } finally {
        await sink.close();
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    let bytes = 0;
    for (const f of t.manifest.files) {
      const got = readFileSync(path.join(dir, f.path));
      if (createHash('sha256').update(got).digest('hex') !== f.sha256) throw new EdgektError('EDGEKT_ERR_HASH', `bench transfer: ${f.path} differs`);
      bytes += got.byteLength;
    }
    return { seconds, bytes };
  } finally {
    db.close();
  }
}

/**
 * The same bytes as one plain message: `mosquitto_sub -C 1` (debug output, to know when it is
 * subscribed and where the payload starts; unbuffered through stdbuf, or a pipe holds the debug
 * lines back), then `mosquitto_pub -f FILE`; the time runs from spawning mosquitto_pub to the
 * payload's last byte reaching us (so it includes that process's start-up, a few ms).
 */
export async function plainTransfer(broker: Broker, file: string, topic: string): Promise<TransferTrial> {
  const expected = readFileSync(file);
  const sub = spawn('stdbuf', ['-o0', MOSQUITTO_SUB, '-d', '-N', '-C', '1', '-W', '120', '-h', '127.0.0.1', '-p', String(broker.port), '-t', topic], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    // Chunks are kept, not concatenated as they come: copying 5 MB per chunk would bill the plain side.
    const chunks: Buffer[] = [];
    let length = 0;
    let head = '';
    let payloadAt = -1;
    let t0 = 0;
    return await new Promise<TransferTrial>((resolve, reject) => {
      sub.stdout!.on('data', (d: Buffer) => {
        chunks.push(d);
        length += d.length;
        if (payloadAt < 0) {
          head += d.toString('latin1');
          if (t0 === 0 && head.includes('Subscribed (mid')) {
            t0 = performance.now();
            spawn(MOSQUITTO_PUB, ['-h', '127.0.0.1', '-p', String(broker.port), '-t', topic, '-f', file], { stdio: 'ignore' }).once('error', reject);
          }
          const m = /received PUBLISH \([^\n]*\((\d+) bytes\)\)\n/.exec(head);
          if (m) payloadAt = m.index + m[0].length;
        }
        if (payloadAt >= 0 && length - payloadAt >= expected.length) {
          const seconds = (performance.now() - t0) / 1000;
          const got = Buffer.concat(chunks).subarray(payloadAt, payloadAt + expected.length);
          if (!got.equals(expected)) return reject(new EdgektError('EDGEKT_ERR_HASH', 'bench transfer: mosquitto_sub received other bytes'));
          resolve({ seconds, bytes: got.length });
        }
      });
      sub.once('error', (e) => reject(new EdgektError('EDGEKT_ERR_INTERNAL', `${MOSQUITTO_SUB}: ${e.message} (install mosquitto-clients)`)));
      sub.once('exit', (code) => setTimeout(() => reject(new EdgektError('EDGEKT_ERR_INTERNAL', `${MOSQUITTO_SUB} exited ${code} before the payload`)), 100));
    });
  } finally {
    if (sub.exitCode === null) sub.kill('SIGKILL');
  }
}

export interface TransferBench {
  bytes: number;
  trials: number;
  blockSize: number;
  window: number;
  blocks: { seconds: Spread; mbPerSecond: Spread };
  plain: { seconds: Spread; mbPerSecond: Spread };
  /** Median block-protocol seconds over median plain seconds, same run. */
  ratio: number;
}

/** Block protocol and plain mosquitto_pub/sub of the same teacher, alternating A, B, A, B. */
export async function runTransferBench(o: { broker: Broker; dir: string; mb: number; trials: number; say?: (s: string) => void }): Promise<TransferBench> {
  const deviceId = 'bench-xfer';
  const teacher = await writeTeacherDir(path.join(o.dir, 'xfer-teacher'), { deviceId, weightsBytes: Math.round(o.mb * 2 ** 20), name: 'bench-xfer', version: 1 });
  // The plain side sends the same bytes in one message: the teacher's files concatenated.
  const all = path.join(o.dir, 'xfer-all.bin');
  writeFileSync(all, Buffer.concat(teacher.manifest.files.map((f) => teacher.files.get(f.sha256)!)));
  const coord = await connect(o.broker.url, 'bench-coordinator-xfer');
  const device = await connect(o.broker.url, 'bench-device-xfer');
  const server = serveTeachers(coord, teacher.files);
  try {
    await server.ready;
    const blocks: TransferTrial[] = [];
    const plain: TransferTrial[] = [];
    for (let i = 0; i < o.trials; i++) {
      blocks.push(await pullTeacher(device, deviceId, teacher, path.join(o.dir, `xfer-${i}`), i));
      plain.push(await plainTransfer(o.broker, all, `bench/plain/${i}`));
      o.say?.(`transfer trial ${i + 1}/${o.trials}: blocks ${blocks[i]!.seconds.toFixed(3)} s, plain ${plain[i]!.seconds.toFixed(3)} s`);
    }
    for (const t of [...blocks, ...plain]) {
      if (t.bytes !== teacher.bytes) throw new EdgektError('EDGEKT_ERR_INTERNAL', `bench transfer moved ${t.bytes} bytes, not ${teacher.bytes}`);
    }
    const mbps = (ts: TransferTrial[]): Spread => spreadOf(ts.map((t) => t.bytes / 2 ** 20 / t.seconds));
    const b = spreadOf(blocks.map((t) => t.seconds));
    const p = spreadOf(plain.map((t) => t.seconds));
    return {
      bytes: teacher.bytes, trials: o.trials, blockSize: BLOCK_SIZE, window: AGENT_WINDOW,
      blocks: { seconds: b, mbPerSecond: mbps(blocks) }, plain: { seconds: p, mbPerSecond: mbps(plain) }, ratio: round(b.median / p.median, 2),
    };
  } finally {
    await server.close();
    await device.endAsync(true);
    await coord.endAsync(true);
  }
}
