import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { foldBatchNorm } from '../src/compress/pipeline/fold-bn.js';
import { lighten } from '../src/compress/lighten/index.js';
import { buildReferenceTeacher } from '../src/model/reference-teacher.js';
import { initBackend } from '../src/runtime/backend.js';

function randomiseBn(model: tf.LayersModel, seed: number): void {
  for (const l of model.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const ws = l.getWeights();
    l.setWeights(ws.map((w, i) => tf.randomUniform(w.shape, i === 3 ? 0.5 : -0.5, 1.5, 'float32', seed + i)));
  }
}

function residual(): tf.LayersModel {
  const x = tf.input({ shape: [6, 6, 3] });
  const c1 = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', useBias: false }).apply(x) as tf.SymbolicTensor;
  const b1 = tf.layers.batchNormalization().apply(c1) as tf.SymbolicTensor;
  const r1 = tf.layers.activation({ activation: 'relu' }).apply(b1) as tf.SymbolicTensor;
  const d = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same' }).apply(r1) as tf.SymbolicTensor;
  const bd = tf.layers.batchNormalization().apply(d) as tf.SymbolicTensor;
  const sep = tf.layers.separableConv2d({ filters: 8, kernelSize: 3, padding: 'same', depthMultiplier: 2 }).apply(bd) as tf.SymbolicTensor;
  const bs = tf.layers.batchNormalization().apply(sep) as tf.SymbolicTensor;
  const add = tf.layers.add().apply([r1, bs]) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({}).apply(add) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3 }).apply(gap) as tf.SymbolicTensor;
  return tf.model({ inputs: x, outputs: out });
}

function maxDiff(a: tf.LayersModel, b: tf.LayersModel, x: tf.Tensor): number {
  return tf.tidy(() => (a.predict(x) as tf.Tensor).sub(b.predict(x) as tf.Tensor).abs().max().dataSync()[0]!);
}

describe('batch-norm folding', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('folds BN (and fuses ReLU) in a lightened Sequential student without changing outputs', async () => {
    const t = buildReferenceTeacher({ inputShape: [12, 12, 1], widths: [8, 16], denseUnits: 16 });
    const s = (await lighten(t, { widthMultiplier: 0.5 })).student;
    randomiseBn(s, 3);
    const before = tf.memory().numTensors;
    const f = await foldBatchNorm(s);
    expect(tf.memory().numTensors - before).toBe(f.weights.length);
    expect(f.layers.some((l) => l.getClassName() === 'BatchNormalization')).toBe(false);
    expect(f.layers.length).toBeLessThan(s.layers.length);
    const x = tf.randomNormal([3, 12, 12, 1], 0, 1, 'float32', 1);
    expect(maxDiff(s, f, x)).toBeLessThan(1e-4);
    x.dispose();
    [t, s, f].forEach((m) => m.dispose());
  });

  it('removes a ReLU that repeats the fused ReLU before it (what lighten --depth leaves at a stage end)', async () => {
    const t = buildReferenceTeacher({ inputShape: [12, 12, 1], widths: [8, 16], denseUnits: 16 });
    const s = (await lighten(t, { widthMultiplier: 0.5, depth: [1, 1] })).student;
    randomiseBn(s, 5);
    // The last stage keeps conv1 (+BN+ReLU) and the teacher's stage-end ReLU after it.
    const acts = (m: tf.LayersModel) => m.layers.filter((l) => l.getClassName() === 'Activation').map((l) => l.name);
    expect(acts(s)).toContain('s2_relu2');
    const f = await foldBatchNorm(s);
    expect(acts(f)).toEqual([]);
    const x = tf.randomNormal([3, 12, 12, 1], 0, 1, 'float32', 4);
    expect(maxDiff(s, f, x)).toBeLessThan(1e-4);
    x.dispose();
    [t, s, f].forEach((m) => m.dispose());
  });

  it('keeps an activation that is not the identity after its input', async () => {
    const x = tf.input({ shape: [4] });
    const d = tf.layers.dense({ units: 4, activation: 'relu' }).apply(x) as tf.SymbolicTensor;
    const a = tf.layers.activation({ activation: 'relu6' }).apply(d) as tf.SymbolicTensor;
    const b = tf.layers.activation({ activation: 'relu' }).apply(a) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2 }).apply(b) as tf.SymbolicTensor;
    const m = tf.model({ inputs: x, outputs: out });
    const f = await foldBatchNorm(m);
    // relu6 after relu clips at 6: kept; relu after relu6: the identity, removed.
    expect(f.layers.filter((l) => l.getClassName() === 'Activation').map((l) => (l.getConfig() as { activation: string }).activation)).toEqual(['relu6']);
    const xs = tf.mul(tf.randomNormal([5, 4], 0, 1, 'float32', 9), 20);
    expect(maxDiff(m, f, xs)).toBeLessThan(1e-4);
    xs.dispose();
    [m, f].forEach((k) => k.dispose());
  });

  it('folds through depthwise, separable (multiplier 2) and residual wiring', async () => {
    const m = residual();
    randomiseBn(m, 7);
    const f = await foldBatchNorm(m);
    expect(f.layers.filter((l) => l.getClassName() === 'BatchNormalization')).toHaveLength(0);
    const x = tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 2);
    expect(maxDiff(m, f, x)).toBeLessThan(1e-4);
    // A model without BN comes back as an equal copy.
    const g = await foldBatchNorm(f);
    expect(maxDiff(f, g, x)).toBeLessThan(1e-6);
    x.dispose();
    [m, f, g].forEach((k) => k.dispose());
  });
});
