import { describe, expect, it } from 'vitest';
import { createRng, normal } from '../src/core/random.js';
import {
  aggregate,
  clipUpdate,
  deltaOf,
  l2Norm,
  maskedMedian,
  maskedTrimmedMean,
  maskedWeightedTrimmedMean,
  weightedTrimmed,
  sliceForDevice,
  tensor,
  zipWeights,
  type ClientUpdate,
  type IndexMap,
  type WeightSet,
} from '../src/federated/index.js';

const up = (clientId: string, numSamples: number, weights: WeightSet, indexMap?: IndexMap, round = 1): ClientUpdate => ({
  clientId, round, numSamples, weights, ...(indexMap ? { indexMap } : {}),
});
const vals = (w: WeightSet, name: string): number[] => Array.from(w[name]!.values);

describe('FedAvg and masked heterogeneous aggregation', () => {
  it('weights full updates by samples', () => {
    const global = { w: tensor([2], [0, 0]) };
    const r = aggregate(global, [up('a', 1, { w: tensor([2], [1, 2]) }), up('b', 3, { w: tensor([2], [5, 10]) })], { round: 1, strategy: { kind: 'fedavg' } });
    // (1·1 + 3·5)/4 = 4, (1·2 + 3·10)/4 = 8
    expect(vals(r.weights, 'w')).toEqual([4, 8]);
    expect(r.included).toEqual(['a', 'b']);
    expect(r.dropped).toEqual([]);
  });

  it('averages each coordinate over its holders only; unheld coordinates keep the global value', () => {
    const global = { k: tensor([2, 3], [10, 11, 12, 13, 14, 15]), b: tensor([4], [1, 2, 3, 4]) };
    const a = up('a', 1, { k: tensor([2, 2], [1, 2, 3, 4]), b: tensor([2], [5, 6]) }, { k: [null, [0, 1]], b: [[0, 1]] });
    const b = up('b', 3, { k: tensor([2, 2], [10, 20, 30, 40]), b: tensor([2], [7, 8]) }, { k: [null, [1, 2]], b: [[1, 2]] });
    const r = aggregate(global, [a, b], { round: 1, strategy: { kind: 'fedavg' } });
    // column 0: a only; column 1: (1·2 + 3·10)/4 = 8 and (1·4 + 3·30)/4 = 23.5; column 2: b only.
    expect(vals(r.weights, 'k')).toEqual([1, 8, 20, 3, 23.5, 40]);
    // b[1] = (6 + 3·7)/4 = 6.75; b[3] held by nobody.
    expect(vals(r.weights, 'b')).toEqual([5, 6.75, 8, 4]);
    // sliceForDevice hands each device its channels of the new global model.
    expect(vals(sliceForDevice(r.weights, a.indexMap), 'k')).toEqual([1, 8, 3, 23.5]);
    expect(vals(sliceForDevice(r.weights, b.indexMap), 'b')).toEqual([6.75, 8]);
  });

  it('with no valid update returns the global model unchanged', () => {
    const global = { w: tensor([1], [3]) };
    const r = aggregate(global, [up('late', 1, { w: tensor([1], [9]) }, undefined, 0)], { round: 1, strategy: { kind: 'fedavg' } });
    expect(vals(r.weights, 'w')).toEqual([3]);
    expect(r.dropped.map((d) => d.problems[0]!.code)).toEqual(['EDGEKT_ERR_UPDATE_STALE']);
  });
});

describe('trimmed mean and median with masks', () => {
  const global = { w: tensor([4], [9, 9, 9, 9]) };
  const updates = [
    up('c1', 1, { w: tensor([4], [1, 1, 1, 1]) }),
    up('c2', 1, { w: tensor([4], [2, 2, 2, 2]) }),
    up('c3', 1000, { w: tensor([4], [6, 6, 6, 6]) }), // samples do not buy influence here
    up('c4', 1, { w: tensor([2], [100, 100]) }, { w: [[0, 1]] }),
    up('c5', 1, { w: tensor([1], [-50]) }, { w: [[0]] }),
  ];
  // holders: w0 = {1,2,6,100,-50}, w1 = {1,2,6,100}, w2 = w3 = {1,2,6}

  it('trims floor(β·h) per side of each coordinate’s holders; falls back to the median when nothing can be cut', () => {
    // β = 0.2: w0 cuts 1 → mean(1,2,6) = 3; w1 (h=4) cuts 0 → median (2+6)/2 = 4; w2, w3 → median 2.
    expect(vals(maskedTrimmedMean(global, updates, 0.2).weights, 'w')).toEqual([3, 4, 2, 2]);
    // β = 0.25: w1 now cuts 1 → mean(2,6) = 4; w2 (h=3) cuts 0 → median 2.
    expect(vals(maskedTrimmedMean(global, updates, 0.25).weights, 'w')).toEqual([3, 4, 2, 2]);
    // β = 0.4: w0 cuts 2 → 2; w1 cuts 1 → 4; w2 cuts 1 → 2.
    expect(vals(maskedTrimmedMean(global, updates, 0.4).weights, 'w')).toEqual([2, 4, 2, 2]);
    // β = 0 is the plain unweighted mean.
    expect(vals(maskedTrimmedMean(global, updates.slice(0, 3), 0).weights, 'w')).toEqual([3, 3, 3, 3]);
  });

  it('sample-weighted trim cuts β of the holders\' weight per side (fractionally) and caps claimed samples at 2 × the median', () => {
    // Counts 1,1,1000,1,1: median 1, so c3 counts as 2. w0 holders by value: -50(1) 1(1) 2(1) 6(2) 100(1), total 6.
    // β = 0.2 cuts weight 1.2 per side: keep 0.8 of "1", all of "2", 1.8 of "6" → (0.8 + 2 + 10.8) / 3.6.
    // w1: 1(1) 2(1) 6(2) 100(1), total 5, cut 1: "2" and "6" whole → 14/3. w2, w3: 1(1) 2(1) 6(2), cut 0.8 → (0.2 + 2 + 7.2) / 2.4.
    const r = vals(maskedWeightedTrimmedMean(global, updates, 0.2).weights, 'w');
    [13.6 / 3.6, 14 / 3, 9.4 / 2.4, 9.4 / 2.4].forEach((want, i) => expect(r[i]).toBeCloseTo(want, 6)); // float32 storage
    // Through aggregate() with the strategy flag: the same values.
    const viaAggregate = vals(aggregate(global, updates, { round: 1, strategy: { kind: 'trimmed-mean', beta: 0.2, weighted: true } }).weights, 'w');
    viaAggregate.forEach((v, i) => expect(v).toBeCloseTo(r[i]!, 12));
    // β = 0 is the capped sample-weighted mean: w2 = (1 + 2 + 2·6) / 4.
    expect(vals(maskedWeightedTrimmedMean(global, updates, 0).weights, 'w')[2]).toBeCloseTo(3.75, 6);
    // One coordinate by hand: β = 0.25 of weights 1,1,1,1 drops both ends; β = 0.2 of weights 2,1,1,1 keeps half of the low end's holder.
    expect(weightedTrimmed([10, 1, 3, 2], [1, 1, 1, 1], 0.25)).toBeCloseTo(2.5, 12);
    expect(weightedTrimmed([1, 2, 3, 10], [2, 1, 1, 1], 0.2)).toBeCloseTo(2, 12);
    expect(weightedTrimmed([1, 2, 3, 10], [2, 1, 1, 1], 0)).toBeCloseTo(17 / 5, 12);
    // β = 0.5 leaves nothing: the weighted median.
    expect(weightedTrimmed([1, 2, 3, 10], [2, 1, 1, 1], 0.5)).toBe(2);
  });

  it('median over holders (even count: mean of the middle two)', () => {
    expect(vals(maskedMedian(global, updates).weights, 'w')).toEqual([2, 4, 2, 2]);
  });

  it('coordinates with fewer than minHolders holders keep the global value', () => {
    expect(vals(maskedMedian(global, updates, 4).weights, 'w')).toEqual([2, 4, 9, 9]);
    const r = aggregate(global, updates, { round: 1, strategy: { kind: 'trimmed-mean', beta: 0.2 }, minHolders: 5 });
    expect(vals(r.weights, 'w')).toEqual([3, 9, 9, 9]);
  });
});

describe('FedAdam', () => {
  it('two rounds by hand, state carried as data; unheld coordinates keep x, m and v', () => {
    const strategy = { kind: 'fedadam' as const, beta1: 0.9, beta2: 0.99, tau: 0.1, eta: 1 };
    const g0 = { x: tensor([2], [1, 1]) };
    // Round 1: mean = (1·3 + 3·2)/4 = 2.25 on both coordinates, Δ = 1.25.
    const r1 = aggregate(g0, [up('a', 1, { x: tensor([2], [3, 3]) }), up('b', 3, { x: tensor([2], [2, 2]) })], { round: 1, strategy });
    // m = 0.1·1.25 = 0.125; v = 0.01·1.5625 = 0.015625; x = 1 + 0.125/(0.125 + 0.1) = 14/9.
    expect(r1.state!.step).toBe(1);
    expect(vals(r1.state!.m, 'x')).toEqual([0.125, 0.125]);
    expect(vals(r1.state!.v, 'x')[0]).toBeCloseTo(0.015625, 9);
    expect(vals(r1.weights, 'x')[0]).toBeCloseTo(14 / 9, 6);
    // Round 2: one device holding coordinate 0 only, Δ = 0.5.
    const x1 = r1.weights.x!.values[0]!;
    const r2 = aggregate(r1.weights, [up('a', 1, { x: tensor([1], [x1 + 0.5]) }, { x: [[0]] }, 2)], { round: 2, strategy, state: r1.state });
    // m = 0.9·0.125 + 0.1·0.5 = 0.1625; v = 0.99·0.015625 + 0.01·0.25 = 0.01796875.
    expect(vals(r2.state!.m, 'x')[0]).toBeCloseTo(0.1625, 6);
    expect(vals(r2.state!.v, 'x')[0]).toBeCloseTo(0.01796875, 8);
    expect(vals(r2.weights, 'x')[0]).toBeCloseTo(14 / 9 + 0.1625 / (Math.sqrt(0.01796875) + 0.1), 5);
    expect(vals(r2.state!.m, 'x')[1]).toBe(0.125);
    expect(vals(r2.weights, 'x')[1]).toBe(r1.weights.x!.values[1]);
    expect(r2.state!.step).toBe(2);
  });
});

describe('clipping', () => {
  it('scales the delta vs global down to the bound, on the held coordinates', () => {
    const global = { a: tensor([3], [1, 1, 7]) };
    const u = up('a', 1, { a: tensor([2], [4, 5]) }, { a: [[0, 1]] }); // delta [3, 4], norm 5
    const r = clipUpdate(global, u, 1);
    expect(r).toMatchObject({ norm: 5, clipped: true });
    expect(vals(r.update.weights, 'a').map((v) => +v.toFixed(6))).toEqual([1.6, 1.8]);
    expect(l2Norm(deltaOf(global, r.update))).toBeCloseTo(1, 6);
    expect(clipUpdate(global, u, 10)).toMatchObject({ update: u, clipped: false });
  });

  it('is applied by aggregate before averaging and reported', () => {
    const global = { a: tensor([2], [0, 0]) };
    const r = aggregate(global, [up('big', 1, { a: tensor([2], [30, 40]) }), up('small', 1, { a: tensor([2], [1, 0]) })], { round: 1, strategy: { kind: 'fedavg' }, clip: 5 });
    expect(r.clipped).toEqual([{ clientId: 'big', norm: 50 }]);
    // big clipped to [3, 4]; mean with [1, 0] = [2, 2]
    expect(vals(r.weights, 'a').map((v) => +v.toFixed(5))).toEqual([2, 2]);
  });
});

describe('robustness', () => {
  it('8 honest updates + 2 sign-flipped ×10: trimmed mean and median stay near the honest mean, FedAvg does not', () => {
    const n = 64;
    const rng = createRng(11);
    const global = { w: tensor([n], Array.from({ length: n }, () => normal(rng))) };
    const direction = Array.from({ length: n }, () => normal(rng));
    const honest = Array.from({ length: 8 }, (_, i) =>
      up(`h${i}`, 10, { w: tensor([n], global.w.values.map((g, j) => g + direction[j]! + 0.1 * normal(rng))) }));
    const attackers = honest.slice(0, 2).map((h, i) =>
      up(`x${i}`, 10, zipWeights(global, deltaOf(global, h), (g, d) => g - 10 * d)));
    const honestMean = aggregate(global, honest, { round: 1, strategy: { kind: 'fedavg' } }).weights;
    const all = [...honest, ...attackers];
    const dist = (w: WeightSet): number => l2Norm(zipWeights(w, honestMean, (a, b) => a - b));
    const scale = l2Norm(zipWeights(honestMean, global, (a, b) => a - b));
    const trimmed = aggregate(global, all, { round: 1, strategy: { kind: 'trimmed-mean', beta: 0.2 } }).weights;
    const median = aggregate(global, all, { round: 1, strategy: { kind: 'median' } }).weights;
    const fedavg = aggregate(global, all, { round: 1, strategy: { kind: 'fedavg' } }).weights;
    expect(dist(trimmed)).toBeLessThan(0.1 * scale);
    expect(dist(median)).toBeLessThan(0.1 * scale);
    expect(dist(fedavg)).toBeGreaterThan(2 * scale); // ≈ 2.2: the mean moved to −1.2 × the honest step
  });
});
