import { describe, expect, it } from 'vitest';
import { federatedMarkdown, summarizeGroups, verdicts, type ClientAccuracy } from '../src/bench/federated-bench.js';
import { memoTrainer, signFlipTrainer } from '../src/cli/fed-bench/transport.js';
import { RoundConfigSchema } from '../src/config/federated.js';
import { tensor, type RoundTrainer } from '../src/federated/index.js';

const config = RoundConfigSchema.parse({ type: 'round-config', roundId: 'r1', round: 1, strategy: 'fedavg', epochs: 1, learningRate: 0.1, batchSize: 4, deadline: '2030-01-01T00:00:00Z' });
const map = { w: [[1, 2]] };
const global = { w: tensor([3], [1, 2, 3]) };
const req = { roundId: 'r1', round: 1, config, global, signal: new AbortController().signal };

describe('bench federated clients', () => {
  it('a sign-flipping client sends start − 10·(trained − start) on its own slice', async () => {
    const honest: RoundTrainer = async () => ({ weights: { w: tensor([2], [2.5, 3.5]) }, indexMap: map, numSamples: 4 });
    const r = await signFlipTrainer(honest, 10)(req);
    // slice [2, 3], delta [0.5, 0.5] → [2 − 5, 3 − 5]
    expect(Array.from(r.weights.w!.values)).toEqual([-3, -2]);
  });

  it('the memo trains once per (round, settings, start slice)', async () => {
    let calls = 0;
    const t: RoundTrainer = async () => ({ weights: { w: tensor([2], [calls++, 0]) }, indexMap: map, numSamples: 4 });
    const m = memoTrainer(t, map, new Map());
    await m(req);
    await m({ ...req, global: { w: tensor([3], [9, 2, 3]) } }); // outside the slice: same start
    expect(calls).toBe(1);
    await m({ ...req, global: { w: tensor([3], [1, 2, 4]) } });
    await m({ ...req, round: 2 });
    expect(calls).toBe(3);
  });
});

describe('bench federated summary', () => {
  it('group means per seed, their mean and spread, and the verdicts', () => {
    const rows: ClientAccuracy[] = [];
    const add = (seed: number, condition: ClientAccuracy['condition'], a: number, b: number): void =>
      void rows.push({ seed, condition, client: 'g-1', group: 'g', accuracy: a }, { seed, condition, client: 'g-2', group: 'g', accuracy: b });
    for (const seed of [0, 1]) {
      add(seed, 'federated', 0.8, 0.9 + seed * 0.02);
      for (const c of ['prefix', 'localOnly', 'none', 'attackedFedAvg'] as const) add(seed, c, 0.5, 0.5);
      add(seed, 'attacked', 0.8, 0.88);
    }
    const [g] = summarizeGroups([{ name: 'g', clients: ['g-1', 'g-2'], params: 10, pruneFraction: 0.5 }], rows, [0, 1]);
    expect(g!.federated.perSeed[0]).toBeCloseTo(0.85, 10);
    expect(g!.federated.perSeed[1]).toBeCloseTo(0.86, 10);
    expect(g!.federated.mean).toBeCloseTo(0.855, 10);
    expect(g!.federated.spread).toBeCloseTo(0.01, 10);
    expect(verdicts([g!])).toEqual({ federatedBeatsLocalAndNone: true, attackedWithin2Points: true, federatedBeatsPrefix: true });
    // withoutAttackers did not run: its column says so instead of NaN.
    const row = federatedMarkdown([g!]).split('\n')[2]!;
    expect(row).toContain('| 85.50 ± 0.50 |');
    expect(row.endsWith('| not run |')).toBe(true);
  });
});
