import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { installFastBatchNorm, setFastBatchNorm } from '../src/runtime/fast-batch-norm.js';
import { initBackend } from '../src/runtime/backend.js';
import { relErr } from './helpers/rel-err.js';

// The fast training path of BatchNormalization against tfjs-layers' own, on the same weights.
function model(seed: number): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [6, 5, 3], filters: 4, kernelSize: 3, padding: 'same', kernelInitializer: tf.initializers.glorotNormal({ seed }) }));
  m.add(tf.layers.batchNormalization({ momentum: 0.9 }));
  m.add(tf.layers.activation({ activation: 'relu' }));
  m.add(tf.layers.globalAveragePooling2d({}));
  m.add(tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotNormal({ seed: seed + 1 }) }));
  return m;
}

interface Run {
  loss: number;
  grads: Float32Array[];
  movingMean: Float32Array;
  movingVariance: Float32Array;
}

function run(fast: boolean): Run {
  const old = setFastBatchNorm(fast);
  try {
    const m = model(7);
    // Non-trivial gamma/beta so their gradients matter.
    const bn = m.layers[1]!;
    bn.setWeights([tf.tensor1d([1.5, 0.5, -1, 2]), tf.tensor1d([0.1, -0.2, 0.3, 0]), ...bn.getWeights().slice(2)]);
    const x = tf.randomNormal([5, 6, 5, 3], 0.3, 2, 'float32', 3);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 1, 0], 'int32'), 3);
    const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, m.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, vars);
    const out: Run = {
      loss: value.dataSync()[0]!,
      grads: vars.map((v) => grads[v.name]!.dataSync() as Float32Array),
      movingMean: bn.getWeights()[2]!.dataSync() as Float32Array,
      movingVariance: bn.getWeights()[3]!.dataSync() as Float32Array,
    };
    tf.dispose([x, y, value, ...Object.values(grads)]);
    m.dispose();
    return out;
  } finally {
    setFastBatchNorm(old);
  }
}

describe.each(['cpu', 'wasm'] as const)('fast BatchNormalization training path (%s)', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
    installFastBatchNorm();
  });

  it('gives tfjs-layers\' loss, gradients of every weight, and moving statistics', () => {
    const ref = run(false);
    const got = run(true);
    expect(got.loss).toBeCloseTo(ref.loss, 5);
    expect(got.grads).toHaveLength(ref.grads.length);
    // The conv bias (weight 1) feeds a BatchNorm: its true gradient is 0, both sides give rounding
    // noise. Compare it against the scale of the kernel's gradient instead.
    const scale = Math.max(...Array.from(ref.grads[0]!, Math.abs));
    got.grads.forEach((g, i) => {
      if (i === 1) g.forEach((v, k) => expect(Math.abs(v - ref.grads[1]![k]!) / scale).toBeLessThan(1e-5));
      else expect(relErr(g, ref.grads[i]!), `weight ${i}`).toBeLessThan(1e-4);
    });
    expect(relErr(got.movingMean, ref.movingMean)).toBeLessThan(1e-5);
    expect(relErr(got.movingVariance, ref.movingVariance)).toBeLessThan(1e-5);
  });

  it('is what training uses once installed, leaves inference alone, and leaks no tensors', () => {
    const m = model(1);
    const x = tf.randomNormal([4, 6, 5, 3], 0, 1, 'float32', 2);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 1], 'int32'), 3);
    const opt = tf.train.adam(1e-2);
    const step = (): void => {
      opt.minimize(() => tf.losses.softmaxCrossEntropy(y, m.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, false);
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    // Inference uses the moving statistics: different from the batch-statistics output.
    const inf = tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync());
    const train = tf.tidy(() => (m.apply(x, { training: true }) as tf.Tensor).dataSync());
    expect(relErr(inf as Float32Array, train as Float32Array)).toBeGreaterThan(1e-3);
    tf.dispose([x, y]);
    opt.dispose();
    m.dispose();
  });
});
