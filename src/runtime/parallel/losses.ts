import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../../core/errors.js';
import type { LossName } from './protocol.js';

/**
 * Losses are named (not passed as functions) so they can cross into worker threads. Each is a
 * mean over the samples of a batch, which is what lets shard gradients be averaged by shard size.
 * Integer labels (class indices) are one-hot encoded to the prediction's width.
 */
export function computeLoss(name: LossName, yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const width = yPred.shape[yPred.shape.length - 1] ?? 1;
    const target = yTrue.dtype === 'int32' && yTrue.rank === 1 ? tf.oneHot(yTrue as tf.Tensor1D, width).toFloat() : yTrue;
    switch (name) {
      case 'softmax-ce':
        return tf.losses.softmaxCrossEntropy(target, yPred) as tf.Scalar;
      case 'categorical-ce':
        return tf.metrics.categoricalCrossentropy(target, yPred).mean() as tf.Scalar;
      case 'mse':
        return tf.losses.meanSquaredError(target, yPred) as tf.Scalar;
      default:
        throw new EdgektError('EDGEKT_ERR_USAGE', `unknown loss "${String(name)}"`);
    }
  });
}

export function createOptimizer(spec: { kind: string; lr: number; beta1?: number; beta2?: number; epsilon?: number }): tf.Optimizer {
  if (spec.kind === 'adam') return tf.train.adam(spec.lr, spec.beta1, spec.beta2, spec.epsilon);
  if (spec.kind === 'sgd') return tf.train.sgd(spec.lr);
  throw new EdgektError('EDGEKT_ERR_USAGE', `unknown optimizer "${spec.kind}"`);
}
