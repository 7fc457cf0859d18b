import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/runtime/backend.js';
import { createRng, normal } from '../src/core/random.js';

// Every layer kind the pipeline uses trains on wasm (no "Kernel ... not registered") and its
// weight gradients match the cpu backend: rel err = max|wasm − cpu| / max(max|cpu|, 1e-6) ≤ 1e-4.
const TOL = 1e-4;
const INPUT: [number, number, number] = [9, 7, 3];
const BATCH = 3;
const CLASSES = 3;

type Body = (x: tf.SymbolicTensor, seed: () => number) => tf.SymbolicTensor;

const init = (seed: () => number) => tf.initializers.glorotUniform({ seed: seed() });
const conv = (filters: number, seed: () => number, extra: Partial<Parameters<typeof tf.layers.conv2d>[0]> = {}) =>
  tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', kernelInitializer: init(seed), ...extra });

type Head = 'gap' | 'flatten';

const BODIES: [string, Body, Head?][] = [
  ['Conv2D same + relu', (x, s) => conv(4, s, { activation: 'relu' }).apply(x) as tf.SymbolicTensor],
  ['Conv2D stride 2 valid 5x5', (x, s) => conv(4, s, { strides: 2, padding: 'valid', kernelSize: 5 }).apply(x) as tf.SymbolicTensor],
  ['DepthwiseConv2D multiplier 2, stride 2', (x, s) => tf.layers.depthwiseConv2d({
    kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same', depthwiseInitializer: init(s),
  }).apply(conv(4, s).apply(x)) as tf.SymbolicTensor],
  ['SeparableConv2D', (x, s) => tf.layers.separableConv2d({
    filters: 5, kernelSize: 3, padding: 'same', activation: 'relu', depthwiseInitializer: init(s), pointwiseInitializer: init(s),
  }).apply(x) as tf.SymbolicTensor],
  ['BatchNormalization', (x, s) => tf.layers.batchNormalization({}).apply(conv(4, s, { useBias: false }).apply(x)) as tf.SymbolicTensor],
  ['MaxPooling2D', (x, s) => tf.layers.maxPooling2d({ poolSize: 2 }).apply(conv(4, s).apply(x)) as tf.SymbolicTensor],
  ['MaxPooling2D 3x3 stride 2 same', (x, s) => tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }).apply(conv(4, s).apply(x)) as tf.SymbolicTensor],
  ['AveragePooling2D', (x, s) => tf.layers.averagePooling2d({ poolSize: 2, padding: 'same' }).apply(conv(4, s).apply(x)) as tf.SymbolicTensor],
  ['ReLU6', (x, s) => tf.layers.activation({ activation: 'relu6' }).apply(conv(4, s).apply(x)) as tf.SymbolicTensor],
  ['LeakyReLU', (x, s) => tf.layers.leakyReLU({ alpha: 0.1 }).apply(conv(4, s).apply(x)) as tf.SymbolicTensor],
  ['Dropout', (x, s) => tf.layers.dropout({ rate: 0.3, seed: 11 }).apply(conv(4, s).apply(x)) as tf.SymbolicTensor],
  ['Add (residual)', (x, s) => {
    const a = conv(4, s, { activation: 'relu' }).apply(x) as tf.SymbolicTensor;
    const b = conv(4, s).apply(a) as tf.SymbolicTensor;
    return tf.layers.add().apply([a, b]) as tf.SymbolicTensor;
  }],
  ['Flatten + Dense head (VGG-style)', (x, s) => tf.layers.dense({ units: 6, activation: 'relu', kernelInitializer: init(s) })
    .apply(tf.layers.flatten().apply(conv(4, s, { activation: 'relu' }).apply(x))) as tf.SymbolicTensor, 'flatten'],
];

function build(body: Body, head: Head = 'gap'): tf.LayersModel {
  let next = 100;
  const seed = (): number => next++;
  const input = tf.input({ shape: INPUT });
  const h = body(input, seed);
  const pooled = head === 'gap' ? (tf.layers.globalAveragePooling2d({}).apply(h) as tf.SymbolicTensor) : h;
  const out = tf.layers.dense({ units: CLASSES, kernelInitializer: init(seed) }).apply(pooled) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

function data(): { x: number[]; labels: number[] } {
  const rng = createRng(5);
  const x = Array.from({ length: BATCH * INPUT[0] * INPUT[1] * INPUT[2] }, () => normal(rng));
  return { x, labels: Array.from({ length: BATCH }, (_, i) => i % CLASSES) };
}

async function weightGrads(backend: string, body: Body, head?: Head): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const model = build(body, head);
  const { x, labels } = data();
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const out = tf.tidy(() => {
    const xt = tf.tensor4d(x, [BATCH, ...INPUT]);
    const yt = tf.oneHot(tf.tensor1d(labels, 'int32'), CLASSES);
    const { grads } = tf.variableGrads(
      () => tf.losses.softmaxCrossEntropy(yt, model.apply(xt, { training: true }) as tf.Tensor) as tf.Scalar, vars);
    return vars.map((v) => grads[v.name]!.dataSync() as Float32Array);
  });
  model.dispose();
  return out;
}

describe('layers train on wasm with cpu-equal gradients', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it.each(BODIES)('%s', async (_name, body, head) => {
    const ref = await weightGrads('cpu', body, head);
    const got = await weightGrads('wasm', body, head);
    expect(got.length).toBe(ref.length);
    for (let i = 0; i < ref.length; i++) {
      const a = got[i]!;
      const b = ref[i]!;
      let diff = 0;
      let scale = 1e-6;
      for (let j = 0; j < b.length; j++) {
        diff = Math.max(diff, Math.abs(a[j]! - b[j]!));
        scale = Math.max(scale, Math.abs(b[j]!));
      }
      expect(diff / scale, `weight ${i}`).toBeLessThanOrEqual(TOL);
    }
  });
});
