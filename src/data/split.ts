import { EdgektError } from '../core/errors.js';
import { createRng, shuffleInPlace } from '../core/random.js';
import type { ImageSet } from './types.js';

/** 0..n-1 in a seeded random order. */
export function shuffledIndices(n: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  shuffleInPlace(out, createRng(seed));
  return out;
}

export interface SplitOptions {
  seed: number;
  /** Keep each class's share in every part (default true; ignored when labels are null). */
  stratify?: boolean;
}

/**
 * Cuts indices 0..n-1 into parts sized by `fractions` (which must sum to 1). Stratified by default
 * so a small validation split still sees every class. Each part comes back in seeded random order.
 */
export function splitIndices(labels: Int32Array | null, count: number, fractions: number[], opts: SplitOptions): Int32Array[] {
  const sum = fractions.reduce((a, b) => a + b, 0);
  if (fractions.some((f) => !(f >= 0)) || Math.abs(sum - 1) > 1e-6) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `split fractions must be >= 0 and sum to 1, got [${fractions.join(', ')}]`);
  }
  const rng = createRng(opts.seed);
  const groups: number[][] = [];
  if (labels && opts.stratify !== false) {
    const byClass = new Map<number, number[]>();
    for (let i = 0; i < count; i++) {
      const c = labels[i]!;
      let g = byClass.get(c);
      if (!g) byClass.set(c, (g = []));
      g.push(i);
    }
    for (const c of [...byClass.keys()].sort((a, b) => a - b)) groups.push(byClass.get(c)!);
  } else {
    groups.push(Array.from({ length: count }, (_, i) => i));
  }
  const alloc = allocate(groups.map((g) => g.length), fractions, count);
  const parts: number[][] = fractions.map(() => []);
  groups.forEach((g, gi) => {
    shuffleInPlace(g, rng);
    let start = 0;
    alloc[gi]!.forEach((n, p) => {
      for (let k = start; k < start + n; k++) parts[p]!.push(g[k]!);
      start += n;
    });
  });
  return parts.map((p) => {
    const a = Int32Array.from(p);
    shuffleInPlace(a, rng);
    return a;
  });
}

/** A new ImageSet holding copies of the given samples, in the given order. */
export function subset(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const [h, w, c] = set.shape;
  const size = h * w * c;
  const x = new Float32Array(indices.length * size);
  const y = set.y ? new Int32Array(indices.length) : null;
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    if (i < 0 || i >= set.count) throw new EdgektError('EDGEKT_ERR_INTERNAL', `subset index ${i} outside 0..${set.count - 1}`);
    x.set(set.x.subarray(i * size, (i + 1) * size), k * size);
    if (y) y[k] = set.y![i]!;
  }
  return { x, y, count: indices.length, shape: [h, w, c], numClasses: set.numClasses, classNames: set.classNames };
}

/** Splits a set by `fractions` (see splitIndices), e.g. [0.8, 0.1, 0.1] for train/validation/test. */
export function splitSet(set: ImageSet, fractions: number[], opts: SplitOptions): ImageSet[] {
  return splitIndices(set.y, set.count, fractions, opts).map((idx) => subset(set, idx));
}

/** Samples per class (index = class id); unlabeled sets give an empty array. */
export function classCounts(set: ImageSet): number[] {
  const counts = new Array<number>(set.numClasses).fill(0);
  if (!set.y) return [];
  for (let i = 0; i < set.count; i++) {
    const c = set.y[i]!;
    counts[c] = (counts[c] ?? 0) + 1;
  }
  return counts;
}

/**
 * Samples of each group per part: part totals are round(cumulative fraction × count) exactly,
 * and each group's share is floor(fraction × size) plus leftovers by largest remainder, so small
 * stratified splits neither drift from the asked total nor starve a class.
 */
function allocate(sizes: number[], fractions: number[], count: number): number[][] {
  const left = sizes.slice();
  const out = sizes.map(() => new Array<number>(fractions.length).fill(0));
  let acc = 0;
  let prevBound = 0;
  for (let p = 0; p < fractions.length; p++) {
    if (p === fractions.length - 1) {
      left.forEach((n, g) => (out[g]![p] = n));
      break;
    }
    acc += fractions[p]!;
    const bound = Math.round(acc * count);
    let target = bound - prevBound;
    prevBound = bound;
    const want = sizes.map((n, g) => Math.min(left[g]!, fractions[p]! * n));
    const base = want.map(Math.floor);
    base.forEach((n, g) => {
      out[g]![p] = n;
      left[g]! -= n;
      target -= n;
    });
    const order = want.map((w, g) => [w - Math.floor(w), g] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (let k = 0; target > 0 && k < order.length * 2; k++) {
      const g = order[k % order.length]![1];
      if (left[g]! > 0) {
        out[g]![p]! += 1;
        left[g]! -= 1;
        target--;
      }
    }
  }
  return out;
}
