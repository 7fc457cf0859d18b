import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoundTrainerFor } from '../src/agent/round-client.js';
import type { RoundTrainRequest } from '../src/federated/round-trainer.js';
import { UpdateSummarySchema } from '../src/config/federated.js';
import { sliceForDevice, tensor, toWeightsUpdate, type IndexMap, type WeightSet } from '../src/federated/index.js';
import { generateKeyPair } from '../src/transport/keys.js';
import { topics } from '../src/transport/topics.js';
import { signManifest } from '../src/transport/signing.js';
import type { Manifest } from '../src/config/manifest.js';
import { blockHashes } from './helpers/fleet.js';
import { inProcessAgent, restartableAedes, sha256, stubCoordinator, type InProcessAgent } from './helpers/rounds.js';

const fleet = generateKeyPair();
const GLOBAL: WeightSet = {
  'dense/kernel': tensor([4, 3], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]),
  'dense/bias': tensor([3], [0.01, 0.02, 0.03]),
};
/** The device keeps output units 0 and 2. */
const INDEX_MAP: IndexMap = { 'dense/kernel': [null, [0, 2]], 'dense/bias': [[0, 2]] };
const STEP = 0.0123;

interface Call { roundId: string; round: number; global: WeightSet; base: string }
const calls: Call[] = [];
/** Per roundId: make the trainer throw, or hold it until released. */
const behaviour = new Map<string, { throws?: string; hold?: Promise<void> }>();

/** A light trainer: the device's slice of the global plus a fixed step, so the test knows the exact answer. */
const trainerFor: RoundTrainerFor = async (_config, base) => async (req: RoundTrainRequest) => {
  calls.push({ roundId: req.roundId, round: req.round, global: req.global, base: base.modelJson });
  const b = behaviour.get(req.roundId);
  if (b?.hold) await b.hold;
  if (b?.throws) throw new Error(b.throws);
  const slice = sliceForDevice(req.global, INDEX_MAP);
  const weights = Object.fromEntries(Object.entries(slice).map(([k, t]) => [k, tensor(t.shape, Array.from(t.values, (v) => v + STEP))]));
  return { weights, indexMap: INDEX_MAP, numSamples: 32, metrics: { loss: 0.5 } };
};
const expected = (): Record<string, number[]> => Object.fromEntries(Object.entries(sliceForDevice(GLOBAL, INDEX_MAP)).map(([k, t]) => [k, Array.from(t.values, (v) => Math.fround(v + STEP))]));

let broker: Awaited<ReturnType<typeof restartableAedes>>;
let coord: Awaited<ReturnType<typeof stubCoordinator>>;
let dev1: InProcessAgent;
let dev2: InProcessAgent;
const dumpLog = (h: InProcessAgent) => (e: Error): never => {
  throw new Error(`${e.message}\n--- ${h.deviceId} log\n${h.log.slice(-30).join('\n')}`);
};
const roundOf = (roundId: string, round: number, o: Partial<Parameters<typeof coord.invite>[0]> = {}) =>
  coord.invite({ deviceId: 'dev1', roundId, round, global: GLOBAL, key: fleet.privateKey, ...o });

beforeAll(async () => {
  broker = await restartableAedes();
  coord = await stubCoordinator(broker.url);
  dev1 = inProcessAgent({ brokerUrl: broker.url, deviceId: 'dev1', fleet, trainerFor, reconnectSeconds: 1, datasets: { digits: 'mnist' } });
  dev2 = inProcessAgent({ brokerUrl: broker.url, deviceId: 'dev2', fleet, trainerFor, federated: { enabled: false } });
  await dev1.start();
  await dev2.start();
}, 30_000);

afterAll(async () => {
  await dev1?.remove();
  await dev2?.remove();
  await coord?.stop();
  await broker?.stop();
});

describe('agent round client (real aedes, real SQLite, real signatures, stub coordinator)', () => {
  it('answers an invite: pulls the global, trains once on it, serves a device-signed float32 update on the round topic', async () => {
    await coord.send('dev1', roundOf('r1', 1));
    const r = await coord.report('r1', 'dev1').catch(dumpLog(dev1));
    expect(r.type, JSON.stringify(r)).toBe('round-update');
    expect(r.topic).toBe(topics.roundReport('r1', 'dev1'));
    expect(r.round).toBe(1);
    const call = calls.find((c) => c.roundId === 'r1')!;
    expect(Object.fromEntries(Object.entries(call.global).map(([k, t]) => [k, Array.from(t.values)]))).toEqual(
      Object.fromEntries(Object.entries(GLOBAL).map(([k, t]) => [k, Array.from(t.values, Math.fround)])),
    );
    const { manifest, decoded } = await coord.pullUpdate(r, dev1.deviceKey.publicKey);
    expect(manifest.kind).toBe('weights');
    const summary = UpdateSummarySchema.parse(manifest.meta!['update']);
    expect(summary).toMatchObject({ roundId: 'r1', round: 1, numSamples: 32, encoding: 'float32', payload: 'weights' });
    expect(decoded.header).toMatchObject({ clientId: 'dev1', roundId: 'r1', round: 1, encoding: 'float32', payload: 'weights' });
    expect(decoded.update.indexMap).toEqual(INDEX_MAP);
    expect(Object.fromEntries(Object.entries(decoded.update.weights).map(([k, t]) => [k, Array.from(t.values)]))).toEqual(expected());
    // Verification is real: the fleet key does not verify the device's manifest.
    await expect(coord.pullUpdate(r, fleet.publicKey)).rejects.toMatchObject({ code: 'EDGEKT_ERR_UNKNOWN_KEY' });
  });

  it('sends a float16 delta that decodes back to the trained weights within float16 tolerance', async () => {
    await coord.send('dev1', roundOf('r2', 2, { encoding: 'float16' }));
    const r = await coord.report('r2', 'dev1').catch(dumpLog(dev1));
    const { manifest, decoded } = await coord.pullUpdate(r, dev1.deviceKey.publicKey);
    expect(UpdateSummarySchema.parse(manifest.meta!['update'])).toMatchObject({ encoding: 'float16', payload: 'delta' });
    expect(decoded.header).toMatchObject({ encoding: 'float16', payload: 'delta' });
    expect(decoded.update.isDelta).toBe(true);
    const delta = Array.from(decoded.update.weights['dense/kernel']!.values);
    delta.forEach((d) => expect(Math.abs(d - STEP)).toBeLessThan(STEP * 2 ** -10)); // float16: 10 mantissa bits
    const back = toWeightsUpdate(GLOBAL, decoded.update);
    const want = expected();
    for (const [k, t] of Object.entries(back.weights)) Array.from(t.values).forEach((v, i) => expect(Math.abs(v - want[k]![i]!)).toBeLessThan(1e-4));
  });

  it('is idempotent by roundId: a second invite trains nothing and reports nothing more', async () => {
    const before = calls.filter((c) => c.roundId === 'r3').length;
    const inv = roundOf('r3', 3);
    await coord.send('dev1', inv);
    await coord.send('dev1', inv);
    await coord.report('r3', 'dev1').catch(dumpLog(dev1));
    await coord.send('dev1', roundOf('r4', 4)); // a barrier: invites are handled in order
    await coord.report('r4', 'dev1').catch(dumpLog(dev1));
    expect(calls.filter((c) => c.roundId === 'r3').length - before).toBe(1);
    expect(coord.reports.filter((r) => r.roundId === 'r3').length).toBe(1);
  });

  it('refuses a bad fleet signature, a disabled agent, a passed deadline and a failing trainer, each with its code, and keeps answering', async () => {
    const stranger = generateKeyPair();
    await coord.send('dev1', roundOf('bad-key', 5, { key: stranger.privateKey }));
    expect((await coord.report('bad-key', 'dev1')).type).toBe('round-failed');
    // Same key id, tampered document: the signature check itself refuses it.
    const tampered = JSON.parse(roundOf('bad-sig', 5)) as { manifest: { manifest: { meta: { round: { epochs: number } } } } };
    tampered.manifest.manifest.meta.round.epochs = 99;
    await coord.send('dev1', JSON.stringify(tampered));
    await coord.send('dev2', coord.invite({ deviceId: 'dev2', roundId: 'off-1', round: 1, global: GLOBAL, key: fleet.privateKey }));
    await coord.send('dev1', roundOf('late-1', 5, { deadlineMs: -1000 }));
    behaviour.set('boom', { throws: 'out of memory in the trainer' });
    await coord.send('dev1', roundOf('boom', 5));
    const code = async (roundId: string, dev = 'dev1'): Promise<string> => {
      const r = await coord.report(roundId, dev).catch(dumpLog(dev === 'dev1' ? dev1 : dev2));
      return r.type === 'round-failed' ? r.error.code : `not failed: ${r.type}`;
    };
    expect(await code('bad-key')).toBe('EDGEKT_ERR_UNKNOWN_KEY');
    expect(await code('bad-sig')).toBe('EDGEKT_ERR_SIGNATURE');
    expect(await code('off-1', 'dev2')).toBe('EDGEKT_ERR_ROUND_UNAVAILABLE');
    expect(await code('late-1')).toBe('EDGEKT_ERR_ROUND_UNAVAILABLE');
    expect(await code('boom')).toBe('EDGEKT_ERR_ROUND_TRAIN');
    expect(calls.some((c) => ['bad-key', 'bad-sig', 'late-1', 'off-1'].includes(c.roundId))).toBe(false);
    // The daemon is still there and answers the next valid invite.
    await coord.send('dev1', roundOf('after-refusals', 6));
    expect((await coord.report('after-refusals', 'dev1').catch(dumpLog(dev1))).type).toBe('round-update');
  });

  it('refuses while work is paused (RSS over the profile limit), then answers once resumed', async () => {
    dev1.sample.rssMB = 1e6;
    await waitFor(() => dev1.agent.paused() !== null, 5000, 'dev1 paused');
    await coord.send('dev1', roundOf('paused-1', 7));
    const r = await coord.report('paused-1', 'dev1');
    expect(r.type === 'round-failed' && r.error.code).toBe('EDGEKT_ERR_ROUND_UNAVAILABLE');
    dev1.sample.rssMB = 100;
    await waitFor(() => dev1.agent.paused() === null, 5000, 'dev1 resumed');
    await coord.send('dev1', roundOf('resumed-1', 7));
    expect((await coord.report('resumed-1', 'dev1')).type).toBe('round-update');
  });

  it('reports itself busy while training and aborts at the deadline with a round-failed', async () => {
    let release!: () => void;
    behaviour.set('slow', { hold: new Promise<void>((r) => (release = r)) });
    await coord.send('dev1', roundOf('slow', 8, { deadlineMs: 2500 }));
    await waitFor(() => dev1.agent.activeRound()?.roundId === 'slow', 5000, 'slow round active');
    await waitFor(() => coord.telemetry.some((t) => t.deviceId === 'dev1' && t.activeJob?.jobId === 'slow'), 5000, 'busy telemetry');
    const r = await coord.report('slow', 'dev1', 10_000);
    release();
    expect(r.type === 'round-failed' && r.error.code).toBe('EDGEKT_ERR_ROUND_UNAVAILABLE');
    await waitFor(() => dev1.agent.activeRound() === null, 5000, 'round over');
  });

  it('keeps a compress job offered during a round queued (paused for the round), then runs it', async () => {
    let release!: () => void;
    behaviour.set('with-job', { hold: new Promise<void>((r) => (release = r)) });
    await coord.send('dev1', roundOf('with-job', 8));
    await waitFor(() => dev1.agent.activeRound()?.roundId === 'with-job', 5000, 'round active');
    const bytes = new TextEncoder().encode('{"not": "a model"}');
    const now = Date.now();
    const file = { path: 'model.json', size: bytes.byteLength, sha256: sha256(bytes), blockSize: 1024, blocks: blockHashes(bytes, 1024) };
    coord.files.set(file.sha256, bytes);
    const teacher: Manifest = {
      schema: 1, kind: 'teacher', name: 'queued-teacher', version: now, target: { devices: ['dev1'] },
      issuedAt: new Date(now - 1000).toISOString(), expires: new Date(now + 3600_000).toISOString(), files: [file],
    };
    await coord.send('dev1', JSON.stringify({ type: 'compress', jobId: 'queued-1', manifest: signManifest(teacher, fleet.privateKey), dataset: 'digits', settings: {} }));
    await waitFor(() => dev1.agent.jobs?.get('queued-1')?.pausedReason?.includes('federated round') === true, 5000, 'job queued behind the round');
    expect(dev1.agent.jobs!.get('queued-1')!.state).toBe('received');
    release();
    expect((await coord.report('with-job', 'dev1')).type).toBe('round-update');
    // It runs once the round is over: downloads the (bogus) teacher and refuses it at inspection.
    await waitFor(() => ['rejected', 'failed', 'succeeded'].includes(dev1.agent.jobs!.get('queued-1')!.state), 20_000, 'queued job to end');
    const job = dev1.agent.jobs!.get('queued-1')!;
    expect(job.error?.code).toMatch(/^EDGEKT_ERR_MODEL/);
    expect(job.pausedReason).toBeNull();
  });

  it('ignores a stale round (older than the last answered for its run), also after a restart', async () => {
    await coord.send('dev1', roundOf('old-2', 2));
    await coord.send('dev1', roundOf('barrier-9', 9));
    await coord.report('barrier-9', 'dev1').catch(dumpLog(dev1));
    await dev1.restart();
    const trainedBefore = calls.length;
    await coord.send('dev1', roundOf('old-3', 3));
    await coord.send('dev1', roundOf('r1', 1)); // an answered roundId, after the restart
    await coord.send('dev1', roundOf('barrier-10', 10));
    await coord.report('barrier-10', 'dev1').catch(dumpLog(dev1));
    expect(coord.reports.filter((r) => ['old-2', 'old-3'].includes(r.roundId))).toEqual([]);
    expect(coord.reports.filter((r) => r.roundId === 'r1').length).toBe(1);
    expect(calls.slice(trainedBefore).map((c) => c.roundId)).toEqual(['barrier-10']);
    expect(dev1.log.some((l) => l.includes('stale round invite ignored'))).toBe(true);
    // Other runs are not affected by this run's numbers.
    await coord.send('dev1', roundOf('other-run-1', 1, { runId: 'run2' }));
    expect((await coord.report('other-run-1', 'dev1')).type).toBe('round-update');
  });

  it('delivers the report after a broker outage mid-round (outbox), and still serves the update', async () => {
    let release!: () => void;
    behaviour.set('outage', { hold: new Promise<void>((r) => (release = r)) });
    await coord.send('dev1', roundOf('outage', 11));
    await waitFor(() => calls.some((c) => c.roundId === 'outage'), 10_000, 'outage round training');
    await broker.stop();
    release();
    await waitFor(() => dev1.log.some((l) => l.includes('round update reported') && l.includes('"outage"')), 10_000, 'update enqueued while offline');
    expect(coord.reports.some((r) => r.roundId === 'outage')).toBe(false);
    await broker.start();
    const r = await coord.report('outage', 'dev1', 20_000).catch(dumpLog(dev1));
    expect(r.type).toBe('round-update');
    const { decoded } = await coord.pullUpdate(r, dev1.deviceKey.publicKey);
    expect(decoded.header.roundId).toBe('outage');
  }, 40_000);
});

async function waitFor(f: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
