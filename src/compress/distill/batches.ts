import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../../data/types.js';

/** One materialised batch; the caller disposes both tensors. */
export interface Batch {
  x: tf.Tensor4D;
  y: tf.Tensor1D | null;
}

/** Copies the given sample indices out of a flat ImageSet into a batch (labels as float32 class ids). */
export function makeBatch(set: ImageSet, indices: ArrayLike<number>): Batch {
  const [h, w, c] = set.shape;
  const per = h * w * c;
  const n = indices.length;
  const x = new Float32Array(n * per);
  const y = set.y ? new Float32Array(n) : null;
  for (let k = 0; k < n; k++) {
    const i = indices[k]!;
    x.set(set.x.subarray(i * per, (i + 1) * per), k * per);
    if (y && set.y) y[k] = set.y[i]!;
  }
  return { x: tf.tensor4d(x, [n, h, w, c]), y: y ? tf.tensor1d(y) : null };
}

/** Splits an ordering of sample indices into consecutive batches (the last may be smaller). */
export function batchIndices(order: ArrayLike<number>, batchSize: number): Int32Array[] {
  const out: Int32Array[] = [];
  for (let s = 0; s < order.length; s += batchSize) out.push(Int32Array.from({ length: Math.min(batchSize, order.length - s) }, (_, k) => order[s + k]!));
  return out;
}
