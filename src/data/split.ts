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
  const parts: number[][] = fractions.map(() => []);
  for (const g of groups) {
    shuffleInPlace(g, rng);
    let acc = 0;
    let start = 0;
    fractions.forEach((f, p) => {
      acc += f;
      const end = p === fractions.length - 1 ? g.length : Math.round(acc * g.length);
      for (let k = start; k < end; k++) parts[p]!.push(g[k]!);
      start = end;
    });
  }
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
