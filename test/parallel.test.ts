import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/runtime/backend.js';
import {
  computeLoss,
  createDataParallelTrainer,
  createOptimizer,
  fromLayersModel,
  shardSizes,
  type DataParallelTrainer,
  type ParallelBatch,
} from '../src/runtime/parallel/index.js';
import { createRng, normal } from '../src/core/random.js';

function batchOf(n: number, inShape: number[], classes: number, seed: number): ParallelBatch {
  const rng = createRng(seed);
  const size = n * inShape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: size }, () => normal(rng));
  const y = Int32Array.from({ length: n }, () => Math.floor(rng() * classes));
  return { x, xShape: [n, ...inShape], y, yShape: [n] };
}

function denseModel(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [6], units: 12, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.dense({ units: 4, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
}

function convModel(withBn: boolean): tf.LayersModel {
  const layers: tf.layers.Layer[] = [
    tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
  ];
  if (withBn) layers.push(tf.layers.batchNormalization({ axis: -1 }));
  layers.push(
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
  );
  return tf.sequential({ layers });
}

/**
 * The single-thread reference: plain tfjs on this thread. With `shards`, gradients are computed per
 * shard and averaged by shard size, and BatchNorm moving statistics are the mean of each shard's
 * update — the documented semantics of the data-parallel trainer for models with BatchNorm.
 */
function referenceSteps(model: tf.LayersModel, batches: ParallelBatch[], shards: number[] | null): { losses: number[]; weights: Float32Array[] } {
  const opt = createOptimizer({ kind: 'adam', lr: 0.01 });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const moving = model.weights.filter((w) => !w.trainable);
  const losses: number[] = [];
  for (const b of batches) {
    const n = b.xShape[0]!;
    const parts = shards ?? [n];
    const before = moving.map((w) => w.read().clone());
    const sums = moving.map((w) => tf.zerosLike(w.read()));
    let start = 0;
    let loss = 0;
    const acc: tf.NamedTensorMap = {};
    for (const size of parts) {
      const { value, grads } = tf.tidy(() => {
        const sx = b.x.length / n;
        const xs = tf.tensor(b.x.slice(start * sx, (start + size) * sx), [size, ...b.xShape.slice(1)]);
        const ys = tf.tensor(b.y.slice(start, start + size) as Int32Array, [size], 'int32');
        return tf.variableGrads(() => computeLoss('softmax-ce', ys, model.apply(xs, { training: true }) as tf.Tensor), vars);
      });
      loss += (size / n) * value.dataSync()[0]!;
      value.dispose();
      for (const v of vars) {
        const g = grads[v.name]!;
        const scaled = tf.mul(g, size / n);
        const prev = acc[v.name];
        acc[v.name] = prev ? tf.add(prev, scaled) : scaled;
        if (prev) prev.dispose();
        if (prev) scaled.dispose();
        g.dispose();
      }
      moving.forEach((w, k) => {
        const s = tf.add(sums[k]!, tf.mul(w.read(), size / n));
        sums[k]!.dispose();
        sums[k] = s;
        w.write(before[k]!.clone());
      });
      start += size;
    }
    tf.tidy(() => moving.forEach((w, k) => w.write(sums[k]!)));
    tf.dispose([...before, ...sums]);
    opt.applyGradients(acc);
    tf.dispose(Object.values(acc));
    losses.push(loss);
  }
  opt.dispose();
  return { losses, weights: model.weights.map((w) => (w.read().dataSync() as Float32Array).slice()) };
}

function maxRelDiff(a: Float32Array[], b: Float32Array[]): number {
  let scale = 0;
  let diff = 0;
  a.forEach((wa, k) => {
    const wb = b[k]!;
    for (let j = 0; j < wa.length; j++) {
      scale = Math.max(scale, Math.abs(wa[j]!));
      diff = Math.max(diff, Math.abs(wa[j]! - wb[j]!));
    }
  });
  return diff / scale;
}

describe('shardSizes', () => {
  it('splits as evenly as possible and never makes empty shards', () => {
    expect(shardSizes(64, 2)).toEqual([32, 32]);
    expect(shardSizes(11, 3)).toEqual([4, 4, 3]);
    expect(shardSizes(2, 4)).toEqual([1, 1]);
  });
});

describe('data-parallel trainer', () => {
  const open: DataParallelTrainer[] = [];
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterAll(async () => {
    await Promise.all(open.map((t) => t.dispose()));
  });

  it('2 workers on wasm match one thread on the full batch (uneven shards)', async () => {
    const model = denseModel();
    const batches = [0, 1, 2, 3].map((s) => batchOf(11, [6], 4, 10 + s));
    const trainer = await createDataParallelTrainer({ workers: 2, ...fromLayersModel(model), optimizer: { kind: 'adam', lr: 0.01 }, loss: 'softmax-ce', backend: 'wasm' });
    open.push(trainer);
    expect(trainer.backend).toBe('wasm');
    const losses: number[] = [];
    for (const b of batches) losses.push((await trainer.step(b)).loss);
    const got = (await trainer.getWeights()).map((w) => w.data);
    const before = tf.memory().numTensors;
    const ref = referenceSteps(model, batches, null);
    expect(tf.memory().numTensors).toBe(before);
    losses.forEach((l, i) => expect(Math.abs(l - ref.losses[i]!) / ref.losses[i]!).toBeLessThan(1e-4));
    expect(losses[3]!).toBeLessThan(losses[0]!);
    expect(maxRelDiff(ref.weights, got)).toBeLessThan(1e-4);
    // The weights really moved, so the comparison above is not trivially between initial weights.
    expect(maxRelDiff(ref.weights, fromLayersModel(denseModel()).weights.map((w) => w.data))).toBeGreaterThan(1e-3);
    expect(await trainer.divergence()).toBe(0);
    model.dispose();
  });

  it('conv + BatchNorm on 3 workers: averaged gradients and moving statistics, workers in lock-step, no leaks', async () => {
    // Conv training on wasm needs the training kernels; until they exist this runs on cpu.
    const backend = tf.getKernel('Conv2DBackpropFilter', 'wasm') ? 'wasm' : 'cpu';
    await initBackend(backend);
    const model = convModel(true);
    const batches = [0, 1, 2, 3, 4].map((s) => batchOf(8, [6, 6, 2], 3, 20 + s));
    const trainer = await createDataParallelTrainer({ workers: 3, ...fromLayersModel(model), optimizer: { kind: 'adam', lr: 0.01 }, loss: 'softmax-ce', backend });
    open.push(trainer);
    const counts: number[][] = [];
    const losses: number[] = [];
    for (const b of batches) {
      losses.push((await trainer.step(b)).loss);
      counts.push(trainer.workerTensorCounts());
    }
    expect(counts[4]).toEqual(counts[1]);
    expect(await trainer.divergence()).toBe(0);
    const got = await trainer.getWeights();
    const ref = referenceSteps(model, batches, shardSizes(8, 3));
    losses.forEach((l, i) => expect(Math.abs(l - ref.losses[i]!) / ref.losses[i]!).toBeLessThan(1e-4));
    expect(maxRelDiff(ref.weights, got.map((w) => w.data))).toBeLessThan(1e-4);
    const movingMean = got.find((w) => w.name.includes('moving_mean'))!;
    expect(movingMean.trainable).toBe(false);
    expect(Math.max(...movingMean.data.map(Math.abs))).toBeGreaterThan(0);
    model.dispose();
    await initBackend('wasm');
  });

  it('rejects a bad model with a stable code and refuses use after dispose', async () => {
    await expect(
      createDataParallelTrainer({ workers: 1, modelJson: { class_name: 'NoSuchModel', config: {} }, weights: [], optimizer: { kind: 'adam', lr: 1e-3 }, loss: 'mse', backend: 'wasm' }),
    ).rejects.toMatchObject({ code: 'EDGEKT_ERR_WORKER' });
    await expect(
      createDataParallelTrainer({ workers: 0, modelJson: {}, weights: [], optimizer: { kind: 'adam', lr: 1e-3 }, loss: 'mse' }),
    ).rejects.toMatchObject({ code: 'EDGEKT_ERR_USAGE' });
    const model = denseModel();
    const trainer = await createDataParallelTrainer({ workers: 2, ...fromLayersModel(model), optimizer: { kind: 'sgd', lr: 0.1 }, loss: 'softmax-ce', backend: 'wasm' });
    const b = batchOf(4, [6], 4, 1);
    await expect(trainer.step({ ...b, yShape: [3] })).rejects.toMatchObject({ code: 'EDGEKT_ERR_USAGE' });
    await trainer.step(b);
    await trainer.dispose();
    await expect(trainer.step(b)).rejects.toMatchObject({ code: 'EDGEKT_ERR_WORKER' });
    model.dispose();
  });

  it('fails a step whose worker does not answer in time, instead of hanging', async () => {
    const model = convModel(false);
    const trainer = await createDataParallelTrainer({ workers: 1, ...fromLayersModel(model), optimizer: { kind: 'adam', lr: 1e-3 }, loss: 'softmax-ce', backend: 'cpu', stepTimeoutMs: 5 });
    try {
      // A first cpu-backend step on 512 samples takes far longer than 5 ms.
      await expect(trainer.step(batchOf(512, [6, 6, 2], 3, 5))).rejects.toMatchObject({ code: 'EDGEKT_ERR_WORKER' });
      await expect(trainer.step(batchOf(2, [6, 6, 2], 3, 5))).rejects.toMatchObject({ code: 'EDGEKT_ERR_WORKER' });
    } finally {
      await trainer.dispose();
      model.dispose();
    }
  });
});
