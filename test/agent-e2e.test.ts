import { statfsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signManifest } from '../src/transport/signing.js';
import { generateKeyPair } from '../src/transport/keys.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';
import { TINY_PROFILE, TINY_SETTINGS, agentHarness, collectUpdates, connectClient, serveFiles, tinyTeacher, teacherManifest, type AgentHarness, type TeacherFiles, type Updates } from './helpers/fleet.js';

const SETTINGS = TINY_SETTINGS;
const PROFILE = TINY_PROFILE;

let broker: Mosquitto;
let coord: MqttClient;
let teacher: TeacherFiles;
let agent: AgentHarness;
let updates: Updates;
let served: ReturnType<typeof serveFiles>;
let version = 1;
const files = new Map<string, Uint8Array>();

function job(jobId: string, o: { manifest?: unknown; dataset?: string; settings?: object } = {}): string {
  const manifest = o.manifest ?? signManifest(teacherManifest(teacher, { deviceId: 'dev1', version: version++ }), agent.fleet.privateKey);
  return JSON.stringify({ type: 'compress', jobId, manifest, dataset: o.dataset ?? 'digits', settings: o.settings ?? SETTINGS });
}
const send = (payload: string): Promise<unknown> => coord.publishAsync('edgekt/v1/devices/dev1/jobs', payload, { qos: 1 });
const final = (jobId: string, ms = 180_000) =>
  updates.waitFor((u) => u.jobId === jobId && u.kind === 'state' && ['succeeded', 'failed', 'rejected', 'canceled'].includes(u.state), ms, `${jobId} to end`).catch((e: Error) => {
    throw new Error(`${e.message}\n--- agent log (last 40 lines)\n${agent.log.slice(-40).join('\n')}`);
  });

beforeAll(async () => {
  await tf.setBackend('cpu');
  teacher = await tinyTeacher();
  broker = await startMosquitto();
  coord = await connectClient(broker.url, 'test-coordinator');
  for (const f of teacher.files) files.set(f.sha256, f.bytes);
  served = serveFiles(coord, files);
  await served.server.ready;
  updates = collectUpdates(coord, 'dev1');
  agent = agentHarness({ brokerUrl: broker.url, profile: PROFILE, extra: 'limits:\n  maxArtifactBytes: 1000GB' });
  await agent.start();
}, 60_000);

afterAll(async () => {
  await agent?.kill('SIGTERM');
  await agent?.remove();
  await coord?.endAsync();
  await broker?.stop();
});

describe('edge agent end to end (real mosquitto, real agent process)', () => {
  it('runs the happy path: verified teacher → compressed student → signed result', async () => {
    await send(job('happy-1'));
    const end = await final('happy-1');
    expect(end.state, agent.log.slice(-30).join('\n')).toBe('succeeded');
    expect(updates.states('happy-1')).toEqual(['received', 'downloading', 'verified', 'lightening', 'distilling', 'pruning', 'benchmarking', 'reporting', 'succeeded']);
    const progress = updates.all.filter((u) => u.jobId === 'happy-1' && u.kind === 'progress').map((u) => u.progress as { blocks?: { received: number; total: number } });
    const blocks = progress.flatMap((p) => (p?.blocks ? [p.blocks] : []));
    expect(blocks.length).toBeGreaterThan(0);
    expect(blocks[blocks.length - 1]!.received).toBe(blocks[blocks.length - 1]!.total);
    // Updates go out as they happen, not in a burst at the end: distilling was heard well before succeeded.
    const heard = (state: string): number => updates.all.find((u) => u.jobId === 'happy-1' && u.kind === 'state' && u.state === state)!.receivedAt as number;
    expect(heard('succeeded') - heard('distilling')).toBeGreaterThan(1000);
    const result = end.result as { met: boolean; report: { student: { params: number }; teacher: { params: number } }; student: { manifest: { kind: string; name: string } } };
    expect(result.met).toBe(true);
    expect(result.report.student.params).toBeLessThan(result.report.teacher.params);
    expect(result.student.manifest).toMatchObject({ kind: 'student', name: 'dev1.happy-1' });
  }, 240_000);

  it('makes one job of a duplicate delivery', async () => {
    const payload = job('dup-1');
    await send(payload);
    await send(payload);
    await final('dup-1');
    await new Promise((r) => setTimeout(r, 500));
    expect(updates.all.filter((u) => u.jobId === 'dup-1' && u.kind === 'state' && u.state === 'received')).toHaveLength(1);
  }, 240_000);

  it('refuses each bad input with its own code and keeps serving', async () => {
    const other = generateKeyPair();
    const good = (over: Partial<ReturnType<typeof teacherManifest>> = {}) => ({ ...teacherManifest(teacher, { deviceId: 'dev1', version: version++ }), ...over });
    const signed = (m: ReturnType<typeof teacherManifest>) => signManifest(m, agent.fleet.privateKey);
    const tampered = signed(good());
    (tampered.manifest as { version: number }).version += 1000;
    const bigFile = good();
    bigFile.files = bigFile.files.map((f) => ({ ...f, size: 2000 * 2 ** 30, blockSize: 128 * 1024, blocks: undefined as never }));
    // The server holds bytes under a sha256 they do not have: every block and the file fail their hashes.
    const badHash = good();
    badHash.files = badHash.files.map((f, i) => ({ ...f, sha256: String(i).repeat(64).slice(0, 64).replace(/[^0-9a-f]/g, 'e'), blocks: undefined as never }));
    badHash.files.forEach((f, i) => files.set(f.sha256, teacher.files[i]!.bytes.map((b) => b ^ 1)));
    const cases: Array<[string, string, string]> = [
      ['r-malformed', '{"type":"compress", nope', 'EDGEKT_ERR_MALFORMED'],
      ['r-unsigned', job('r-unsigned', { manifest: { manifest: good() } }), 'EDGEKT_ERR_UNSIGNED'],
      ['r-unknown-key', job('r-unknown-key', { manifest: signManifest(good(), other.privateKey) }), 'EDGEKT_ERR_UNKNOWN_KEY'],
      ['r-bad-sig', job('r-bad-sig', { manifest: tampered }), 'EDGEKT_ERR_SIGNATURE'],
      ['r-expired', job('r-expired', { manifest: signed(good({ expires: new Date(Date.now() - 1000).toISOString(), issuedAt: new Date(Date.now() - 5000).toISOString() })) }), 'EDGEKT_ERR_EXPIRED'],
      ['r-other-device', job('r-other-device', { manifest: signed(good({ target: { devices: ['dev2'] } })) }), 'EDGEKT_ERR_WRONG_TARGET'],
      ['r-too-large', job('r-too-large', { manifest: signed(bigFile) }), 'EDGEKT_ERR_TOO_LARGE'],
      ['r-dataset', job('r-dataset', { dataset: 'cats' }), 'EDGEKT_ERR_DATASET_UNKNOWN'],
      ['r-settings', job('r-settings', { settings: { width: -1 } }), 'EDGEKT_ERR_JOB_SPEC'],
      ['r-hash', job('r-hash', { manifest: signed(badHash) }), 'EDGEKT_ERR_HASH'],
    ];
    for (const [jobId, payload, code] of cases) {
      await send(payload);
      if (jobId === 'r-malformed') {
        const u = await updates.waitFor((x) => x.jobId.startsWith('malformed-') && x.state === 'rejected', 30_000, 'malformed refusal');
        expect((u.error as { code: string }).code).toBe(code);
        continue;
      }
      const u = await final(jobId, 60_000);
      expect([jobId, u.state, (u.error as { code?: string } | undefined)?.code]).toEqual([jobId, 'rejected', code]);
    }
    await send(job('after-refusals'));
    expect((await final('after-refusals')).state).toBe('succeeded');
    // An older version of a teacher this device has accepted since: a replay.
    await send(job('r-replay', { manifest: signed(good({ version: version - 2 })) }));
    const r = await final('r-replay', 60_000);
    expect([r.state, (r.error as { code?: string } | undefined)?.code]).toEqual(['rejected', 'EDGEKT_ERR_REPLAY']);
  }, 400_000);

  it('refuses a teacher the model loader refuses, and one that needs more disk than there is', async () => {
    const { createHash } = await import('node:crypto');
    const junk = new TextEncoder().encode('{"not": "a model"}');
    const sha = createHash('sha256').update(junk).digest('hex');
    files.set(sha, junk);
    const bogus: TeacherFiles = { dir: '', files: [{ path: 'model.json', bytes: junk, sha256: sha }] };
    await send(job('r-model', { manifest: signManifest(teacherManifest(bogus, { deviceId: 'dev1', version: version++ }), agent.fleet.privateKey) }));
    const u = await final('r-model', 60_000);
    expect([u.state, (u.error as { code?: string }).code]).toEqual(['rejected', 'EDGEKT_ERR_MODEL_FORMAT']);

    const fs = statfsSync(agent.dir);
    const free = fs.bavail * fs.bsize;
    const huge = teacherManifest(teacher, { deviceId: 'dev1', version: version++ });
    huge.files = huge.files.map((f) => ({ ...f, size: free + 2 ** 30, blockSize: 128 * 1024, blocks: undefined as never }));
    await send(job('r-disk', { manifest: signManifest(huge, agent.fleet.privateKey) }));
    const d = await final('r-disk', 60_000);
    expect([d.state, (d.error as { code?: string }).code]).toEqual(['rejected', 'EDGEKT_ERR_DISK_FULL']);
  }, 120_000);
});
