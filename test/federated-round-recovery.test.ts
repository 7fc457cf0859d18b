import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startAedes, type AedesBroker } from './helpers/aedes.js';
import { coordinatorFiles, waitUntil } from './helpers/coordinator-harness.js';
import { startRoundClient } from './helpers/round-client.js';
import { baseWeights, globalOf, startAedesCoordinator, startRun, waitForRun } from './helpers/round-harness.js';

/** A coordinator stopped mid-round and started again on the same store, artifacts and id. */
describe('federated round recovery (aedes, SQLite)', () => {
  let broker: AedesBroker;
  const cleanups: Array<() => Promise<void> | void> = [];
  beforeEach(async () => {
    broker = await startAedes();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await broker?.stop();
  });

  it('a restarted coordinator resumes the open round: updates already recorded count, the late one is taken in, the round closes once', async () => {
    const files = coordinatorFiles();
    cleanups.push(() => files.cleanup());
    const a = await startAedesCoordinator({ id: 'rc1', brokerUrl: broker.url, files });
    cleanups.push(() => a.stop());
    const clients = [
      { id: 'p1', behaviour: { delta: 0.1, numSamples: 10 } },
      { id: 'p2', behaviour: { delta: 0.2, numSamples: 10 } },
      // Answers while the coordinator is down: its report waits in the coordinator's persistent session.
      { id: 'p3', behaviour: { delta: 0.6, numSamples: 20, delayMs: 2500 } },
    ];
    const fleet = [];
    for (const k of clients) {
      const rc = await startRoundClient({ url: broker.url, id: k.id, fleetKey: files.fleet, behaviour: k.behaviour });
      cleanups.push(() => rc.stop());
      fleet.push(rc);
    }
    await waitUntil('clients with telemetry', async () => {
      for (const k of clients) if (!(await a.store.getDevice(k.id))?.telemetry) return false;
      return true;
    }, 10_000);
    expect((await startRun(a.api, 'rec1', { rounds: 1, deadlineSeconds: 15, selection: { minCount: 3 } })).status).toBe(200);
    const round = await waitUntil('two updates recorded', async () => {
      const [r] = await a.store.listRounds({ runId: 'rec1' });
      return r && (await a.store.listRoundUpdates(r.id)).length === 2 ? r : null;
    }, 10_000);
    expect(round.state).toBe('open');
    await a.stop();

    const b = await startAedesCoordinator({ id: 'rc1', brokerUrl: broker.url, files });
    cleanups.push(() => b.stop());
    const run = await waitForRun(b.store, 'rec1', ['completed', 'failed'], 15_000);
    expect(run.state).toBe('completed');
    const rounds = await b.store.listRounds({ runId: 'rec1' });
    expect(rounds.map((r) => [r.id, r.state])).toEqual([[round.id, 'completed']]);
    expect(rounds[0]!.result).toMatchObject({ included: ['p1', 'p2', 'p3'], dropped: [], late: [] });
    // (0.1·10 + 0.2·10 + 0.6·20) / 40 = 0.375
    const base = baseWeights();
    const g = await globalOf(b.store, run.globalSha256);
    Array.from(g['d/bias']!.values).forEach((v, i) => expect(v).toBeCloseTo(base['d/bias']!.values[i]! + 0.375, 6));
    // Each device answered one round: a re-sent invite for the same round is not a second round.
    for (const c of fleet) expect(new Set(c.invites)).toEqual(new Set([round.id]));
    expect(fleet.map((c) => c.reported)).toEqual([[round.id], [round.id], [round.id]]);
    expect(b.log.count('federated round closed')).toBe(1);
  });

  it('an update announced after the round closed is recorded as late and never aggregated', async () => {
    const files = coordinatorFiles();
    cleanups.push(() => files.cleanup());
    const c = await startAedesCoordinator({ id: 'rc2', brokerUrl: broker.url, files });
    cleanups.push(() => c.stop());
    const on = await startRoundClient({ url: broker.url, id: 'l1', fleetKey: files.fleet, behaviour: { delta: 1 } });
    const slow = await startRoundClient({ url: broker.url, id: 'l2', fleetKey: files.fleet, behaviour: { delta: 50, delayMs: 2500 } });
    cleanups.push(() => on.stop(), () => slow.stop());
    await waitUntil('clients with telemetry', async () => Boolean((await c.store.getDevice('l1'))?.telemetry && (await c.store.getDevice('l2'))?.telemetry), 10_000);
    expect((await startRun(c.api, 'late1', { rounds: 1, deadlineSeconds: 1.5, selection: { minCount: 1 } })).status).toBe(200);
    const run = await waitForRun(c.store, 'late1', ['completed', 'failed'], 10_000);
    expect(run.state).toBe('completed');
    const [round] = await c.store.listRounds({ runId: 'late1' });
    expect(round!.result).toMatchObject({ included: ['l1'], dropped: ['l2'] });
    const late = await waitUntil('late update recorded', async () => (await c.store.listRoundUpdates(round!.id)).find((u) => u.deviceId === 'l2') ?? null, 10_000);
    expect(late.metadata).toMatchObject({ kind: 'late', codes: ['EDGEKT_ERR_ROUND_LATE'] });
    const g = await globalOf(c.store, (await c.store.getFederatedRun('late1'))!.globalSha256);
    expect(g['d/bias']!.values[0]).toBeCloseTo(1.5, 6);
  });
});
