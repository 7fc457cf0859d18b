import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RoundConfig } from '../src/config/federated.js';
import { startAedes, type AedesBroker } from './helpers/aedes.js';
import { coordinatorFiles, waitUntil, type CoordinatorFiles } from './helpers/coordinator-harness.js';
import { startRoundClient, type RoundClient, type RoundClientBehaviour } from './helpers/round-client.js';
import { baseWeights, globalOf, retainedResult, startAedesCoordinator, startRun, waitForRun } from './helpers/round-harness.js';

/**
 * Federated rounds end to end at the protocol level: a real coordinator (SQLite, HTTP on port 0)
 * on an embedded aedes broker, and simulated round clients that pull the global over blocks, add a
 * known delta, sign with their device key and serve their update over `serve`.
 */
describe('federated rounds (aedes, SQLite, simulated round clients)', () => {
  let broker: AedesBroker;
  const cleanups: Array<() => Promise<void> | void> = [];
  beforeAll(async () => {
    broker = await startAedes();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  async function setup(clients: Array<{ id: string; profile?: string; behaviour?: RoundClientBehaviour }>): Promise<{ files: CoordinatorFiles; c: Awaited<ReturnType<typeof startAedesCoordinator>>; fleet: Map<string, RoundClient> }> {
    const files = coordinatorFiles();
    cleanups.push(() => files.cleanup());
    const c = await startAedesCoordinator({ id: 'fc1', brokerUrl: broker.url, files });
    cleanups.push(() => c.stop());
    const fleet = new Map<string, RoundClient>();
    for (const k of clients) {
      const rc = await startRoundClient({ url: broker.url, id: k.id, fleetKey: files.fleet, ...(k.profile ? { profile: k.profile } : {}), ...(k.behaviour ? { behaviour: k.behaviour } : {}) });
      cleanups.push(() => rc.stop());
      fleet.set(k.id, rc);
    }
    // Selection reads online devices with idle telemetry.
    await waitUntil('clients registered with telemetry', async () => {
      for (const k of clients) if (!(await c.store.getDevice(k.id))?.telemetry) return false;
      return true;
    }, 10_000);
    return { files, c, fleet };
  }

  it('a 3-client round aggregates to the hand-computed FedAvg by samples and publishes a retained result', async () => {
    const { c, fleet } = await setup([
      { id: 'a1', behaviour: { delta: 0.1, numSamples: 10, metrics: { loss: 1 } } },
      { id: 'a2', behaviour: { delta: 0.2, numSamples: 20, metrics: { loss: 2 } } },
      { id: 'a3', behaviour: { delta: 0.4, numSamples: 70, metrics: { loss: 3 } } },
    ]);
    const r = await startRun(c.api, 'fedavg1', { rounds: 1, deadlineSeconds: 20, selection: { minCount: 3 } });
    expect(r.status).toBe(200);
    const t0 = Date.now();
    const run = await waitForRun(c.store, 'fedavg1', ['completed', 'failed']);
    expect(Date.now() - t0).toBeLessThan(15_000); // closed on all-reported, not at the 20 s deadline
    expect(run).toMatchObject({ state: 'completed', roundNumber: 1 });
    // (0.1·10 + 0.2·20 + 0.4·70) / 100 = 0.33 on every coordinate.
    const base = baseWeights();
    const g = await globalOf(c.store, run.globalSha256);
    for (const [name, t] of Object.entries(base)) {
      const want = Array.from(t.values, (v) => v + 0.33);
      Array.from(g[name]!.values).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
    }
    const [round] = await c.store.listRounds({ runId: 'fedavg1' });
    const result = await retainedResult(broker.url, round!.id);
    expect(result).toMatchObject({ state: 'completed', included: ['a1', 'a2', 'a3'], refused: [], late: [], dropped: [], globalSha256: run.globalSha256 });
    expect(result.metrics['client.loss']).toBeCloseTo((1 * 10 + 2 * 20 + 3 * 70) / 100, 9);
    // Every client got the invite with a RoundConfig naming the round's global file and the run's topology-only base.
    for (const k of fleet.values()) expect(k.invites).toEqual([round!.id]);
    const cfg = fleet.get('a1')!.configs[0] as RoundConfig;
    expect(cfg).toMatchObject({ round: 1, runId: 'fedavg1', roundId: round!.id });
    const model = await c.store.getArtifact(cfg.baseSha256!);
    const { readFile } = await import('node:fs/promises');
    expect(JSON.parse(await readFile(model!.location, 'utf8'))).toMatchObject({ weightsManifest: [], modelTopology: { class_name: 'Sequential' } });
  });

  it('clients that never answer or disconnect mid-round are dropped at the deadline; the round completes with minCount met', async () => {
    const { c } = await setup([
      { id: 'b1', behaviour: { delta: 1, numSamples: 5 } },
      { id: 'b2', behaviour: { silent: true } },
      { id: 'b3', behaviour: { disconnectOnInvite: true } },
    ]);
    expect((await startRun(c.api, 'drop1', { rounds: 1, deadlineSeconds: 2, selection: { minCount: 1 } })).status).toBe(200);
    const t0 = Date.now();
    const run = await waitForRun(c.store, 'drop1', ['completed', 'failed'], 10_000);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(1500);
    expect(took).toBeLessThan(4500); // deadline 2 s after the run started, ticks every 100 ms
    expect(run.state).toBe('completed');
    const [round] = await c.store.listRounds({ runId: 'drop1' });
    expect(round!.result).toMatchObject({ state: 'completed', included: ['b1'], dropped: ['b2', 'b3'] });
    const g = await globalOf(c.store, run.globalSha256);
    expect(Array.from(g['d/bias']!.values)).toEqual(Array.from(Float32Array.from([1.5, 0.5, 1])));
  });

  it('refuses each bad update with its code and aggregates none of them', async () => {
    const { c, fleet } = await setup([
      { id: 'g1', behaviour: { delta: 0.5, numSamples: 10, delayMs: 1500 } },
      { id: 'g2', behaviour: { delta: 1.5, numSamples: 10 } },
      { id: 'x-sig', behaviour: { delta: 9, badSignature: true } },
      { id: 'x-hash', behaviour: { delta: 9, badHash: true } },
      { id: 'x-nan', behaviour: { delta: 9, nan: true } },
      { id: 'x-shape', behaviour: { delta: 9, wrongShape: true } },
      { id: 'x-map', behaviour: { delta: 9, badIndexMap: true } },
      { id: 'x-stale', behaviour: { delta: 9, staleRound: true } },
      // Signed, right round in meta.update, but the manifest names another run's round, or another device.
      { id: 'x-name', behaviour: { delta: 9, manifestName: 'other-run-r1-a1' } },
      { id: 'x-device', behaviour: { delta: 9, manifestDevice: 'g1' } },
      { id: 'intruder', profile: 'other', behaviour: { silent: true } },
    ]);
    expect((await startRun(c.api, 'refuse1', { rounds: 1, deadlineSeconds: 20, selection: { minCount: 2, profiles: ['sim-small'] } })).status).toBe(200);
    const round = await waitUntil('round open', async () => (await c.store.listRounds({ runId: 'refuse1' }))[0] ?? null);
    const w = baseWeights();
    await fleet.get('intruder')!.intrude(round.id, 1, w);
    const run = await waitForRun(c.store, 'refuse1', ['completed', 'failed'], 20_000);
    expect(run.state).toBe('completed');
    const result = (await c.store.getRound(round.id))!.result as { included: string[]; refused: Array<{ deviceId: string; codes: string[] }>; dropped: string[] };
    expect(result.included).toEqual(['g1', 'g2']);
    const codes = Object.fromEntries(result.refused.map((r) => [r.deviceId, r.codes]));
    expect(codes['x-sig']).toEqual(['EDGEKT_ERR_SIGNATURE']);
    expect(codes['x-hash']).toEqual(['EDGEKT_ERR_HASH']);
    expect(codes['x-nan']).toEqual(['EDGEKT_ERR_UPDATE_NONFINITE']);
    expect(codes['x-shape']).toContain('EDGEKT_ERR_UPDATE_SHAPE');
    expect(codes['x-map']).toContain('EDGEKT_ERR_UPDATE_INDEX_MAP');
    expect(codes['x-stale']).toEqual(['EDGEKT_ERR_UPDATE_STALE']);
    expect(codes['x-name']).toEqual(['EDGEKT_ERR_UPDATE_STALE']);
    expect(codes['x-device']).toEqual(['EDGEKT_ERR_WRONG_TARGET']);
    expect(codes.intruder).toEqual(['EDGEKT_ERR_ROUND_NOT_SELECTED']);
    expect(result.dropped).toEqual([]);
    // Only g1 and g2 (equal samples): base + (0.5 + 1.5) / 2 = base + 1.
    const g = await globalOf(c.store, run.globalSha256);
    Array.from(g['d/kernel']!.values).forEach((v, i) => expect(v).toBeCloseTo(w['d/kernel']!.values[i]! + 1, 6));
  });

  it('a round short of minCount fails with EDGEKT_ERR_ROUND_QUORUM and is retried up to maxAttempts, then the run fails', async () => {
    const { c } = await setup([{ id: 'q1', behaviour: { delta: 1 } }, { id: 'q2', behaviour: { silent: true } }]);
    expect((await startRun(c.api, 'quorum1', { rounds: 2, deadlineSeconds: 1, maxAttempts: 2, selection: { minCount: 2 } })).status).toBe(200);
    const run = await waitForRun(c.store, 'quorum1', ['completed', 'failed'], 15_000);
    expect(run).toMatchObject({ state: 'failed', roundNumber: 0 });
    const rounds = await c.store.listRounds({ runId: 'quorum1' });
    expect(rounds.map((r) => [r.id, r.state])).toEqual([['quorum1-r1-a1', 'failed'], ['quorum1-r1-a2', 'failed']]);
    for (const r of rounds) {
      expect(r.result).toMatchObject({ state: 'failed', included: ['q1'], dropped: ['q2'], globalSha256: null, error: { code: 'EDGEKT_ERR_ROUND_QUORUM' } });
      expect(await retainedResult(broker.url, r.id)).toMatchObject({ state: 'failed', error: { code: 'EDGEKT_ERR_ROUND_QUORUM' } });
    }
  });

  it('with too few eligible devices the round waits until its deadline, then fails with EDGEKT_ERR_ROUND_QUORUM', async () => {
    const { c, fleet } = await setup([{ id: 'w1', behaviour: { delta: 1 } }]);
    expect((await startRun(c.api, 'wait1', { rounds: 1, deadlineSeconds: 1, maxAttempts: 1, selection: { minCount: 2 } })).status).toBe(200);
    const run = await waitForRun(c.store, 'wait1', ['completed', 'failed'], 10_000);
    expect(run.state).toBe('failed');
    const rounds = await c.store.listRounds({ runId: 'wait1' });
    expect(rounds.map((r) => r.state)).toEqual(['failed']);
    expect(rounds[0]!.result).toMatchObject({ included: [], error: { code: 'EDGEKT_ERR_ROUND_QUORUM' } });
    expect(fleet.get('w1')!.invites).toEqual([]);
  });

  it('a run whose stored spec no longer parses is failed once, not retried every tick', async () => {
    const { c } = await setup([{ id: 'b1' }]);
    await c.store.createFederatedRun({ id: 'badspec', spec: { rounds: 2, strategy: 'no-such-strategy' }, globalSha256: 'a'.repeat(64) });
    const run = await waitForRun(c.store, 'badspec', ['failed', 'completed'], 10_000);
    expect(run).toMatchObject({ state: 'failed', roundNumber: 0 });
    expect(await c.store.listRounds({ runId: 'badspec' })).toEqual([]);
  });

  it('HTTP: a read-only token cannot start a run (403), but lists runs and rounds; /metrics has round gauges', async () => {
    const { c, files } = await setup([{ id: 'h1', behaviour: { delta: 1 } }]);
    const denied = await startRun(c.api, 'ro1', { rounds: 1 }, baseWeights(), files.readToken);
    expect(denied).toMatchObject({ status: 403, body: { error: { code: 'EDGEKT_ERR_FORBIDDEN' } } });
    expect(await c.store.getFederatedRun('ro1')).toBeNull();
    const bad = await c.api('POST', '/api/federated', { spec: { rounds: 0 }, base: { modelJson: {}, weights: 'AA==' } });
    expect(bad).toMatchObject({ status: 400, body: { error: { code: 'EDGEKT_ERR_USAGE' } } });
    expect((await startRun(c.api, 'ok1', { rounds: 1, deadlineSeconds: 10 })).status).toBe(200);
    await waitForRun(c.store, 'ok1', ['completed']);
    const runs = await c.api('GET', '/api/federated', undefined, files.readToken);
    expect(runs.status).toBe(200);
    expect((runs.body as Array<{ id: string }>).map((r) => r.id)).toEqual(['ok1']);
    const one = await c.api('GET', '/api/federated/ok1', undefined, files.readToken);
    expect(one.body).toMatchObject({ id: 'ok1', state: 'completed', rounds: [{ round: 1, state: 'completed', invited: ['h1'] }] });
    const rounds = await c.api('GET', '/api/rounds?runId=ok1', undefined, files.readToken);
    expect(rounds.body).toMatchObject([{ id: 'ok1-r1-a1', result: { included: ['h1'] } }]);
    expect((await c.api('GET', '/api/federated/nope', undefined, files.readToken)).status).toBe(404);
    const metrics = await c.api('GET', '/metrics', undefined, null);
    expect(String(metrics.body)).toMatch(/edgekt_federated_rounds\{state="completed"\} 1/);
  });
});
