import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../../src/data/types.js';

/** A 527-parameter base for real round training: two convs, global pooling, a softmax head (seeded). */
export function tinyRoundBase(): tf.LayersModel {
  const m = tf.sequential({ name: 'fedbase' });
  m.add(tf.layers.conv2d({ name: 'c1', inputShape: [8, 8, 1], filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.add(tf.layers.conv2d({ name: 'c2', filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  m.add(tf.layers.globalAveragePooling2d({ name: 'gap' }));
  m.add(tf.layers.dense({ name: 'head', units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }));
  return m;
}

/** The base's model.json as the coordinator hands it to devices: topology only. */
export function topologyJson(m: tf.LayersModel): Record<string, unknown> {
  return { format: 'layers-model', modelTopology: m.toJSON(null, false), weightsManifest: [] };
}

/** 32 labelled 8×8 images: class k lights the k-th third of the rows (learnable; `seed` varies the noise). */
export function roundData(seed = 7): ImageSet {
  const n = 32;
  const x = new Float32Array(n * 64);
  const y = new Int32Array(n);
  let s = seed;
  const rnd = (): number => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let p = 0; p < 64; p++) x[i * 64 + p] = 0.2 * rnd() + (Math.floor(p / 8 / 3) === y[i] ? 0.8 : 0);
  }
  return { x, y, count: n, shape: [8, 8, 1], numClasses: 3, classNames: ['a', 'b', 'c'] };
}
