import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { CoordinatorConfigSchema } from '../../src/config/coordinator-config.js';
import type { JobMessage } from '../../src/config/messages.js';
import { createCoordinator, type Coordinator } from '../../src/coordinator/daemon.js';
import { startSimDevice, type SimBehaviour, type SimCounters } from '../../src/cli/fleet-sim/sim-device.js';
import type { CoordinatorStore, Execution, Rollout } from '../../src/store/coordinator/index.js';
import { generateKeyPair, privateKeyPem, publicKeyPem, trustedKeyMap, type KeyPair } from '../../src/transport/keys.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value that is not null/false; the last value seen goes into the error. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | null | false> | T | null | false, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== false) return v;
    last = v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

/** One temp dir for a test's coordinators: fleet key, token files, artifacts, SQLite file. */
export interface CoordinatorFiles {
  dir: string;
  fleet: KeyPair;
  fleetKeyFile: string;
  adminToken: string;
  readToken: string;
  adminTokensFile: string;
  readTokensFile: string;
  artifactsDir: string;
  sqlite: string;
  cleanup(): void;
}

export function coordinatorFiles(): CoordinatorFiles {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-coord-'));
  const fleet = generateKeyPair();
  const f = (name: string, text: string): string => {
    const p = path.join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const adminToken = randomBytes(16).toString('hex');
  const readToken = randomBytes(16).toString('hex');
  const artifactsDir = path.join(dir, 'artifacts');
  mkdirSync(artifactsDir);
  return {
    dir, fleet, adminToken, readToken, artifactsDir, sqlite: path.join(dir, 'coordinator.db'),
    fleetKeyFile: f('fleet.key', privateKeyPem(fleet.privateKey)),
    adminTokensFile: f('admin.tokens', `${adminToken}\n`),
    readTokensFile: f('read.tokens', `# read-only\n${readToken}\n`),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** pino's JSON lines, kept for assertions (what the coordinator logged, by message). */
export interface LogSink {
  lines: Array<Record<string, unknown> & { msg?: string }>;
  count(msg: string | RegExp): number;
}

export function logSink(): { sink: LogSink; stream: Writable } {
  const lines: LogSink['lines'] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as LogSink['lines'][number]);
      cb();
    },
  });
  return { stream, sink: { lines, count: (m) => lines.filter((l) => typeof l.msg === 'string' && (typeof m === 'string' ? l.msg === m : m.test(l.msg))).length } };
}

export interface TestCoordinator {
  id: string;
  coordinator: Coordinator;
  store: CoordinatorStore;
  url: string;
  log: LogSink;
  stop(): Promise<void>;
}

/** An in-process coordinator (its own store object, which stop() closes) with the HTTP API on port 0. */
export async function startTestCoordinator(o: { id: string; brokerUrl: string; files: CoordinatorFiles; store: CoordinatorStore; tickMs?: number; redispatchMs?: number }): Promise<TestCoordinator> {
  const config = CoordinatorConfigSchema.parse({
    id: o.id, broker: { url: o.brokerUrl }, store: { sqlite: o.files.sqlite },
    http: { port: 0, adminTokensFile: o.files.adminTokensFile, readTokensFile: o.files.readTokensFile },
    fleetKey: o.files.fleetKeyFile, artifactsDir: o.files.artifactsDir, tickMs: o.tickMs ?? 100, ...(o.redispatchMs ? { redispatchMs: o.redispatchMs } : {}), log: { level: 'info' },
  });
  const { sink, stream } = logSink();
  const coordinator = createCoordinator({
    config, store: o.store, fleetKey: o.files.fleet.privateKey, secrets: {},
    readTokens: [o.files.readToken], adminTokens: [o.files.adminToken], logger: pino({ level: 'info', base: { coordinator: o.id } }, stream),
  });
  const { httpUrl } = await coordinator.start();
  let stopped = false;
  return {
    id: o.id, coordinator, store: o.store, url: httpUrl, log: sink,
    async stop() {
      if (stopped) return;
      stopped = true;
      await coordinator.stop();
    },
  };
}

export interface Api {
  (method: 'GET' | 'POST', route: string, body?: unknown, token?: string | null): Promise<{ status: number; body: unknown }>;
}

/** fetch against the API; `token` defaults to the admin token, null sends none. */
export function apiClient(baseUrl: string, adminToken: string): Api {
  return async (method, route, body, token = adminToken) => {
    const res = await fetch(new URL(route, baseUrl), {
      method,
      headers: { ...(token !== null ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Prometheus text, not JSON
    }
    return { status: res.status, body: parsed };
  };
}

/** Publishes a small teacher (model.json + a few KB of weights, 1 KB blocks) and returns its bundle sha256. */
export async function publishTeacher(api: Api, name = 'ctest-teacher'): Promise<string> {
  const r = await api('POST', '/api/teachers', {
    name, blockSize: 1024,
    files: [
      { path: 'model.json', base64: Buffer.from(JSON.stringify({ format: 'layers-model', test: name })).toString('base64') },
      { path: 'weights.bin', base64: randomBytes(5000).toString('base64') },
    ],
  });
  if (r.status !== 200) throw new Error(`publish teacher: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body as { sha256: string }).sha256;
}

/** Simulated devices (protocol only), each with its own behaviour, recording every job message. */
export interface SimFleet {
  ids: string[];
  counters: SimCounters;
  /** Job messages each device accepted, in order. */
  messages: Map<string, JobMessage[]>;
  /** Compress jobs each device received (job ids). */
  jobs(deviceId: string): string[];
  cancels(deviceId: string): string[];
  stop(): Promise<void>;
}

export async function startSimFleet(o: { brokerUrl: string; fleet: KeyPair; devices: Array<{ id: string; behaviour?: SimBehaviour }>; profile?: string }): Promise<SimFleet> {
  const counters: SimCounters = { connected: 0, jobs: 0, duplicateJobs: 0, succeeded: 0, failed: 0, bytesPulled: 0, messagesOut: 0, messagesIn: 0 };
  const trusted = trustedKeyMap([o.fleet.publicKey]);
  const messages = new Map<string, JobMessage[]>();
  const clients: MqttClient[] = [];
  for (const d of o.devices) {
    const key = generateKeyPair();
    messages.set(d.id, []);
    clients.push(startSimDevice({
      url: o.brokerUrl, id: d.id, profile: o.profile ?? 'sim-small', trustedKeys: trusted,
      deviceKey: { privateKey: key.privateKey, publicKeyPem: publicKeyPem(key.publicKey) }, controlOnly: false, counters, telemetryMs: 60_000,
      ...(d.behaviour ? { behaviour: d.behaviour } : {}),
      onMessage: (m) => messages.get(d.id)!.push(m),
    }));
  }
  await waitUntil('sim devices connected', () => counters.connected >= o.devices.length, 20_000);
  const of = (deviceId: string, type: JobMessage['type']): string[] => (messages.get(deviceId) ?? []).filter((m) => m.type === type).map((m) => m.jobId);
  return {
    ids: o.devices.map((d) => d.id), counters, messages,
    jobs: (id) => of(id, 'compress'),
    cancels: (id) => of(id, 'cancel'),
    async stop() {
      await Promise.all(clients.map((c) => c.endAsync(true)));
    },
  };
}

/** All executions of a rollout, keyed by device id. */
export async function executionsOf(store: CoordinatorStore, rolloutId: string): Promise<Map<string, Execution>> {
  const out = new Map<string, Execution>();
  let cursor: string | null = null;
  do {
    const page: { items: Execution[]; nextCursor: string | null } = await store.listExecutions(rolloutId, {}, { limit: 1000, cursor });
    for (const e of page.items) out.set(e.deviceId, e);
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

/** Waits until the rollout reaches one of `states`. */
export function waitForRollout(store: CoordinatorStore, rolloutId: string, states: readonly Rollout['state'][], timeoutMs = 30_000): Promise<Rollout> {
  return waitUntil(`rollout ${rolloutId} in ${states.join('|')}`, async () => {
    const r = await store.getRollout(rolloutId);
    return r && states.includes(r.state) ? r : null;
  }, timeoutMs);
}

/** Waits until `n` devices are online in the registry (the rollout's `all` target reads it). */
export function waitForDevices(store: CoordinatorStore, n: number, timeoutMs = 20_000): Promise<number> {
  return waitUntil(`${n} devices online`, async () => {
    const c = await store.countDevices({ online: true });
    return c >= n ? c : null;
  }, timeoutMs);
}

export const pad = (i: number): string => String(i).padStart(2, '0');
