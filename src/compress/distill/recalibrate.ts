import * as tf from '@tensorflow/tfjs';
import { shuffledIndices } from '../../data/split.js';
import type { ImageSet } from '../../data/types.js';
import { batchIndices, makeBatch } from '../../data/batches.js';

export interface RecalibrateOptions {
  /** Batches of training data to average over. Default 20. */
  batches?: number;
  batchSize?: number;
  seed?: number;
}

/**
 * "Precise BN": replaces every BatchNormalization layer's moving mean/variance with the population
 * statistics of its input over a few training batches. tfjs's moving averages (momentum 0.99) need
 * hundreds of steps to forget their initial values, so a student trained briefly on the device (or
 * fine-tuned after pruning surgery) would otherwise be evaluated with stale statistics.
 * Returns how many layers were updated.
 */
export function recalibrateBatchNorm(model: tf.LayersModel, data: ImageSet, options: RecalibrateOptions = {}): number {
  const bns = model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
  if (bns.length === 0 || data.count === 0) return 0;
  const batchSize = options.batchSize ?? 64;
  const want = Math.min(data.count, (options.batches ?? 20) * batchSize);
  const order = shuffledIndices(data.count, options.seed ?? 0).subarray(0, want);
  const probe = tf.model({ inputs: model.inputs, outputs: bns.map((l) => l.input as tf.SymbolicTensor) });
  const sums = bns.map(() => ({ mean: null as Float64Array | null, sq: null as Float64Array | null, n: 0 }));
  for (const idx of batchIndices(order, batchSize)) {
    const batch = makeBatch(data, idx);
    tf.tidy(() => {
      const out = probe.apply(batch.x, { training: true });
      const outs = (Array.isArray(out) ? out : [out]) as tf.Tensor[];
      outs.forEach((t, i) => {
        const axes = Array.from({ length: t.rank - 1 }, (_, k) => k);
        const m = tf.mean(t, axes).dataSync();
        const q = tf.mean(tf.square(t), axes).dataSync();
        const rows = t.size / m.length;
        const s = sums[i]!;
        s.mean ??= new Float64Array(m.length);
        s.sq ??= new Float64Array(m.length);
        for (let c = 0; c < m.length; c++) {
          s.mean[c]! += m[c]! * rows;
          s.sq[c]! += q[c]! * rows;
        }
        s.n += rows;
      });
    });
    tf.dispose([batch.x, ...(batch.y ? [batch.y] : [])]);
  }
  bns.forEach((layer, i) => {
    const s = sums[i]!;
    if (!s.mean || !s.sq || s.n === 0) return;
    const mean = Float32Array.from(s.mean, (v) => v / s.n);
    const variance = Float32Array.from(s.sq, (v, c) => Math.max(0, v / s.n - mean[c]! ** 2));
    for (const w of layer.weights) {
      if (w.name.includes('moving_mean')) tf.tidy(() => void w.write(tf.tensor1d(mean)));
      else if (w.name.includes('moving_variance')) tf.tidy(() => void w.write(tf.tensor1d(variance)));
    }
  });
  return bns.length;
}
