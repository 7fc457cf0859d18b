import * as tf from '@tensorflow/tfjs';
import { createRng } from '../core/random.js';
import { EdgektError } from '../core/errors.js';

/**
 * Training augmentation for small images: per sample, a random horizontal flip and a random shift
 * of up to ±maxShift pixels in each direction, the uncovered border filled with zeros (the
 * background of Fashion-MNIST-like data). Label-preserving for clothing, which is left–right
 * symmetric as a class; it is what lets a longer teacher run keep improving instead of overfitting.
 */
export interface AugmentOptions {
  /** Seeds the draws; the same seed gives the same batch. */
  seed: number;
  /** Largest shift in pixels along each axis. Default 2. */
  maxShift?: number;
  /** Probability of a horizontal flip. Default 0.5. */
  flipProbability?: number;
}

export const AUGMENT_DEFAULTS = { maxShift: 2, flipProbability: 0.5 };

/**
 * Augments a batch of NHWC images held in a plain array. Pure: returns a new array and leaves `x`
 * untouched; creates no tensors. Used where batches travel as arrays (the data-parallel trainer
 * augments the whole batch before slicing it into shards, so results do not depend on the workers).
 */
export function augmentImages(x: Float32Array, shape: readonly [number, number, number, number], o: AugmentOptions): Float32Array {
  const [n, h, w, c] = shape;
  const size = h * w * c;
  if (x.length !== n * size) throw new EdgektError('EDGEKT_ERR_USAGE', `augment: ${x.length} values do not fill a [${shape.join(', ')}] batch`);
  const maxShift = o.maxShift ?? AUGMENT_DEFAULTS.maxShift;
  const pFlip = o.flipProbability ?? AUGMENT_DEFAULTS.flipProbability;
  if (!(Number.isInteger(maxShift) && maxShift >= 0)) throw new EdgektError('EDGEKT_ERR_USAGE', `augment: maxShift must be an integer >= 0, got ${maxShift}`);
  const rng = createRng(o.seed);
  const span = 2 * maxShift + 1;
  const out = new Float32Array(x.length);
  for (let s = 0; s < n; s++) {
    const flip = rng() < pFlip;
    const dy = Math.floor(rng() * span) - maxShift;
    const dx = Math.floor(rng() * span) - maxShift;
    const base = s * size;
    // out[y][x] = in[y - dy][x' - dx], x' = flipped column; outside the image: 0 (already).
    for (let y = 0; y < h; y++) {
      const sy = y - dy;
      if (sy < 0 || sy >= h) continue;
      for (let xo = 0; xo < w; xo++) {
        const shifted = xo - dx;
        if (shifted < 0 || shifted >= w) continue;
        const sx = flip ? w - 1 - shifted : shifted;
        const from = base + (sy * w + sx) * c;
        const to = base + (y * w + xo) * c;
        for (let k = 0; k < c; k++) out[to + k] = x[from + k]!;
      }
    }
  }
  return out;
}

/**
 * The same augmentation on a tensor batch: returns one new tensor (the caller owns it) and leaves
 * no other tensor behind; `x` is not disposed.
 */
export function augmentBatch(x: tf.Tensor4D, o: AugmentOptions): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  return tf.tensor4d(augmentImages(x.dataSync() as Float32Array, [n, h, w, c], o), x.shape, 'float32');
}

/** Seed of step `step`'s augmentation in a run seeded `seed`: distinct per step, the same on any worker count. */
export function augmentSeedAt(seed: number, step: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0;
}
