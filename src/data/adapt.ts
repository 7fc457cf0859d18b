import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../core/errors.js';
import type { DatasetSplits, ImageSet } from './types.js';

export interface AdaptOptions {
  /** Images resized per tidy() call; bounds peak tensor memory (default 256). */
  batchSize?: number;
}

/** ITU-R BT.601 luma weights, the usual RGB → grey conversion. */
const LUMA = [0.299, 0.587, 0.114] as const;

/**
 * Returns the set at a model's input shape [H, W, C]: bilinear resize (half-pixel centres) and
 * grey → RGB (channel repeated) or RGB → grey (luminance). Returns the same object when nothing
 * changes. Works in batches inside tidy(), so it leaves no tensors behind.
 */
export function adaptImages(set: ImageSet, target: [number, number, number], opts: AdaptOptions = {}): ImageSet {
  const [h, w, c] = set.shape;
  const [th, tw, tc] = target;
  if (![th, tw, tc].every((v) => Number.isInteger(v) && v >= 1)) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `target shape must be positive integers, got [${target.join(', ')}]`);
  }
  const channelsOk = c === tc || (c === 1 && tc === 3) || (c === 3 && tc === 1);
  if (!channelsOk) throw new EdgektError('EDGEKT_ERR_DATA_FORMAT', `cannot adapt ${c}-channel images to ${tc} channels`);
  if (h === th && w === tw && c === tc) return set;
  const batch = Math.max(1, opts.batchSize ?? 256);
  const inSize = h * w * c;
  const outSize = th * tw * tc;
  const x = new Float32Array(set.count * outSize);
  for (let start = 0; start < set.count; start += batch) {
    const n = Math.min(batch, set.count - start);
    const out = tf.tidy(() => {
      let t: tf.Tensor4D = tf.tensor4d(set.x.subarray(start * inSize, (start + n) * inSize), [n, h, w, c]);
      if (h !== th || w !== tw) t = tf.image.resizeBilinear(t, [th, tw], false, true);
      if (c === 1 && tc === 3) t = tf.tile(t, [1, 1, 1, 3]);
      else if (c === 3 && tc === 1) t = tf.sum(tf.mul(t, tf.tensor1d(LUMA.slice())), -1, true);
      return t;
    });
    // Read outside tidy: tidy walks a returned typed array element by element looking for tensors.
    x.set(out.dataSync() as Float32Array, start * outSize);
    out.dispose();
  }
  return { ...set, x, shape: [th, tw, tc] };
}

/** adaptImages on every split of a dataset (e.g. Fashion-MNIST 28x28x1 for a 32x32x3 model). */
export function adaptSplits(d: DatasetSplits, target: [number, number, number], opts: AdaptOptions = {}): DatasetSplits {
  return {
    name: d.name,
    train: adaptImages(d.train, target, opts),
    validation: d.validation ? adaptImages(d.validation, target, opts) : null,
    test: adaptImages(d.test, target, opts),
  };
}

/** Per-channel mean and standard deviation, e.g. to build a `{mean, std}` normalisation from training data. */
export function channelStats(set: ImageSet): { mean: number[]; std: number[] } {
  const c = set.shape[2];
  const sum = new Float64Array(c);
  const sq = new Float64Array(c);
  for (let i = 0; i < set.x.length; i++) {
    const v = set.x[i]!;
    const ch = i % c;
    sum[ch] = sum[ch]! + v;
    sq[ch] = sq[ch]! + v * v;
  }
  const n = set.x.length / c;
  const mean = Array.from(sum, (s) => s / n);
  const std = Array.from(sq, (s, ch) => Math.sqrt(Math.max(0, s / n - mean[ch]! ** 2)));
  return { mean, std };
}
