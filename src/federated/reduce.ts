import { medianOfSorted } from '../core/stats.js';
import { globalOffsets } from './index-map.js';
import type { ClientUpdate } from './validate.js';
import type { WeightSet, WeightTensor } from './weights.js';

/**
 * Coordinate-wise reductions over masked updates. Each update covers only the global coordinates
 * its index map names; every global coordinate is reduced over its holders alone, and one held
 * by fewer than `minHolders` devices keeps the global value (nobody, or too few to trust, trained it).
 * Inputs must have passed `validateUpdate`.
 */

interface Holders {
  /** CSR: the holders of coordinate i are start[i]..start[i+1]-1. */
  start: Int32Array;
  values: Float64Array;
  weights: Float64Array;
}

function holdersOf(name: string, g: WeightTensor, updates: readonly ClientUpdate[]): Holders {
  const n = g.values.length;
  const parts = updates.map((u) => ({ offsets: globalOffsets(g.shape, u.indexMap?.[name]), values: u.weights[name]!.values, w: u.numSamples }));
  const start = new Int32Array(n + 1);
  for (const p of parts) for (const o of p.offsets) start[o + 1]!++;
  for (let i = 0; i < n; i++) start[i + 1]! += start[i]!;
  const fill = start.slice(0, n);
  const total = start[n]!;
  const values = new Float64Array(total);
  const weights = new Float64Array(total);
  for (const p of parts) {
    for (let k = 0; k < p.offsets.length; k++) {
      const at = fill[p.offsets[k]!]!++;
      values[at] = p.values[k]!;
      weights[at] = p.w;
    }
  }
  return { start, values, weights };
}

type Reducer = (values: Float64Array, weights: Float64Array) => number;

function reduceAll(global: WeightSet, updates: readonly ClientUpdate[], minHolders: number, reducer: Reducer): MaskedResult {
  const weights: Record<string, WeightTensor> = {};
  const held: Record<string, Uint8Array> = {};
  for (const [name, g] of Object.entries(global)) {
    const h = holdersOf(name, g, updates);
    const values = g.values.slice();
    const mask = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const a = h.start[i]!;
      const b = h.start[i + 1]!;
      if (b - a < Math.max(1, minHolders)) continue;
      values[i] = reducer(h.values.subarray(a, b), h.weights.subarray(a, b));
      mask[i] = 1;
    }
    weights[name] = { shape: [...g.shape], values };
    held[name] = mask;
  }
  return { weights, held };
}

export interface MaskedResult {
  weights: Record<string, WeightTensor>;
  /** 1 where the coordinate was reduced from holders, 0 where it kept the global value. */
  held: Record<string, Uint8Array>;
}

/** Sample-weighted mean over holders: FedAvg, and masked heterogeneous FedAvg when maps are present. */
export function maskedMean(global: WeightSet, updates: readonly ClientUpdate[], minHolders = 1): MaskedResult {
  return reduceAll(global, updates, minHolders, (v, w) => {
    let s = 0;
    let ws = 0;
    for (let i = 0; i < v.length; i++) {
      s += v[i]! * w[i]!;
      ws += w[i]!;
    }
    return s / ws;
  });
}

function sortedCopy(v: Float64Array): Float64Array {
  return Float64Array.from(v).sort();
}


/**
 * Unweighted coordinate-wise median over holders (even count: mean of the two middle values).
 * Unweighted on purpose: a robust aggregate must not let one client buy influence by claiming samples.
 */
export function maskedMedian(global: WeightSet, updates: readonly ClientUpdate[], minHolders = 1): MaskedResult {
  return reduceAll(global, updates, minHolders, (v) => medianOfSorted(sortedCopy(v)));
}

/**
 * Unweighted coordinate-wise trimmed mean (Yin et al. 2018): of h holders, floor(β·h) are cut from
 * each side. Fallback when h < 1/β (floor(β·h) = 0, nothing could be cut): the holders' median,
 * which is still robust for h ≥ 3 and equals the mean for h ≤ 2.
 */
export function maskedTrimmedMean(global: WeightSet, updates: readonly ClientUpdate[], beta: number, minHolders = 1): MaskedResult {
  return reduceAll(global, updates, minHolders, (v) => {
    const s = sortedCopy(v);
    const cut = Math.floor(beta * s.length);
    if (cut === 0 && beta > 0) return medianOfSorted(s);
    let sum = 0;
    for (let i = cut; i < s.length - cut; i++) sum += s[i]!;
    return sum / (s.length - 2 * cut);
  });
}

/**
 * Sample-weighted coordinate-wise trimmed mean: per coordinate, the holders' values are sorted and
 * β of their total weight is cut from each end (a holder straddling a cut keeps the part inside);
 * the rest is averaged by weight. With β = 0 it is FedAvg's masked mean; unlike the unweighted trim
 * it does not throw away honest holders wholesale when only a few hold a coordinate (h = 6,
 * β = 0.34 keeps two values of six), and it keeps FedAvg's sample weighting, which matters on
 * non-IID data. Weights are the updates' sample counts, capped at `weightCap` × the round's median
 * count, so a client cannot buy influence by claiming samples. β ≥ 0.5 leaves nothing: the weighted
 * median is returned then.
 */
export function maskedWeightedTrimmedMean(global: WeightSet, updates: readonly ClientUpdate[], beta: number, minHolders = 1, weightCap = 2): MaskedResult {
  const cap = weightCap * medianOfSorted(sortedCopy(Float64Array.from(updates, (u) => u.numSamples)));
  const capped = updates.map((u) => (u.numSamples > cap ? { ...u, numSamples: cap } : u));
  return reduceAll(global, capped, minHolders, (v, w) => weightedTrimmed(v, w, beta));
}

/** Exported for tests: the weighted trimmed mean of one coordinate's holders. */
export function weightedTrimmed(values: ArrayLike<number>, weights: ArrayLike<number>, beta: number): number {
  const order = Array.from({ length: values.length }, (_, i) => i).sort((a, b) => values[a]! - values[b]!);
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i]!;
  const cut = beta * total;
  if (total - 2 * cut <= 1e-12 * total) {
    // Nothing would be left: the weighted median (lower one on an exact tie of halves).
    let acc = 0;
    for (const i of order) {
      acc += weights[i]!;
      if (acc >= total / 2) return values[i]!;
    }
    return values[order[order.length - 1]!]!;
  }
  let lo = 0; // cumulative weight below the current holder
  let sum = 0;
  let kept = 0;
  for (const i of order) {
    const w = weights[i]!;
    const from = Math.max(lo, cut);
    const to = Math.min(lo + w, total - cut);
    if (to > from) {
      sum += values[i]! * (to - from);
      kept += to - from;
    }
    lo += w;
  }
  return sum / kept;
}
