import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../core/errors.js';
import type { ImageSet } from '../data/types.js';

/**
 * Top-1 accuracy of a classifier on a labeled set, in contiguous batches (softmax or logits output
 * both fine). The one accuracy of edgekt: the pipeline, the teacher cache and the benchmarks all
 * report this figure, so their numbers compare.
 */
export function evaluateAccuracy(model: tf.LayersModel, set: ImageSet, batchSize = 256): number {
  if (!set.y) throw new EdgektError('EDGEKT_ERR_USAGE', 'accuracy needs labeled data');
  const [h, w, c] = set.shape;
  const per = h * w * c;
  let correct = 0;
  for (let s = 0; s < set.count; s += batchSize) {
    const n = Math.min(batchSize, set.count - s);
    const pred = tf.tidy(() => {
      const x = tf.tensor4d(set.x.subarray(s * per, (s + n) * per), [n, h, w, c]);
      return tf.argMax(model.predict(x) as tf.Tensor, -1).dataSync();
    });
    for (let k = 0; k < n; k++) if (pred[k] === set.y[s + k]) correct++;
  }
  return correct / set.count;
}
