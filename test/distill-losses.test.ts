import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  attentionHintLoss,
  attentionMap,
  cosineHintLoss,
  createHintAdapter,
  crossEntropyLoss,
  hintLoss,
  kdLoss,
  noisyTeacherLogits,
  pickRows,
  weightedLoss,
} from '../src/compress/distill/index.js';
import { createRng, normal } from '../src/core/random.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const softmax = (v: number[], T = 1): number[] => {
  const m = Math.max(...v.map((x) => x / T));
  const e = v.map((x) => Math.exp(x / T - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
};

const value = (t: tf.Scalar): number => {
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
};

describe('cosine and attention hints', () => {
  it('cosine: 1 − cos of the channel vectors at each position, averaged', () => {
    // Two positions (1×2), two channels: [1,0]·[1,0] → cos 1; [1,1]·[1,-1] → cos 0.
    const s = tf.tensor4d([1, 0, 1, 1], [1, 1, 2, 2]);
    const t = tf.tensor4d([3, 0, 2, -2], [1, 1, 2, 2]);
    expect(value(cosineHintLoss(s, t))).toBeCloseTo(((1 - 1) + (1 - 0)) / 2, 5);
    // Scale-blind: the student ×10 gives the same loss.
    const s10 = tf.mul(s, 10) as tf.Tensor4D;
    expect(value(cosineHintLoss(s10, t))).toBeCloseTo(0.5, 5);
    tf.dispose([s, t, s10]);
  });

  it('attention map: channel mean of squares, L2-normalised per sample', () => {
    // Positions (1×2): channels [1, 1] → mean square 1; [2, 0] → 2. Normalised: [1, 2] / √5.
    const f = tf.tensor4d([1, 1, 2, 0], [1, 1, 2, 2]);
    const a = attentionMap(f);
    expect(a.shape).toEqual([1, 2]);
    const v = Array.from(a.dataSync());
    expect(v[0]).toBeCloseTo(1 / Math.sqrt(5), 5);
    expect(v[1]).toBeCloseTo(2 / Math.sqrt(5), 5);
    tf.dispose([f, a]);
  });

  it('attention: squared distance of the maps, with any channel counts, 0 for proportional features', () => {
    // Student 1 channel, teacher 2: maps [1, 0] (student: squares 1, 0) vs teacher [0, 1] (squares 0, then 1, 1 → mean 1).
    const s = tf.tensor4d([1, 0], [1, 1, 2, 1]);
    const t = tf.tensor4d([0, 0, 1, 1], [1, 1, 2, 2]);
    expect(value(attentionHintLoss(s, t))).toBeCloseTo(2, 5);
    const t2 = tf.tensor4d([3, 3, 0, 0], [1, 1, 2, 2]);
    expect(value(attentionHintLoss(s, t2))).toBeCloseTo(0, 5);
    tf.dispose([s, t, t2]);
  });
});

describe('hint loss', () => {
  it('is the mean squared error over every element', () => {
    const s = tf.tensor4d([1, 2, -1, 0.5], [1, 1, 2, 2]);
    const t = tf.tensor4d([3, 5, 0, 0.5], [1, 1, 2, 2]);
    const expected = ((1 - 3) ** 2 + (2 - 5) ** 2 + (-1 - 0) ** 2 + 0) / 4;
    expect(value(hintLoss(s, t))).toBeCloseTo(expected, 6);
    tf.dispose([s, t]);
  });

  it('average-pools the larger map to the smaller one when resolutions differ', () => {
    const teacher = tf.tensor4d([1, 2, 3, 4, 10, 20, 30, 40], [1, 2, 2, 2]); // channels interleaved
    const student = tf.tensor4d([0, 1], [1, 1, 1, 2]);
    const meanC0 = (1 + 3 + 10 + 30) / 4;
    const meanC1 = (2 + 4 + 20 + 40) / 4;
    const expected = ((0 - meanC0) ** 2 + (1 - meanC1) ** 2) / 2;
    expect(value(hintLoss(student, teacher))).toBeCloseTo(expected, 5);
    expect(value(hintLoss(teacher, student))).toBeCloseTo(expected, 5);
    tf.dispose([teacher, student]);
  });
});

describe('logits KD', () => {
  it('equals KL(softmax(t/T) || softmax(s/T)) * T^2, averaged over the batch', () => {
    const sRows = [[1, 2, 3], [0.5, -1, 0]];
    const tRows = [[3, 1, 0], [0, 0, 2]];
    const T = 2;
    const perRow = sRows.map((s, i) => {
      const p = softmax(tRows[i]!, T);
      const q = softmax(s, T);
      return p.reduce((acc, pk, k) => acc + pk * Math.log(pk / q[k]!), 0);
    });
    const expected = ((perRow[0]! + perRow[1]!) / 2) * T * T;
    const s = tf.tensor2d(sRows);
    const t = tf.tensor2d(tRows);
    expect(value(kdLoss(s, t, T))).toBeCloseTo(expected, 5);
    expect(value(kdLoss(t, t, T))).toBeCloseTo(0, 6);
    tf.dispose([s, t]);
  });
});

describe('cross-entropy', () => {
  it('is the mean negative log-softmax of the true class', () => {
    const rows = [[1, 2, 3], [0, 0, 0]];
    const labels = [2, 0];
    const expected = -(Math.log(softmax(rows[0]!)[2]!) + Math.log(softmax(rows[1]!)[0]!)) / 2;
    const logits = tf.tensor2d(rows);
    const y = tf.tensor1d(labels);
    expect(value(crossEntropyLoss(logits, y))).toBeCloseTo(expected, 5);
    tf.dispose([logits, y]);
  });
});

describe('noisy teacher', () => {
  const rows = [[1, 2, 3], [4, 5, 6], [-1, 0, 1], [2, 2, 2]];

  it('sigma = 0 or fraction = 0 gives exactly the clean logits (and the clean KD loss)', () => {
    const t = tf.tensor2d(rows);
    const s = tf.tensor2d(rows.map((r) => r.map((v) => v * 0.5)));
    const clean = value(kdLoss(s, t, 4));
    for (const o of [{ sigma: 0, fraction: 0.5 }, { sigma: 0.3, fraction: 0 }]) {
      const noisy = noisyTeacherLogits(t, { ...o, rng: createRng(1) });
      expect(Array.from(noisy.dataSync())).toEqual(rows.flat());
      expect(value(kdLoss(s, noisy, 4))).toBe(clean);
    }
    tf.dispose([t, s]);
  });

  it('multiplies round(alpha*n) rows by (1 + sigma*eps), eps drawn from the seeded rng', () => {
    const t = tf.tensor2d(rows);
    const sigma = 0.2;
    const noisy = noisyTeacherLogits(t, { sigma, fraction: 0.5, rng: createRng(42) });
    // Expected values by hand: the same rng picks the rows, then draws eps row by row.
    const rng = createRng(42);
    const picked = pickRows(4, 2, rng);
    const expected = rows.map((r) => r.slice());
    for (const i of picked) for (let k = 0; k < 3; k++) expected[i]![k]! *= 1 + sigma * normal(rng);
    const got = Array.from(noisy.dataSync());
    expected.flat().forEach((v, i) => expect(got[i]).toBeCloseTo(v, 5));
    const changedRows = rows.filter((r, i) => r.some((v, k) => got[i * 3 + k] !== v)).length;
    expect(changedRows).toBe(2);
    tf.dispose([t, noisy]);
  });

  it('changes the KD loss when on, deterministically by seed', () => {
    const t = tf.tensor2d(rows);
    const s = tf.tensor2d(rows.map((r) => r.map((v) => v * 0.5)));
    const clean = value(kdLoss(s, t, 4));
    const kdWith = (seed: number): number => {
      const n = noisyTeacherLogits(t, { sigma: 0.5, fraction: 1, rng: createRng(seed) });
      const v = value(kdLoss(s, n, 4));
      n.dispose();
      return v;
    };
    expect(kdWith(7)).not.toBeCloseTo(clean, 4);
    expect(kdWith(7)).toBe(kdWith(7));
    expect(kdWith(7)).not.toBe(kdWith(8));
    tf.dispose([t, s]);
  });
});

describe('weighted sum', () => {
  it('sums hint levels with their weights plus weighted KD and CE', () => {
    const terms = { hints: [tf.scalar(2), tf.scalar(3)], kd: tf.scalar(5), ce: tf.scalar(7) };
    const total = weightedLoss(terms, { hints: [0.5, 2], kd: 0.7, ce: 0.3 });
    expect(value(total)).toBeCloseTo(2 * 0.5 + 3 * 2 + 5 * 0.7 + 7 * 0.3, 5);
    const noCe = weightedLoss({ ...terms, ce: null }, { hints: [0.5, 2], kd: 0.7, ce: 0.3 });
    expect(value(noCe)).toBeCloseTo(2 * 0.5 + 3 * 2 + 5 * 0.7, 5);
    tf.dispose([...terms.hints, terms.kd, terms.ce]);
  });
});

describe('hint adapter', () => {
  it('is a 1x1 conv from student to teacher channels: shapes and per-pixel matmul + bias', () => {
    const a = createHintAdapter(3, 5, 1);
    expect(a.kernel.shape).toEqual([1, 1, 3, 5]);
    expect(a.bias.shape).toEqual([5]);
    a.bias.assign(tf.tensor1d([0.1, 0.2, 0.3, 0.4, 0.5]));
    const x = tf.randomNormal([2, 4, 4, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const y = a.apply(x);
    expect(y.shape).toEqual([2, 4, 4, 5]);
    const w = a.kernel.dataSync();
    const b = a.bias.dataSync();
    const px = x.dataSync().slice(0, 3);
    const py = y.dataSync().slice(0, 5);
    for (let o = 0; o < 5; o++) {
      const expected = b[o]! + px[0]! * w[o]! + px[1]! * w[5 + o]! + px[2]! * w[10 + o]!;
      expect(py[o]).toBeCloseTo(expected, 5);
    }
    // Seeded: same seed, same initial kernel.
    const again = createHintAdapter(3, 5, 1);
    expect(Array.from(again.kernel.dataSync())).toEqual(Array.from(w));
    tf.dispose([x, y]);
    a.dispose();
    again.dispose();
  });
});

describe('memory', () => {
  it('leaks no tensors over a loop of every loss term', () => {
    const s = tf.randomNormal([4, 4, 4, 3]) as tf.Tensor4D;
    const t = tf.randomNormal([4, 8, 8, 6]) as tf.Tensor4D;
    const sl = tf.randomNormal([4, 10]) as tf.Tensor2D;
    const tl = tf.randomNormal([4, 10]) as tf.Tensor2D;
    const y = tf.tensor1d([1, 2, 3, 4]);
    const a = createHintAdapter(3, 6, 0);
    const rng = createRng(0);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) {
      tf.tidy(() => {
        const adapted = a.apply(s);
        const noisy = noisyTeacherLogits(tl, { sigma: 0.1, fraction: 0.5, rng });
        const total = weightedLoss({ hints: [hintLoss(adapted, t)], kd: kdLoss(sl, noisy, 4), ce: crossEntropyLoss(sl, y) }, { hints: [1], kd: 0.7, ce: 0.3 });
        total.dataSync();
      });
    }
    expect(tf.memory().numTensors).toBe(before);
    a.dispose();
    tf.dispose([s, t, sl, tl, y]);
  });
});
