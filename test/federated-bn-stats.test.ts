import { describe, expect, it } from 'vitest';
import { aggregate, isBatchNormStatistic, tensor, type ClientUpdate, type IndexMap, type WeightSet } from '../src/federated/index.js';

const up = (clientId: string, numSamples: number, weights: WeightSet, indexMap?: IndexMap): ClientUpdate => ({
  clientId, round: 1, numSamples, weights, ...(indexMap ? { indexMap } : {}),
});
const vals = (w: WeightSet, name: string): number[] => Array.from(w[name]!.values);

// A BatchNorm layer of 3 channels; device b holds channels 0 and 2 only.
const global: WeightSet = {
  'bn/gamma': tensor([3], [1, 1, 1]),
  'bn/moving_mean': tensor([3], [0, 0, 0]),
  'bn/moving_variance': tensor([3], [1, 1, 1]),
};
const a = up('a', 1, { 'bn/gamma': tensor([3], [2, 3, 4]), 'bn/moving_mean': tensor([3], [5, 6, 7]), 'bn/moving_variance': tensor([3], [9, 9, 9]) });
const bMap: IndexMap = { 'bn/gamma': [[0, 2]], 'bn/moving_mean': [[0, 2]], 'bn/moving_variance': [[0, 2]] };
const b = up('b', 3, { 'bn/gamma': tensor([2], [6, 8]), 'bn/moving_mean': tensor([2], [1, 1]), 'bn/moving_variance': tensor([2], [4, 4]) }, bMap);

describe('BatchNorm statistics in aggregation', () => {
  it('names: moving mean and variance are statistics, gamma/beta/kernels are not', () => {
    expect(['bn/moving_mean', 'x/y/moving_variance'].map(isBatchNormStatistic)).toEqual([true, true]);
    expect(['bn/gamma', 'bn/beta', 'conv/kernel', 'moving_mean_like/kernel'].map(isBatchNormStatistic)).toEqual([false, false, false, false]);
  });

  it("default 'local': learned tensors are masked-averaged, statistics keep the global's values", () => {
    const r = aggregate(global, [a, b], { round: 1, strategy: { kind: 'fedavg' } });
    // gamma: ch0 (1·2 + 3·6)/4 = 5, ch1 only a: 3, ch2 (1·4 + 3·8)/4 = 7
    expect(vals(r.weights, 'bn/gamma')).toEqual([5, 3, 7]);
    expect(vals(r.weights, 'bn/moving_mean')).toEqual([0, 0, 0]);
    expect(vals(r.weights, 'bn/moving_variance')).toEqual([1, 1, 1]);
    expect(Object.keys(r.weights)).toEqual(Object.keys(global));
    expect(r.included).toEqual(['a', 'b']);
  });

  it("'average': statistics are reduced like any tensor", () => {
    const r = aggregate(global, [a, b], { round: 1, strategy: { kind: 'fedavg' }, batchNormStatistics: 'average' });
    // mean: ch0 (5 + 3)/4 = 2, ch1 6, ch2 (7 + 3)/4 = 2.5; variance: (9 + 12)/4 = 5.25, 9, 5.25
    expect(vals(r.weights, 'bn/moving_mean')).toEqual([2, 6, 2.5]);
    expect(vals(r.weights, 'bn/moving_variance')).toEqual([5.25, 9, 5.25]);
  });

  it("'local': statistics do not count toward the server clip's norm, and sign-flipped statistics cannot go negative", () => {
    // a's learned delta is (1, 2, 3): norm √14 ≈ 3.74 < 4, so a is not clipped despite its statistics moving by ~12.
    const r = aggregate(global, [a], { round: 1, strategy: { kind: 'fedavg' }, clip: 4 });
    expect(r.clipped).toEqual([]);
    expect(vals(r.weights, 'bn/gamma')).toEqual([2, 3, 4]);
    const flipped = up('m', 1, { 'bn/gamma': tensor([3], [1, 1, 1]), 'bn/moving_mean': tensor([3], [0, 0, 0]), 'bn/moving_variance': tensor([3], [-80, -80, -80]) });
    expect(vals(aggregate(global, [flipped], { round: 1, strategy: { kind: 'trimmed-mean', beta: 0.2 } }).weights, 'bn/moving_variance')).toEqual([1, 1, 1]);
  });

  it('a statistic of the wrong shape is still refused', () => {
    const bad = up('c', 1, { ...a.weights, 'bn/moving_mean': tensor([2], [0, 0]) });
    const r = aggregate(global, [a, bad], { round: 1, strategy: { kind: 'fedavg' } });
    expect(r.dropped.map((d) => d.clientId)).toEqual(['c']);
    expect(r.included).toEqual(['a']);
  });
});
