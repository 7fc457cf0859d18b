import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Manifest } from '../../src/config/manifest.js';
import { createBlockServer, type BlockServer } from '../../src/transport/blocks/index.js';
import { generateKeyPair, publicKeyPem, type KeyPair } from '../../src/transport/keys.js';
import { signManifest } from '../../src/transport/signing.js';
import { allowPullResponse } from '../../src/transport/topics.js';
import { saveModel } from '../../src/model/io.js';
import { vggTeacher } from './model-fixtures.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

export const BIN = path.resolve(__dirname, '..', '..', 'bin', 'edgekt.js');

/** Small but real settings of the agent tests: 400 mnist samples, one epoch of each stage. */
export const TINY_SETTINGS = { limit: 400, distillEpochs: 1, finalEpochs: 1, maxIterations: 2, step: 0.3, runs: 5, briefSamples: 128, width: 0.5 };
/** A profile any test machine matches, with budgets a tiny student always meets. */
export const TINY_PROFILE = {
  name: 'e2e-test', description: 'generous budgets for protocol tests', match: { arch: ['x64', 'arm64'] },
  budgets: { modelSizeKB: '0.9x' }, runtime: { backend: 'cpu', threads: 1 },
  training: { batchSize: 32, maxRssMB: 8000, maxTemperatureC: 150, allowedCron: '* * * * *' },
};

/** An untrained 28×28×1 VGG teacher, saved, read back into memory, its temp dir removed (`dir` is then gone). */
export async function tinyTeacher(): Promise<TeacherFiles> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-teacher-'));
  const m = vggTeacher({ size: 28, channels: 1 });
  try {
    await saveModel(m, dir);
    return readTeacher(dir);
  } finally {
    m.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface TeacherFiles {
  dir: string;
  files: Array<{ path: string; bytes: Uint8Array; sha256: string }>;
}

export function readTeacher(dir: string): TeacherFiles {
  return {
    dir,
    files: readdirSync(dir).filter((f) => f === 'model.json' || f.endsWith('.bin')).sort().map((p) => {
      const bytes = new Uint8Array(readFileSync(path.join(dir, p)));
      return { path: p, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
    }),
  };
}

export function blockHashes(bytes: Uint8Array, blockSize: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < bytes.byteLength; at += blockSize) out.push(createHash('sha256').update(bytes.subarray(at, at + blockSize)).digest('hex'));
  return out;
}

export function teacherManifest(t: TeacherFiles, o: { deviceId: string; version: number; blockSize?: number; expiresInMs?: number; now?: number; name?: string }): Manifest {
  const now = o.now ?? Date.now();
  const blockSize = o.blockSize ?? 16 * 1024;
  return {
    schema: 1, kind: 'teacher', name: o.name ?? 'test-teacher', version: o.version, target: { devices: [o.deviceId] },
    issuedAt: new Date(now - 1000).toISOString(), expires: new Date(now + (o.expiresInMs ?? 3600_000)).toISOString(),
    files: t.files.map((f) => ({ path: f.path, size: f.bytes.byteLength, sha256: f.sha256, blockSize, blocks: blockHashes(f.bytes, blockSize) })),
  };
}

/**
 * The coordinator's side of a transfer, in the test: serves files from memory and logs every block asked for.
 * `delay.ms` (mutable, default 0) slows every block read, so a test can catch a transfer in the middle.
 */
export function serveFiles(client: MqttClient, files: Map<string, Uint8Array>): { server: BlockServer; requests: Array<{ sha256: string; offset: number }>; delay: { ms: number } } {
  const requests: Array<{ sha256: string; offset: number }> = [];
  const delay = { ms: 0 };
  const server = createBlockServer({
    client, requestFilter: 'edgekt/v1/devices/+/pull', allowResponseTopic: allowPullResponse,
    source: {
      stat: async (sha) => (files.has(sha) ? { size: files.get(sha)!.byteLength } : null),
      read: async (sha, offset, length) => {
        requests.push({ sha256: sha, offset });
        if (delay.ms > 0) await new Promise((r) => setTimeout(r, delay.ms));
        return files.get(sha)!.subarray(offset, offset + length);
      },
    },
  });
  return { server, requests, delay };
}

export interface Updates {
  all: Array<Record<string, unknown> & { jobId: string; state: string; seq: number; kind: string }>;
  waitFor(pred: (u: Updates['all'][number]) => boolean, timeoutMs?: number, what?: string): Promise<Updates['all'][number]>;
  states(jobId: string): string[];
}

export function collectUpdates(client: MqttClient, deviceId: string): Updates {
  const all: Updates['all'] = [];
  const waiters: Array<() => void> = [];
  client.subscribe(`edgekt/v1/devices/${deviceId}/jobs/+/update`, { qos: 1 });
  client.on('message', (topic, payload) => {
    if (!topic.endsWith('/update')) return;
    all.push({ ...JSON.parse(payload.toString('utf8')), receivedAt: Date.now() });
    waiters.splice(0).forEach((w) => w());
  });
  return {
    all,
    states: (jobId) => all.filter((u) => u.jobId === jobId && u.kind === 'state').sort((a, b) => a.seq - b.seq).map((u) => u.state).filter((s, i, a) => a.indexOf(s) === i),
    async waitFor(pred, timeoutMs = 120_000, what = 'update') {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = all.find(pred);
        if (hit) return hit;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(all.map((u) => [u.jobId, u.kind, u.state, (u.error as { code?: string } | undefined)?.code]))}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, Math.min(left, 1000));
        });
      }
    },
  };
}

export interface AgentHarness {
  dir: string;
  deviceId: string;
  fleet: KeyPair;
  configFile: string;
  proc: ChildProcess | null;
  log: string[];
  start(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Kills the process (SIGKILL) if it still runs, then deletes its temp dir. */
  remove(): Promise<void>;
}

/** A real `edgekt agent` process with its own state dir and config, trusting `fleet`. */
export function agentHarness(o: { brokerUrl: string; deviceId?: string; profile: object; extra?: string; datasets?: Record<string, string> }): AgentHarness {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-agent-'));
  const deviceId = o.deviceId ?? 'dev1';
  const fleet = generateKeyPair();
  writeFileSync(path.join(dir, 'fleet.pub'), publicKeyPem(fleet.publicKey));
  writeFileSync(path.join(dir, 'profile.json'), JSON.stringify(o.profile));
  mkdirSync(path.join(dir, 'state'));
  const datasets = o.datasets ?? { digits: 'mnist' };
  const configFile = path.join(dir, 'agent.yaml');
  writeFileSync(configFile, [
    'broker:', `  url: ${o.brokerUrl}`, '  reconnectSeconds: 0.3',
    'device:', `  id: ${deviceId}`, '  groups: [lab]', `  profile: ${path.join(dir, 'profile.json')}`,
    'datasets:', ...Object.entries(datasets).map(([k, v]) => `  ${k}: ${v}`),
    'trust:', `  coordinatorKeys: [${path.join(dir, 'fleet.pub')}]`,
    `stateDir: ${path.join(dir, 'state')}`,
    'telemetry:', "  cron: '*/2 * * * * *'",
    'log:', '  level: debug',
    o.extra ?? '', '',
  ].join('\n'));
  const h: AgentHarness = {
    dir, deviceId, fleet, configFile, proc: null, log: [],
    async start() {
      const p = spawn(process.execPath, [BIN, '--backend', 'wasm', 'agent', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, EDGEKT_DEBUG: '1' } });
      h.proc = p;
      const from = h.log.length; // a restart waits for its own "connected", not the previous run's
      p.stdout!.on('data', (d: Buffer) => h.log.push(...d.toString('utf8').split('\n').filter(Boolean)));
      p.stderr!.on('data', (d: Buffer) => h.log.push(...d.toString('utf8').split('\n').filter(Boolean)));
      const deadline = Date.now() + 30_000;
      while (!h.log.slice(from).some((l) => l.includes('"connected"') || l.includes('"msg":"connected"'))) {
        if (p.exitCode !== null) throw new Error(`agent exited ${p.exitCode}:\n${h.log.join('\n')}`);
        if (Date.now() > deadline) throw new Error(`agent did not connect:\n${h.log.join('\n')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async kill(signal = 'SIGKILL') {
      const p = h.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      await new Promise<void>((r) => {
        p.once('exit', () => r());
        p.kill(signal);
      });
    },
    async remove() {
      await h.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

export async function connectClient(url: string, id: string): Promise<MqttClient> {
  const c = mqtt.connect(url, { protocolVersion: 5, clientId: id, reconnectPeriod: 200 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

export { signManifest };

export interface TinyFleet {
  broker: Mosquitto;
  coord: MqttClient;
  teacher: TeacherFiles;
  /** What the test's block server serves, by sha256 (the teacher's files to begin with). */
  files: Map<string, Uint8Array>;
  served: ReturnType<typeof serveFiles>;
  updates: Updates;
  agent: AgentHarness;
}

/** A spawned mosquitto, the test's coordinator client serving the tiny teacher and collecting dev1's updates, and agent dev1, connected. */
export async function startTinyFleet(o: { profile: object; extra?: string }): Promise<TinyFleet> {
  const teacher = await tinyTeacher();
  const broker = await startMosquitto();
  const coord = await connectClient(broker.url, 'test-coordinator');
  const files = new Map(teacher.files.map((f) => [f.sha256, f.bytes]));
  const served = serveFiles(coord, files);
  await served.server.ready;
  const updates = collectUpdates(coord, 'dev1');
  const agent = agentHarness({ brokerUrl: broker.url, profile: o.profile, ...(o.extra !== undefined ? { extra: o.extra } : {}) });
  await agent.start();
  return { broker, coord, teacher, files, served, updates, agent };
}
