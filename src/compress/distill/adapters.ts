import * as tf from '@tensorflow/tfjs';
import { createRng } from '../../core/random.js';

/**
 * A FitNets regressor: a 1×1 convolution (with bias) from the student's channel count to the
 * teacher's, so a thin student feature can be compared with a wide teacher feature. It exists only
 * during training and is thrown away with the distiller.
 */
export interface HintAdapter {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernel: tf.Variable<tf.Rank.R4>;
  readonly bias: tf.Variable<tf.Rank.R1>;
  apply(studentFeature: tf.Tensor4D): tf.Tensor4D;
  dispose(): void;
}

/** Glorot-uniform kernel from a seeded rng (reproducible across runs), zero bias. */
export function createHintAdapter(inChannels: number, outChannels: number, seed: number, name = 'hint_adapter'): HintAdapter {
  const rng = createRng(seed);
  const limit = Math.sqrt(6 / (inChannels + outChannels));
  const values = new Float32Array(inChannels * outChannels);
  for (let i = 0; i < values.length; i++) values[i] = (rng() * 2 - 1) * limit;
  // tidy frees the initial values; the variables themselves survive it.
  const kernel = tf.tidy(() => tf.variable(tf.tensor4d(values, [1, 1, inChannels, outChannels]), true, `${name}_kernel_${seed}_${uid++}`));
  const bias = tf.tidy(() => tf.variable(tf.zeros([outChannels]), true, `${name}_bias_${seed}_${uid++}`) as tf.Variable<tf.Rank.R1>);
  return {
    inChannels,
    outChannels,
    kernel,
    bias,
    apply: (x) => tf.tidy(() => tf.add(tf.conv2d(x, kernel, 1, 'same'), bias)),
    dispose: () => {
      kernel.dispose();
      bias.dispose();
    },
  };
}

let uid = 0;
