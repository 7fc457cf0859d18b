import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { adaptImages, adaptSplits, batchCount, batchIndices, batches, channelStats, forEachBatch, makeBatch, normalizeInPlace, type ImageSet } from '../src/data/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function randomSet(count: number, shape: [number, number, number], classes: number, seed = 1): ImageSet {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const x = Float32Array.from({ length: count * shape[0] * shape[1] * shape[2] }, rand);
  const y = Int32Array.from({ length: count }, (_, i) => i % classes);
  return { x, y, count, shape, numClasses: classes, classNames: Array.from({ length: classes }, (_, c) => String(c)) };
}

describe('adaptImages', () => {
  it('grey → RGB repeats the channel; RGB → grey is BT.601 luminance', () => {
    const grey = randomSet(5, [3, 4, 1], 2);
    const rgb = adaptImages(grey, [3, 4, 3]);
    expect(rgb.shape).toEqual([3, 4, 3]);
    for (let p = 0; p < grey.x.length; p++) {
      for (let c = 0; c < 3; c++) expect(rgb.x[p * 3 + c]).toBe(grey.x[p]);
    }
    const colour = randomSet(4, [2, 2, 3], 2, 9);
    const back = adaptImages(colour, [2, 2, 1]);
    for (let p = 0; p < back.x.length; p++) {
      const want = 0.299 * colour.x[p * 3]! + 0.587 * colour.x[p * 3 + 1]! + 0.114 * colour.x[p * 3 + 2]!;
      expect(back.x[p]).toBeCloseTo(want, 5);
    }
    expect(adaptImages(grey, [3, 4, 1])).toBe(grey);
  });

  it('resizes bilinearly in batches, matching one big resize, and leaks no tensors', () => {
    const set = randomSet(37, [28, 28, 1], 10);
    const before = tf.memory().numTensors;
    const out = adaptImages(set, [32, 32, 3], { batchSize: 8 });
    expect(tf.memory().numTensors).toBe(before);
    expect(out.shape).toEqual([32, 32, 3]);
    expect(out.count).toBe(37);
    expect(out.y).toBe(set.y);
    const ref = tf.tidy(() => tf.tile(tf.image.resizeBilinear(tf.tensor4d(set.x, [37, 28, 28, 1]), [32, 32], false, true), [1, 1, 1, 3]).dataSync());
    let maxDiff = 0;
    for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - out.x[i]!));
    expect(maxDiff).toBeLessThan(1e-6);
    // a constant image stays constant after resizing
    const flat: ImageSet = { ...set, count: 1, x: new Float32Array(784).fill(0.25), y: null };
    expect(new Set(adaptImages(flat, [14, 14, 1]).x)).toEqual(new Set([0.25]));
  });

  it('adaptSplits adapts every split and keeps a missing validation missing', () => {
    const d = { name: 't', train: randomSet(3, [4, 4, 1], 2), validation: null, test: randomSet(2, [4, 4, 1], 2) };
    const out = adaptSplits(d, [6, 6, 3]);
    expect([out.train.shape, out.test.shape]).toEqual([[6, 6, 3], [6, 6, 3]]);
    expect([out.train.x.length, out.test.x.length]).toEqual([3 * 108, 2 * 108]);
    expect(out.validation).toBeNull();
  });

  it('rejects impossible channel changes', () => {
    const two = { ...randomSet(1, [2, 2, 1], 1), shape: [2, 1, 2] as [number, number, number] };
    expect(() => adaptImages(two, [2, 1, 3])).toThrow(expect.objectContaining({ code: 'EDGEKT_ERR_DATA_FORMAT' }));
  });

  it('channelStats + normalizeInPlace give zero mean, unit std per channel', () => {
    const set = randomSet(20, [4, 4, 3], 2);
    normalizeInPlace(set, channelStats(set).mean, channelStats(set).std);
    const { mean, std } = channelStats(set);
    mean.forEach((m) => expect(Math.abs(m)).toBeLessThan(1e-5));
    std.forEach((s) => expect(s).toBeCloseTo(1, 4));
  });
});

describe('batches', () => {
  it('yields one-hot float32 ys and int labels that match the samples, covering an epoch once', () => {
    const set = randomSet(23, [2, 2, 1], 4);
    const seen: number[] = [];
    let n = 0;
    for (const b of batches(set, { batchSize: 5, shuffle: true, seed: 3 })) {
      expect(b.xs.shape).toEqual([b.indices.length, 2, 2, 1]);
      expect(b.ys!.shape).toEqual([b.indices.length, 4]);
      expect(b.ys!.dtype).toBe('float32');
      const xs = b.xs.dataSync();
      const ys = b.ys!.arraySync();
      b.indices.forEach((i, j) => {
        expect(Array.from(xs.subarray(j * 4, j * 4 + 4))).toEqual(Array.from(set.x.subarray(i * 4, i * 4 + 4)));
        expect(ys[j]).toEqual([0, 1, 2, 3].map((c) => (c === set.y![i] ? 1 : 0)));
        expect(b.labels![j]).toBe(set.y![i]);
        seen.push(i);
      });
      b.xs.dispose();
      b.ys!.dispose();
      n++;
    }
    expect(n).toBe(batchCount(23, 5));
    expect(seen.slice().sort((a, b) => a - b)).toEqual(Array.from({ length: 23 }, (_, i) => i));
    expect(seen).not.toEqual(Array.from({ length: 23 }, (_, i) => i));
  });

  it('drop, indices, oneHot:false and seeds behave', () => {
    const set = randomSet(23, [2, 2, 1], 4);
    const sizes = [...batches(set, { batchSize: 5, drop: true, oneHot: false })].map((b) => {
      expect(b.ys).toBeNull();
      b.xs.dispose();
      return b.indices.length;
    });
    expect(sizes).toEqual([5, 5, 5, 5]);
    const order = (seed: number) =>
      [...batches(set, { batchSize: 4, shuffle: true, seed, indices: [1, 3, 5, 7, 9, 11] })].flatMap((b) => {
        tf.dispose([b.xs, b.ys!]);
        return Array.from(b.indices);
      });
    expect(order(1)).toEqual(order(1));
    expect(order(1).sort((a, b) => a - b)).toEqual([1, 3, 5, 7, 9, 11]);
    expect(() => [...batches(set, { batchSize: 0 })]).toThrow(expect.objectContaining({ code: 'EDGEKT_ERR_USAGE' }));
  });

  it('makeBatch copies samples by index with float32 class ids; batchIndices splits an order', () => {
    const set = randomSet(23, [2, 2, 1], 4);
    const b = makeBatch(set, [5, 0, 22]);
    expect(b.x.shape).toEqual([3, 2, 2, 1]);
    expect(Array.from(b.x.dataSync().subarray(8, 12))).toEqual(Array.from(set.x.subarray(88, 92)));
    expect(b.y!.dtype).toBe('float32');
    expect(Array.from(b.y!.dataSync())).toEqual([set.y![5], set.y![0], set.y![22]]);
    tf.dispose([b.x, b.y!]);
    const unlabeled = makeBatch({ ...set, y: null }, [1]);
    expect(unlabeled.y).toBeNull();
    unlabeled.x.dispose();
    expect(() => makeBatch(set, [23])).toThrow(expect.objectContaining({ code: 'EDGEKT_ERR_USAGE' }));
    expect(batchIndices([4, 3, 2, 1, 0], 2).map((a) => Array.from(a))).toEqual([[4, 3], [2, 1], [0]]);
    expect(batchIndices([4, 3, 2, 1, 0], 2, true)).toHaveLength(2);
  });

  it('forEachBatch over a full epoch leaks no tensors, even when the callback throws', async () => {
    const set = randomSet(200, [8, 8, 1], 10);
    const before = tf.memory().numTensors;
    let total = 0;
    await forEachBatch(set, { batchSize: 32, shuffle: true, seed: 1 }, async (b) => {
      total += tf.tidy(() => tf.sum(tf.mul(b.ys!, tf.softmax(tf.reshape(b.xs, [b.indices.length, -1]).slice([0, 0], [-1, 10])))).dataSync()[0]!);
    });
    expect(total).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
    await expect(
      forEachBatch(set, { batchSize: 32 }, (_, i) => {
        if (i === 2) throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a real training epoch with trainOnBatch leaks no tensors', async () => {
    const set = randomSet(96, [6, 6, 1], 3);
    const model = tf.sequential({
      layers: [tf.layers.conv2d({ inputShape: [6, 6, 1], filters: 2, kernelSize: 3 }), tf.layers.flatten(), tf.layers.dense({ units: 3, activation: 'softmax' })],
    });
    model.compile({ optimizer: tf.train.adam(1e-2), loss: 'categoricalCrossentropy' });
    const epoch = (seed: number) => forEachBatch(set, { batchSize: 16, shuffle: true, seed }, async (b) => {
      await model.trainOnBatch(b.xs, b.ys!);
    });
    await epoch(0); // creates optimizer slots
    const before = tf.memory().numTensors;
    await epoch(1);
    await epoch(2);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
