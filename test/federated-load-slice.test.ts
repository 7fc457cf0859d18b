import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import type { ImageSet } from '../src/data/types.js';
import { tensor, type IndexMap } from '../src/federated/index.js';
import { weightSetFromModel } from '../src/federated/tfjs-weights.js';
import { loadGlobalSlice } from '../src/jobs/round-trainer.js';

// A device model of 2 channels (global channels 1 and 3 of 4) followed by BatchNorm, and 4 images
// of 1×1×2 pixels: the statistics after loading can be computed by hand.
function deviceModel(): tf.LayersModel {
  const input = tf.input({ shape: [1, 1, 2] });
  const out = tf.layers.batchNormalization({ name: 'bn' }).apply(input) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}
const data: ImageSet = { x: Float32Array.from([1, 10, 3, 10, 5, 20, 7, 20]), y: Int32Array.from([0, 1, 0, 1]), count: 4, shape: [1, 1, 2], numClasses: 2, classNames: ['a', 'b'] };
const global = {
  'bn/gamma': tensor([4], [9, 2, 9, 3]),
  'bn/beta': tensor([4], [9, 0.5, 9, 0.25]),
  'bn/moving_mean': tensor([4], [100, 100, 100, 100]),
  'bn/moving_variance': tensor([4], [50, 50, 50, 50]),
};
const map: IndexMap = { 'bn/gamma': [[1, 3]], 'bn/beta': [[1, 3]], 'bn/moving_mean': [[1, 3]], 'bn/moving_variance': [[1, 3]] };

describe('loadGlobalSlice: a device model from the global', () => {
  it('loads its slice, then replaces the (global, stale) BatchNorm statistics with local ones', () => {
    const m = deviceModel();
    loadGlobalSlice(m, global, map, data);
    const w = weightSetFromModel(m);
    expect(Array.from(w['bn/gamma']!.values)).toEqual([2, 3]);
    expect(Array.from(w['bn/beta']!.values)).toEqual([0.5, 0.25]);
    // channel 0: 1, 3, 5, 7 → mean 4, variance (9+1+1+9)/4 = 5; channel 1: 10, 10, 20, 20 → mean 15, variance 25
    expect(Array.from(w['bn/moving_mean']!.values)).toEqual([4, 15]);
    expect(Array.from(w['bn/moving_variance']!.values).map((v) => Math.round(v * 1e4) / 1e4)).toEqual([5, 25]);
    m.dispose();
  });

  it('without data keeps the global statistics of its channels', () => {
    const m = deviceModel();
    loadGlobalSlice(m, global, map);
    const w = weightSetFromModel(m);
    expect(Array.from(w['bn/moving_mean']!.values)).toEqual([100, 100]);
    expect(Array.from(w['bn/moving_variance']!.values)).toEqual([50, 50]);
    m.dispose();
  });
});
