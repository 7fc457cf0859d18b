import * as tf from '@tensorflow/tfjs';
import { patchLayerCall } from './patch-layer.js';

/**
 * A shorter training path for tfjs-layers' BatchNormalization (channels-last, normalised over every
 * axis but the last). tfjs composes the layer from `moments` + `batchNorm`, and autodiff then runs
 * the gradients of both: about twenty full-size elementwise kernels per layer. Here the layer's
 * training output is one `tf.customGrad` op whose backward pass is the closed form
 *
 *   x̂ = (x − μ)/σ,  dβ = Σ dy,  dγ = Σ dy·x̂,  dx = γ/σ · (dy − dβ/N − x̂·dγ/N)
 *
 * (N = elements per channel), seven full-size kernels. Inference, other axes and layers without
 * center/scale keep tfjs's own code. Moving statistics are updated exactly as tfjs does.
 */

interface BnLayer {
  axis: number;
  epsilon: number;
  momentum: number;
  center: boolean;
  scale: boolean;
  gamma: tf.LayerVariable;
  beta: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

type Call = (this: BnLayer, inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>) => tf.Tensor | tf.Tensor[];

const MARK = Symbol.for('edgekt.fast-batch-norm');
let enabled = true;

/** Turns the fast path on or off (tests compare both); returns the previous setting. */
export function setFastBatchNorm(on: boolean): boolean {
  const old = enabled;
  enabled = on;
  return old;
}

/**
 * Training-mode batch norm over axes 0..rank-2 with the closed-form gradient. Returns the output and
 * the batch mean and (biased) variance, which the caller owns and must dispose.
 */
export function batchNormTraining(
  x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number,
): { y: tf.Tensor; mean: tf.Tensor1D; variance: tf.Tensor1D } {
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  const n = x.size / x.shape[x.rank - 1]!;
  let mean: tf.Tensor1D | null = null;
  let variance: tf.Tensor1D | null = null;
  const op = tf.customGrad((xi, g, b, save) => {
    const xt = xi as tf.Tensor;
    const m = tf.moments(xt, axes);
    mean = tf.keep(m.mean as tf.Tensor1D);
    variance = tf.keep(m.variance as tf.Tensor1D);
    const invStd = tf.rsqrt(tf.add(m.variance, epsilon));
    (save as tf.GradSaveFunc)([xt, m.mean, invStd, g as tf.Tensor]);
    const value = tf.batchNorm(xt, m.mean, m.variance, b as tf.Tensor1D, g as tf.Tensor1D, epsilon);
    return {
      value,
      gradFunc: (dy, saved) => {
        const [sx, sm, si, sg] = saved as [tf.Tensor, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
        const d = dy as tf.Tensor;
        const xhat = tf.mul(tf.sub(sx, sm), si);
        const dBeta = tf.sum(d, axes);
        const dGamma = tf.sum(tf.mul(d, xhat), axes);
        const centred = tf.sub(d, tf.div(dBeta, n));
        const dx = tf.mul(tf.sub(centred, tf.mul(xhat, tf.div(dGamma, n))), tf.mul(sg, si));
        return [dx, dGamma, dBeta];
      },
    };
  });
  const y = op(x, gamma, beta) as tf.Tensor;
  return { y, mean: mean!, variance: variance! };
}

/** Installs the fast path on tfjs-layers' BatchNormalization class (idempotent). */
export function installFastBatchNorm(): void {
  patchLayerCall<Call>(tf.layers.batchNormalization({}), MARK, (original) => function (this: BnLayer, inputs, kwargs) {
    const input = Array.isArray(inputs) ? inputs[0]! : inputs;
    const axis = this.axis >= 0 ? this.axis : this.axis + input.rank;
    if (!enabled || !kwargs['training'] || axis !== input.rank - 1 || !this.center || !this.scale || Array.isArray(inputs) && inputs.length !== 1) {
      return original.call(this, inputs, kwargs);
    }
    return tf.tidy(() => {
      const { y, mean, variance } = batchNormTraining(input, this.gamma.read() as tf.Tensor1D, this.beta.read() as tf.Tensor1D, this.epsilon);
      const decay = 1 - this.momentum;
      // As tfjs-layers: moving ← moving − (moving − batch)·(1 − momentum).
      for (const [v, value] of [[this.movingMean, mean], [this.movingVariance, variance]] as const) {
        tf.tidy(() => {
          const old = v.read();
          v.write(tf.sub(old, tf.mul(tf.sub(old, value), decay)));
        });
      }
      tf.dispose([mean, variance]);
      return y;
    });
  });
}
