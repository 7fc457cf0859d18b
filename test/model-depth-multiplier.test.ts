import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, saveModel } from '../src/model/index.js';

describe('save/load keeps depth multipliers', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-dm-'));
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('DepthwiseConv2D and SeparableConv2D with depthMultiplier 2 reload with equal outputs', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.depthwiseConv2d({ inputShape: [8, 8, 3], kernelSize: 3, depthMultiplier: 2, padding: 'same' }),
        tf.layers.separableConv2d({ kernelSize: 3, filters: 4, depthMultiplier: 2, padding: 'same' }),
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: 3 }),
      ],
    });
    await saveModel(model, dir);
    const loaded = await loadModel(dir);
    const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 7);
    const a = model.predict(x) as tf.Tensor;
    const b = loaded.model.predict(x) as tf.Tensor;
    expect(b.shape).toEqual(a.shape);
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-6);
    tf.dispose([x, a, b]);
    model.dispose();
    loaded.model.dispose();
  });
});
