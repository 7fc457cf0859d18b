import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/runtime/backend.js';
import { buildRefTrainCnn, type RefTrainCnnVariant } from '../src/bench/ref-train-cnn.js';
import { createRng, normal } from '../src/core/random.js';

// The cpu backend's convolution gradients are very slow, so the loss-curve comparison uses a
// reduced input (12x12x3) and batch 4; the architecture is otherwise ref-train-cnn's.
const SHAPE: [number, number, number] = [12, 12, 3];
const BATCH = 4;

function batch(seed: number): { x: number[]; labels: number[] } {
  const rng = createRng(seed);
  return {
    x: Array.from({ length: BATCH * SHAPE[0] * SHAPE[1] * SHAPE[2] }, () => normal(rng)),
    labels: Array.from({ length: BATCH }, () => Math.floor(rng() * 10)),
  };
}

function trainer(variant: RefTrainCnnVariant, seed: number) {
  const model = buildRefTrainCnn(variant, { seed, inputShape: SHAPE });
  const opt = tf.train.adam(1e-3);
  const { x, labels } = batch(seed + 1);
  const xt = tf.tensor4d(x, [BATCH, ...SHAPE]);
  const yt = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat());
  return {
    step(): number {
      const loss = opt.minimize(
        () => tf.losses.softmaxCrossEntropy(yt, model.apply(xt, { training: true }) as tf.Tensor) as tf.Scalar, true);
      const v = loss!.dataSync()[0]!;
      loss!.dispose();
      return v;
    },
    dispose(): void {
      tf.dispose([xt, yt]);
      opt.dispose();
      model.dispose();
    },
  };
}

async function lossCurve(backend: string, variant: RefTrainCnnVariant, steps: number): Promise<number[]> {
  await tf.setBackend(backend);
  const t = trainer(variant, 3);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    losses.push(t.step());
    // Yield between the synchronous steps (seconds each on cpu) so the worker answers vitest's RPC.
    await new Promise((r) => setImmediate(r));
  }
  t.dispose();
  return losses;
}

describe('ref-train-cnn', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('matches the PyTorch anchor layer for layer (parameter counts, output shape)', async () => {
    await tf.setBackend('wasm');
    const std = buildRefTrainCnn('standard');
    const sep = buildRefTrainCnn('separable');
    // torch: 896 + 64 (BN) + 18496 + 73856 + 1290; Keras keeps BN's moving stats as 64 more.
    expect(std.countParams()).toBe(896 + 128 + 18496 + 73856 + 1290);
    // Keras SeparableConv2D has one bias (after the pointwise conv), torch's Sequential has two.
    expect(sep.countParams()).toBe(896 + 128 + (288 + 2048 + 64) + (576 + 8192 + 128) + 1290);
    expect(std.outputs[0]!.shape).toEqual([null, 10]);
    const again = buildRefTrainCnn('standard');
    expect(again.getWeights()[0]!.dataSync()).toEqual(std.getWeights()[0]!.dataSync());
    [std, sep, again].forEach((m) => m.dispose());
  });

  it.each(['standard', 'separable'] as const)('%s: Adam steps on wasm follow the cpu loss curve', async (variant) => {
    const steps = 4;
    const cpu = await lossCurve('cpu', variant, steps);
    const wasm = await lossCurve('wasm', variant, steps);
    if (process.env['EDGEKT_TEST_VERBOSE']) process.stderr.write(`${variant} cpu ${cpu.join(' ')}\n${variant} wasm ${wasm.join(' ')}\n`);
    for (let i = 0; i < steps; i++) expect(Math.abs(wasm[i]! - cpu[i]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, cpu[i]!));
    expect(wasm[steps - 1]!).toBeLessThan(wasm[0]!);
  });

  it.each(['standard', 'separable'] as const)('%s: 100 training steps on wasm leak no tensors', async (variant) => {
    await tf.setBackend('wasm');
    const t = trainer(variant, 9);
    t.step(); // creates Adam's slot variables
    const tensors = tf.memory().numTensors;
    const dataIds = tf.engine().backend.numDataIds();
    for (let i = 0; i < 100; i++) t.step();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(dataIds);
    t.dispose();
  });
});
