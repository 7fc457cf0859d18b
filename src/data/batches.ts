import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../core/errors.js';
import { shuffledIndices } from './split.js';
import type { ImageSet } from './types.js';

export interface BatchOptions {
  batchSize: number;
  /** Visit samples in a seeded random order (default false: dataset order). */
  shuffle?: boolean;
  /** Seed for the shuffle; pass e.g. baseSeed + epoch to get a new order every epoch (default 0). */
  seed?: number;
  /** Materialise `ys` as a one-hot float32 tensor (default true); false leaves `ys` null. */
  oneHot?: boolean;
  /** Drop the last incomplete batch (default false). */
  drop?: boolean;
  /** Only iterate these samples (e.g. one client's partition). */
  indices?: ArrayLike<number>;
}

/**
 * One mini-batch. `ys` is one-hot float32 [n, numClasses] (what tfjs categorical cross-entropy
 * wants), or null for unlabeled data or `oneHot: false`; `labels` always carries the int class ids
 * as a plain array (no tensor) for sparse losses and accuracy.
 */
export interface Batch {
  xs: tf.Tensor4D;
  ys: tf.Tensor2D | null;
  labels: Int32Array | null;
  /** Dataset indices of the samples in this batch. */
  indices: Int32Array;
}

/**
 * Lazily yields batches; each batch's tensors belong to the caller, who must dispose them
 * (or use forEachBatch). Tensors are built straight from typed arrays: no intermediate tensors.
 */
export function* batches(set: ImageSet, opts: BatchOptions): Generator<Batch, void, undefined> {
  const { batchSize } = opts;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new EdgektError('EDGEKT_ERR_USAGE', `batchSize must be an integer >= 1, got ${batchSize}`);
  let order: Int32Array = opts.indices ? Int32Array.from(opts.indices) : identity(set.count);
  if (opts.shuffle) {
    const perm = shuffledIndices(order.length, opts.seed ?? 0);
    order = perm.map((k) => order[k]!);
  }
  const k = set.numClasses;
  const oneHot = opts.oneHot !== false && set.y !== null;
  for (const idx of batchIndices(order, batchSize, opts.drop)) {
    const n = idx.length;
    const { x, labels } = gather(set, idx);
    let ys: tf.Tensor2D | null = null;
    if (oneHot && labels) {
      const y = new Float32Array(n * k);
      for (let j = 0; j < n; j++) y[j * k + labels[j]!] = 1;
      ys = tf.tensor2d(y, [n, k]);
    }
    yield { xs: tf.tensor4d(x, [n, ...set.shape]), ys, labels, indices: idx };
  }
}

/**
 * A batch with sparse labels: float32 class ids [n] (what the distillation losses take), or null
 * for unlabeled data. The caller disposes both tensors.
 */
export interface SparseBatch {
  x: tf.Tensor4D;
  y: tf.Tensor1D | null;
}

/**
 * Copies the given samples out of a set into a sparse-label batch. Random access by index lets a
 * resumed training run start in the middle of an epoch's order, which the generator cannot.
 */
export function makeBatch(set: ImageSet, indices: ArrayLike<number>): SparseBatch {
  const { x, labels } = gather(set, indices);
  return { x: tf.tensor4d(x, [indices.length, ...set.shape]), y: labels ? tf.tensor1d(Float32Array.from(labels)) : null };
}

/** Splits an ordering of sample indices into consecutive batches (the last may be smaller, or dropped). */
export function batchIndices(order: ArrayLike<number>, batchSize: number, drop = false): Int32Array[] {
  const out: Int32Array[] = [];
  for (let s = 0; s < order.length; s += batchSize) {
    const n = Math.min(batchSize, order.length - s);
    if (n < batchSize && drop) break;
    out.push(Int32Array.from({ length: n }, (_, k) => order[s + k]!));
  }
  return out;
}

/** Runs fn on every batch and disposes the batch's tensors afterwards, even when fn throws. */
export async function forEachBatch(
  set: ImageSet,
  opts: BatchOptions,
  fn: (batch: Batch, index: number) => void | Promise<void>,
): Promise<void> {
  let i = 0;
  for (const b of batches(set, opts)) {
    try {
      await fn(b, i++);
    } finally {
      b.xs.dispose();
      b.ys?.dispose();
    }
  }
}

/** Number of batches an epoch yields with these options. */
export function batchCount(count: number, batchSize: number, drop = false): number {
  return drop ? Math.floor(count / batchSize) : Math.ceil(count / batchSize);
}

/** The given samples' pixels and labels as plain arrays (no tensors), e.g. to post to a worker. */
export function gather(set: ImageSet, indices: ArrayLike<number>): { x: Float32Array; labels: Int32Array | null } {
  const [h, w, c] = set.shape;
  const size = h * w * c;
  const n = indices.length;
  const x = new Float32Array(n * size);
  const labels = set.y ? new Int32Array(n) : null;
  for (let j = 0; j < n; j++) {
    const i = indices[j]!;
    if (!(i >= 0 && i < set.count)) throw new EdgektError('EDGEKT_ERR_USAGE', `batch index ${i} outside 0..${set.count - 1}`);
    x.set(set.x.subarray(i * size, (i + 1) * size), j * size);
    if (labels) labels[j] = set.y![i]!;
  }
  return { x, labels };
}

function identity(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}
