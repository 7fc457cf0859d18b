import path from 'node:path';
import Database from 'better-sqlite3';
import * as tf from '@tensorflow/tfjs';
import type { MqttClient } from 'mqtt';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signManifest } from '../src/transport/signing.js';
import type { Mosquitto } from './helpers/mosquitto.js';
import { TINY_PROFILE, TINY_SETTINGS, agentHarness, collectUpdates, serveFiles, startTinyFleet, teacherManifest, type AgentHarness, type TeacherFiles, type Updates } from './helpers/fleet.js';

const SETTINGS = TINY_SETTINGS;
const PROFILE = TINY_PROFILE;
const TERMINAL = ['succeeded', 'failed', 'rejected', 'canceled'];
const EXTRA = 'limits:\n  maxArtifactBytes: 1000GB';

let broker: Mosquitto;
let coord: MqttClient;
let teacher: TeacherFiles;
let agent: AgentHarness;
let updates: Updates;
let served: ReturnType<typeof serveFiles>;
let version = 1;

type Update = Updates['all'][number];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function job(jobId: string, o: { settings?: object; blockSize?: number; on?: AgentHarness } = {}): string {
  const h = o.on ?? agent;
  const m = teacherManifest(teacher, { deviceId: h.deviceId, version: version++, ...(o.blockSize ? { blockSize: o.blockSize } : {}) });
  return JSON.stringify({ type: 'compress', jobId, manifest: signManifest(m, h.fleet.privateKey), dataset: 'digits', settings: o.settings ?? SETTINGS });
}
const send = (payload: string, deviceId = 'dev1'): Promise<unknown> => coord.publishAsync(`edgekt/v1/devices/${deviceId}/jobs`, payload, { qos: 1 });
const cancel = (jobId: string, deviceId = 'dev1'): Promise<unknown> => send(JSON.stringify({ type: 'cancel', jobId }), deviceId);
const withLog = (h: AgentHarness) => (e: Error): never => {
  throw new Error(`${e.message}\n--- agent log (last 40 lines)\n${h.log.slice(-40).join('\n')}`);
};
const state = (jobId: string, s: string, ms = 120_000, u = updates, h = agent): Promise<Update> =>
  u.waitFor((x) => x.jobId === jobId && x.kind === 'state' && x.state === s, ms, `${jobId} ${s}`).catch(withLog(h));
const final = (jobId: string, ms = 120_000, u = updates, h = agent): Promise<Update> =>
  u.waitFor((x) => x.jobId === jobId && x.kind === 'state' && TERMINAL.includes(x.state), ms, `${jobId} to end`).catch(withLog(h));
const progressOf = (u: Update): { stage?: string; done?: number; detail?: string } => (u.progress ?? {}) as { stage?: string; done?: number; detail?: string };

async function until<T>(f: () => T | null | undefined | false, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Reads the agent's own SQLite file, read-only, while the agent runs (WAL) or after it died. */
function agentDb<T>(h: AgentHarness, f: (db: Database.Database) => T): T {
  const db = new Database(path.join(h.dir, 'state', 'agent.db'), { readonly: true, fileMustExist: true });
  try {
    return f(db);
  } finally {
    db.close();
  }
}
const JobRow = z.object({ state: z.string(), seq: z.number(), progress_seq: z.number() });
const dbJob = (h: AgentHarness, jobId: string): z.infer<typeof JobRow> | null => {
  const raw = agentDb(h, (db) => db.prepare('SELECT state, seq, progress_seq FROM jobs WHERE job_id = ?').get(jobId));
  return raw === undefined ? null : JobRow.parse(raw);
};
/** The block indexes the agent's ledger lists as written (bit i of byte i>>3). */
const ledger = (h: AgentHarness, key: string): number[] => {
  const raw = agentDb(h, (db) => db.prepare('SELECT total_blocks, bitmap FROM transfer_blocks WHERE transfer_key = ?').get(key));
  if (raw === undefined) return [];
  const r = z.object({ total_blocks: z.number(), bitmap: z.instanceof(Uint8Array) }).parse(raw);
  return Array.from({ length: r.total_blocks }, (_, i) => i).filter((i) => ((r.bitmap[i >> 3] ?? 0) & (1 << (i & 7))) !== 0);
};
/** State seqs of a job as the coordinator saw them, each once, ascending. */
const seqs = (jobId: string, u = updates): number[] => [...new Set(u.all.filter((x) => x.jobId === jobId && x.kind === 'state').map((x) => x.seq))].sort((a, b) => a - b);
const oneTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

/**
 * Brings the killed broker back. The agent is held (SIGSTOP) until the test's coordinator has
 * reconnected and resubscribed: the broker keeps no sessions, so anything the agent published
 * first would reach no subscriber, and the test would blame the agent for the test's own lag.
 */
async function restartBroker(): Promise<void> {
  const p = agent.proc!;
  p.kill('SIGSTOP');
  try {
    const back = new Promise<void>((r) => coord.once('connect', () => r()));
    await broker.start();
    await back;
    await coord.subscribeAsync('edgekt/test/barrier', { qos: 1 }); // after mqtt.js's resubscriptions
  } finally {
    p.kill('SIGCONT');
  }
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  ({ broker, coord, teacher, served, updates, agent } = await startTinyFleet({ profile: PROFILE, extra: EXTRA }));
}, 60_000);

afterAll(async () => {
  await agent?.remove();
  await coord?.endAsync(true);
  await broker?.stop();
});

describe('edge agent under faults (real mosquitto, real agent process, real SQLite)', () => {
  it('resumes a transfer after the broker is SIGKILLed and restarted, never fetching a finished block again', async () => {
    const jobId = 'bk-1';
    const blockSize = 4096;
    const weights = teacher.files.find((f) => f.path.endsWith('.bin'))!;
    const from = served.requests.length;
    const reads = () => served.requests.slice(from);
    served.delay.ms = 200;
    try {
      await send(job(jobId, { blockSize }));
      await until(() => ledger(agent, `${jobId}:${weights.path}`).length >= 8, 60_000, '8 blocks of the weights in the ledger');
      await broker.kill();
      await sleep(1000); // blocks already on their way to the agent land and are marked
      // "Finished before the kill": listed by the agent's ledger while the broker is down.
      const marked = teacher.files.map((f) => ({ f, blocks: ledger(agent, `${jobId}:${f.path}`) }));
      await restartBroker();
      const end = await final(jobId);
      expect(end.state).toBe('succeeded');

      const count = new Map<string, number>();
      for (const r of reads()) count.set(`${r.sha256}@${r.offset}`, (count.get(`${r.sha256}@${r.offset}`) ?? 0) + 1);
      const weightBlocks = Math.ceil(weights.bytes.byteLength / blockSize);
      const w = marked.find((x) => x.f === weights)!.blocks;
      expect(w.length).toBeGreaterThan(0); // the kill came mid-transfer...
      expect(w.length).toBeLessThan(weightBlocks); // ...not after it
      const again = marked.flatMap(({ f, blocks }) => blocks.map((i) => ({ file: f.path, i, reads: count.get(`${f.sha256}@${i * blockSize}`) ?? 0 })).filter((x) => x.reads !== 1));
      expect(again).toEqual([]);
      for (const f of teacher.files) {
        const missing = Array.from({ length: Math.ceil(f.bytes.byteLength / blockSize) }, (_, i) => i).filter((i) => !count.has(`${f.sha256}@${i * blockSize}`));
        expect(missing, f.path).toEqual([]);
      }
    } finally {
      served.delay.ms = 0;
    }
  }, 120_000);

  it('resumes distillation inside the stage after the agent is SIGKILLed', async () => {
    const jobId = 'ck-1';
    await send(job(jobId, { settings: { ...SETTINGS, distillEpochs: 8, checkpointSeconds: 1 } }));
    const saved = await updates
      .waitFor((u) => u.jobId === jobId && u.kind === 'progress' && u.state === 'distilling' && progressOf(u).detail === 'checkpoint saved' && (progressOf(u).done ?? 0) >= 2, 100_000, 'a distillation checkpoint')
      .catch(withLog(agent));
    await agent.kill('SIGKILL');
    const before = dbJob(agent, jobId)!;
    expect(before.state).toBe('distilling');
    await agent.start();
    const end = await final(jobId);
    expect(end.state).toBe('succeeded');

    const mine = updates.all.filter((u) => u.jobId === jobId);
    // Made after the restart: progressSeq beyond the last one the dead process wrote.
    const resumed = mine.find((u) => u.kind === 'progress' && Number(u.progressSeq) > before.progress_seq && progressOf(u).stage === 'distill');
    expect(resumed, 'a distill progress after the restart').toBeDefined();
    expect(progressOf(resumed!).done).toBeGreaterThan(progressOf(saved).done!); // from the checkpoint, not step 0 (which reports 1)
    const states = mine.filter((u) => u.kind === 'state');
    expect(states.filter((u) => u.state === 'received')).toHaveLength(1);
    expect(states.some((u) => u.seq > before.seq)).toBe(true);
    expect(seqs(jobId)).toEqual(oneTo(end.seq));
  }, 150_000);

  it('delivers the result produced during a broker outage once the broker is back, every seq of it', async () => {
    const jobId = 'out-1';
    await send(job(jobId, { settings: { ...SETTINGS, finalEpochs: 2 } }));
    await state(jobId, 'pruning');
    await broker.kill();
    const ended = await until(() => {
      const j = dbJob(agent, jobId);
      return j && TERMINAL.includes(j.state) ? j : null;
    }, 100_000, `${jobId} terminal in the agent's store`);
    expect(ended.state).toBe('succeeded');
    const held = agentDb(agent, (db) => db.prepare("SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND key LIKE 'out-1:%'").pluck().get());
    expect(held).toBeGreaterThan(0); // the outage really held reports back
    await restartBroker();
    const end = await final(jobId, 60_000);
    expect([end.state, end.seq]).toEqual(['succeeded', ended.seq]);
    expect(end.result).toMatchObject({ met: true, student: { manifest: { kind: 'student', name: `dev1.${jobId}` } } });
    expect(seqs(jobId)).toEqual(oneTo(ended.seq));
  }, 150_000);

  it('cancels a queued job and a distilling one', async () => {
    await send(job('c-run', { settings: { ...SETTINGS, distillEpochs: 20 } }));
    await state('c-run', 'downloading');
    await send(job('c-queued'));
    await state('c-queued', 'received');
    await cancel('c-queued');
    expect((await final('c-queued', 30_000)).state).toBe('canceled');
    expect(updates.states('c-queued')).toEqual(['received', 'canceled']);
    await state('c-run', 'distilling');
    await cancel('c-run');
    expect((await final('c-run', 60_000)).state).toBe('canceled');
  }, 150_000);

  it('cancels a downloading job and a pruning one, then completes a fresh job', async () => {
    served.delay.ms = 300;
    try {
      await send(job('c-dl', { blockSize: 4096 }));
      await state('c-dl', 'downloading');
      await sleep(500);
      await cancel('c-dl');
      const dl = await final('c-dl', 30_000);
      expect([dl.state, (dl.error as { code?: string } | undefined)?.code]).toEqual(['canceled', undefined]);
      const weights = teacher.files.find((f) => f.path.endsWith('.bin'))!;
      expect(ledger(agent, `c-dl:${weights.path}`).length).toBeLessThan(Math.ceil(weights.bytes.byteLength / 4096)); // it was mid-transfer
      expect(updates.states('c-dl')).toEqual(['received', 'downloading', 'canceled']);
    } finally {
      served.delay.ms = 0;
    }
    await send(job('c-prune', { settings: { ...SETTINGS, finalEpochs: 30 } }));
    await state('c-prune', 'pruning');
    await cancel('c-prune');
    expect((await final('c-prune', 60_000)).state).toBe('canceled');
    await send(job('c-fresh'));
    expect((await final('c-fresh')).state).toBe('succeeded');
  }, 200_000);

  it('makes one job of a delivery repeated across an agent restart', async () => {
    const jobId = 'dup-r';
    const payload = job(jobId);
    await send(payload);
    await state(jobId, 'downloading');
    await agent.kill('SIGKILL');
    await send(payload); // held by the broker for the agent's persistent session
    await agent.start();
    await send(payload); // and once more while the resumed job runs
    const end = await final(jobId);
    expect(end.state).toBe('succeeded');
    await sleep(1000);
    const states = updates.all.filter((u) => u.jobId === jobId && u.kind === 'state');
    expect(states.filter((u) => u.state === 'received')).toHaveLength(1);
    expect(states.filter((u) => TERMINAL.includes(u.state)).map((u) => u.state)).toEqual(['succeeded']);
    expect(seqs(jobId)).toEqual(oneTo(end.seq));
  }, 150_000);

  it('pauses at the work gate, says so in telemetry and progress, and still cancels', async () => {
    const gated = agentHarness({ brokerUrl: broker.url, deviceId: 'dev2', profile: { ...PROFILE, training: { ...PROFILE.training, maxRssMB: 1 } }, extra: EXTRA });
    const u2 = collectUpdates(coord, 'dev2');
    const telemetry: Array<{ paused: string | null }> = [];
    const T = z.object({ type: z.literal('telemetry'), paused: z.string().nullable() }).passthrough();
    coord.on('message', (topic, payload) => {
      if (topic === 'edgekt/v1/devices/dev2/telemetry') telemetry.push(T.parse(JSON.parse(payload.toString('utf8'))));
    });
    await coord.subscribeAsync('edgekt/v1/devices/dev2/telemetry', { qos: 0 });
    try {
      await gated.start();
      const t = await until(() => telemetry.find((x) => x.paused !== null), 20_000, 'paused telemetry');
      expect(t.paused).toMatch(/^RSS .*> 1 MB$/);
      await send(job('g-1', { on: gated }), 'dev2');
      const p = await u2.waitFor((x) => x.jobId === 'g-1' && x.kind === 'progress' && typeof x.pausedReason === 'string', 20_000, 'a paused progress').catch(withLog(gated));
      expect(p.pausedReason).toBe(t.paused);
      await sleep(3000); // ticks come every 2 s: the gate stays shut
      expect(u2.states('g-1')).toEqual(['received']);
      expect(dbJob(gated, 'g-1')?.state).toBe('received');
      await cancel('g-1', 'dev2');
      expect((await final('g-1', 30_000, u2, gated)).state).toBe('canceled');
    } finally {
      await coord.unsubscribeAsync('edgekt/v1/devices/dev2/telemetry').catch(() => undefined);
      await gated.remove();
    }
  }, 90_000);
});
