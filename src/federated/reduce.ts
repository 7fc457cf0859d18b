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

function medianOf(sorted: Float64Array): number {
  const h = sorted.length;
  const mid = h >> 1;
  return h % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Unweighted coordinate-wise median over holders (even count: mean of the two middle values).
 * Unweighted on purpose: a robust aggregate must not let one client buy influence by claiming samples.
 */
export function maskedMedian(global: WeightSet, updates: readonly ClientUpdate[], minHolders = 1): MaskedResult {
  return reduceAll(global, updates, minHolders, (v) => medianOf(sortedCopy(v)));
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
    if (cut === 0 && beta > 0) return medianOf(s);
    let sum = 0;
    for (let i = cut; i < s.length - cut; i++) sum += s[i]!;
    return sum / (s.length - 2 * cut);
  });
}
