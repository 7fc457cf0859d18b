import * as tf from '@tensorflow/tfjs';
import { normal, type Rng } from '../../core/random.js';
import { HINT_LOSSES, type HintLoss } from '../../config/job-spec.js';

/**
 * The loss terms of multi-level knowledge transfer, as pure functions on tensors. Each one runs in
 * its own `tidy` and returns a scalar, so callers can combine them inside `optimizer.minimize`.
 */

/**
 * Brings a teacher feature map to the student's spatial size so a hint can compare them. Average
 * pooling when the size ratio is an integer (keeps the mean activation), bilinear resize otherwise.
 */
export function matchSpatial(feature: tf.Tensor4D, height: number, width: number): tf.Tensor4D {
  const [, h, w] = feature.shape;
  if (h === height && w === width) return feature;
  return tf.tidy(() => {
    if (h % height === 0 && w % width === 0 && h >= height && w >= width) {
      return tf.avgPool(feature, [h / height, w / width], [h / height, w / width], 'valid');
    }
    return tf.image.resizeBilinear(feature, [height, width]);
  });
}

/**
 * How a hint compares the student's feature with the teacher's:
 * - `mse` (FitNets, Romero et al. 2015): mean squared error of the adapted student feature;
 * - `cosine`: 1 − cosine similarity of the channel vectors at each position, adapted student vs
 *   teacher, averaged; blind to the features' scale, which differs across a large capacity gap;
 * - `attention` (attention transfer, Zagoruyko & Komodakis 2017): squared distance of the
 *   L2-normalised spatial attention maps (channel mean of the squared activations) of the raw
 *   student and teacher features, summed over positions; needs no adapter.
 */
export type HintLossKind = HintLoss;
/** The job spec's list (config/job-spec.ts), so the spec and the trainer cannot disagree. */
export const HINT_LOSS_KINDS: readonly HintLossKind[] = HINT_LOSSES;

/** Both maps at the smaller of their two spatial sizes. */
function sameSpatial(a: tf.Tensor4D, b: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
  const [, ah, aw] = a.shape;
  const [, bh, bw] = b.shape;
  if (ah * aw > bh * bw) return [matchSpatial(a, bh, bw), b];
  if (ah !== bh || aw !== bw) return [a, matchSpatial(b, ah, aw)];
  return [a, b];
}

/**
 * FitNets hint: mean squared error between the adapted student feature and the teacher feature,
 * averaged over every element. When the spatial sizes differ, the larger map is average-pooled (or
 * resized) to the smaller one before comparing.
 */
export function hintLoss(adaptedStudent: tf.Tensor4D, teacher: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const [s, t] = sameSpatial(adaptedStudent, teacher);
    return tf.mean(tf.squaredDifference(s, t)) as tf.Scalar;
  });
}

/** `cosine` hint (HintLossKind): mean over samples and positions of 1 − cos(student channels, teacher channels). */
export function cosineHintLoss(adaptedStudent: tf.Tensor4D, teacher: tf.Tensor4D, eps = 1e-6): tf.Scalar {
  return tf.tidy(() => {
    const [s, t] = sameSpatial(adaptedStudent, teacher);
    const dot = tf.sum(tf.mul(s, t), -1);
    return tf.mean(tf.sub(1, tf.div(dot, tf.mul(smoothNorm(s, eps), smoothNorm(t, eps))))) as tf.Scalar;
  });
}

/**
 * √(Σx² + eps) along `axis`: an L2 norm whose gradient stays finite at the zero vector (tf.norm's is
 * 0/0 there, and a position where every channel is 0 after a ReLU is common).
 */
function smoothNorm(x: tf.Tensor, eps: number, axis = -1, keepDims = false): tf.Tensor {
  return tf.sqrt(tf.add(tf.sum(tf.square(x), axis, keepDims), eps));
}

/** Spatial attention map of a feature: channel mean of the squared activations, flattened and L2-normalised per sample. */
export function attentionMap(feature: tf.Tensor4D, eps = 1e-6): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, h, w] = feature.shape;
    const a = tf.reshape(tf.mean(tf.square(feature), -1), [n, h * w]);
    return tf.div(a, smoothNorm(a, eps, -1, true)) as tf.Tensor2D;
  });
}

/** `attention` hint (HintLossKind): ‖A(student) − A(teacher)‖² per sample, averaged over the batch; any channel counts. */
export function attentionHintLoss(student: tf.Tensor4D, teacher: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const [s, t] = sameSpatial(student, teacher);
    return tf.mean(tf.sum(tf.squaredDifference(attentionMap(s), attentionMap(t)), -1)) as tf.Scalar;
  });
}

/**
 * Hinton's logits distillation: KL(softmax(t/T) ‖ softmax(s/T)) summed over classes, averaged over
 * the batch, times T² so its gradients keep the scale of the hard-label loss as T grows.
 */
export function kdLoss(studentLogits: tf.Tensor2D, teacherLogits: tf.Tensor2D, temperature: number): tf.Scalar {
  return tf.tidy(() => {
    const logPt = tf.logSoftmax(tf.div(teacherLogits, temperature));
    const logPs = tf.logSoftmax(tf.div(studentLogits, temperature));
    const kl = tf.sum(tf.mul(tf.exp(logPt), tf.sub(logPt, logPs)), -1);
    return tf.mul(tf.mean(kl), temperature * temperature) as tf.Scalar;
  });
}

/** Softmax cross-entropy against integer class labels, averaged over the batch. */
export function crossEntropyLoss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const numClasses = logits.shape[1];
    const oneHot = tf.oneHot(tf.cast(labels, 'int32'), numClasses);
    return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), -1))) as tf.Scalar;
  });
}

export interface NoisyTeacherOptions {
  /** Standard deviation σ of the multiplicative noise. 0 disables it. */
  sigma: number;
  /** Fraction α of the batch's rows that get noise (round(α·n) rows, chosen at random). */
  fraction: number;
  /** Seeded source for the row choice and ε; the same rng state gives the same noise. */
  rng: Rng;
}

/**
 * The noisy teacher of Sau & Balasubramanian (2016): logits × (1 + σ·ε), ε ~ N(0,1) elementwise,
 * on a random fraction α of the batch; the other rows are left clean. Acts as a regulariser that
 * simulates several teachers. Returns the input tensor itself (not a copy) when noise is off.
 */
export function noisyTeacherLogits(logits: tf.Tensor2D, options: NoisyTeacherOptions): tf.Tensor2D {
  const [n, k] = logits.shape;
  const factor = noisyTeacherFactors(n, k, options);
  if (!factor) return logits;
  return tf.tidy(() => tf.mul(logits, tf.tensor2d(factor, [n, k])));
}

/**
 * The multipliers (1 + σ·ε) of noisyTeacherLogits for an n×k batch, row-major, or null when the
 * noise is off. Drawn once per batch, they can be sliced by rows for data-parallel shards, so the
 * noise does not depend on how the batch is split.
 */
export function noisyTeacherFactors(n: number, k: number, options: NoisyTeacherOptions): Float32Array | null {
  const rows = Math.round(Math.min(1, Math.max(0, options.fraction)) * n);
  if (options.sigma === 0 || rows === 0) return null;
  const factor = new Float32Array(n * k).fill(1);
  for (const r of pickRows(n, rows, options.rng)) {
    for (let j = 0; j < k; j++) factor[r * k + j] = 1 + options.sigma * normal(options.rng);
  }
  return factor;
}

/** Chooses `count` distinct row indices out of n (partial Fisher–Yates), ascending. */
export function pickRows(n: number, count: number, rng: Rng): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(rng() * (n - i));
    const t = idx[i]!;
    idx[i] = idx[j]!;
    idx[j] = t;
  }
  return idx.slice(0, count).sort((a, b) => a - b);
}

/** Each term of the objective, as plain numbers once read back (for progress and history). */
export interface LossParts {
  total: number;
  /** One value per hint level, in hint order (empty when there are no hints in this phase). */
  hints: number[];
  kd: number | null;
  ce: number | null;
  /** FedProx's μ/2·‖w − w₀‖², when the trainer has a proximal anchor. */
  proximal?: number;
}

export interface LossWeights {
  /** One weight per hint level. */
  hints: number[];
  kd: number;
  ce: number;
}

export interface LossTerms {
  hints: tf.Scalar[];
  kd: tf.Scalar | null;
  ce: tf.Scalar | null;
}

/** Weighted sum of whichever terms are present: Σ wᵢ·hintᵢ + w_kd·KD + w_ce·CE. */
export function weightedLoss(terms: LossTerms, weights: LossWeights): tf.Scalar {
  return tf.tidy(() => {
    let total: tf.Scalar = tf.scalar(0);
    terms.hints.forEach((h, i) => {
      total = tf.add(total, tf.mul(h, weights.hints[i] ?? 0));
    });
    if (terms.kd) total = tf.add(total, tf.mul(terms.kd, weights.kd));
    if (terms.ce) total = tf.add(total, tf.mul(terms.ce, weights.ce));
    return total;
  });
}
