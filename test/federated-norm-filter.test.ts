import { describe, expect, it } from 'vitest';
import { aggregate, tensor, type ClientUpdate, type IndexMap, type WeightSet } from '../src/federated/index.js';

const up = (clientId: string, numSamples: number, weights: WeightSet, indexMap?: IndexMap): ClientUpdate => ({
  clientId, round: 1, numSamples, weights, ...(indexMap ? { indexMap } : {}),
});
const vals = (w: WeightSet, name: string): number[] => Array.from(w[name]!.values);

describe('norm filter (rejectAboveMedian) with masks', () => {
  // global w = [0, 0, 0, 5]; deltas: a [3,0,0,0] (norm 3), b [0,4,0,0] (4),
  // c masked to w[0..1]: [0,6] (6), x [−40,0,0,0] (40). Median of 3, 4, 6, 40 = 5.
  const global = { w: tensor([4], [0, 0, 0, 5]) };
  const updates = [
    up('a', 1, { w: tensor([4], [3, 0, 0, 5]) }),
    up('b', 1, { w: tensor([4], [0, 4, 0, 5]) }),
    up('c', 2, { w: tensor([2], [0, 6]) }, { w: [[0, 1]] }),
    up('x', 1, { w: tensor([4], [-40, 0, 0, 5]) }),
  ];

  it('leaves out updates above factor × the median delta norm, then reduces the rest over their holders', () => {
    const r = aggregate(global, updates, { round: 1, strategy: { kind: 'fedavg' }, rejectAboveMedian: 2 });
    expect(r.rejected).toEqual([{ clientId: 'x', norm: 40, threshold: 10 }]);
    expect(r.included).toEqual(['a', 'b', 'c']);
    // w0 = (1·3 + 1·0 + 2·0)/4 = 0.75; w1 = (0 + 4 + 2·6)/4 = 4; w2 = (0 + 0)/2 = 0 (a, b); w3 = 5 (a, b).
    expect(vals(r.weights, 'w')).toEqual([0.75, 4, 0, 5]);
  });

  it('keeps every update when all are within the threshold, and is off by default', () => {
    const wide = aggregate(global, updates, { round: 1, strategy: { kind: 'fedavg' }, rejectAboveMedian: 10 });
    expect(wide.rejected).toEqual([]);
    // x kept: w0 = (3 + 0 + 0 − 40)/5 = −7.4
    expect(vals(wide.weights, 'w')[0]).toBeCloseTo(-7.4, 6);
    expect(aggregate(global, updates, { round: 1, strategy: { kind: 'fedavg' } }).rejected).toEqual([]);
  });

  it('runs before trimming: the rest are trimmed per coordinate over their holders', () => {
    const r = aggregate(global, updates, { round: 1, strategy: { kind: 'trimmed-mean', beta: 0.34 }, rejectAboveMedian: 2 });
    // holders after the filter: w0 {3,0,0}, w1 {0,4,6} → floor(0.34·3) = 1 cut per side → 0 and 4;
    // w2 {0,0} (nothing to cut: median = mean) → 0; w3 {5,5} → 5.
    expect(vals(r.weights, 'w')).toEqual([0, 4, 0, 5]);
  });

  it('measures learned tensors only: BatchNorm moving statistics do not trip it under the local rule', () => {
    const g = { w: tensor([1], [0]), 'bn/moving_variance': tensor([1], [1]) };
    const us = [
      up('a', 1, { w: tensor([1], [1]), 'bn/moving_variance': tensor([1], [1000]) }),
      up('b', 1, { w: tensor([1], [2]), 'bn/moving_variance': tensor([1], [1]) }),
      up('c', 1, { w: tensor([1], [3]), 'bn/moving_variance': tensor([1], [1]) }),
    ];
    // learned norms 1, 2, 3 → median 2, threshold 4: nobody out (a's variance would be ≈ 999 otherwise).
    const r = aggregate(g, us, { round: 1, strategy: { kind: 'fedavg' }, rejectAboveMedian: 2 });
    expect(r.rejected).toEqual([]);
    expect(vals(r.weights, 'w')).toEqual([2]);
    expect(vals(r.weights, 'bn/moving_variance')).toEqual([1]);
  });
});
