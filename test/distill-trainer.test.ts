import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createDistillTrainer,
  distill,
  findStageEnds,
  kdLoss,
  logitsSource,
  pairStageEnds,
  recalibrateBatchNorm,
  createDistillFineTuner,
  trainSupervised,
  scheduledLearningRate,
  hintPairs,
  preActivation,
  type DistillTrainerOptions,
} from '../src/compress/distill/index.js';
import type { FineTuner } from '../src/compress/budget.js';
import type { ImageSet } from '../src/data/types.js';
import { buildReferenceStudent, buildReferenceTeacher } from '../src/model/reference-teacher.js';

// Tiny versions of the reference teacher/student (8x8x1, 3 classes) so conv training runs on 'cpu'.
const SHAPE: [number, number, number] = [8, 8, 1];
const tinyTeacher = (seed = 0): tf.LayersModel => buildReferenceTeacher({ seed, inputShape: SHAPE, widths: [4, 8], classes: 3, denseUnits: 8 });
const tinyStudent = (seed = 0): tf.LayersModel => buildReferenceStudent({ seed, inputShape: SHAPE, widths: [2, 4], classes: 3 });

function tinyData(count: number, labeled = true): ImageSet {
  const x = new Float32Array(count * 64);
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    y[i] = i % 3;
    for (let p = 0; p < 64; p++) x[i * 64 + p] = ((p * 7 + i * 13) % 17) / 17 + (p % 3 === y[i] ? 0.5 : 0);
  }
  return { x, y: labeled ? y : null, count, shape: SHAPE, numClasses: 3, classNames: ['a', 'b', 'c'] };
}

const batchX = (): tf.Tensor4D => tf.tensor4d(tinyData(6).x, [6, 8, 8, 1]);
const labels = (): tf.Tensor1D => tf.tensor1d([0, 1, 2, 0, 1, 2]);
const snapshot = (m: tf.LayersModel, layer: string): number[] => Array.from(m.getLayer(layer).getWeights()[0]!.dataSync());

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('hint points', () => {
  it('finds the last layer of each resolution with convolutions, and pairs teacher/student by resolution', () => {
    const t = tinyTeacher();
    const s = tinyStudent();
    const te = findStageEnds(t);
    expect(te.map((e) => [e.layerName, e.height, e.channels])).toEqual([['s1_relu2', 8, 4], ['s2_relu2', 4, 8]]);
    const pairs = pairStageEnds(te, findStageEnds(s));
    expect(pairs.map((p) => [p.student.layerName, p.teacher.layerName])).toEqual([['s1_2_pw_relu', 's1_relu2'], ['s2_2_pw_relu', 's2_relu2']]);
  });

  it('adapters map student channels to teacher channels at each level', () => {
    const tr = createDistillTrainer(tinyTeacher(), tinyStudent());
    expect(tr.adapters.map((a) => a.kernel.shape)).toEqual([[1, 1, 2, 4], [1, 1, 4, 8]]);
    tr.dispose();
  });
});

describe('pre-ReLU hint points', () => {
  it('moves each stage end to the layer before its ReLU, same shape; explicit pairs too', () => {
    const t = tinyTeacher();
    const s = tinyStudent();
    const post = createDistillTrainer(t, s);
    const pre = createDistillTrainer(t, s, { hintPoint: 'pre-relu' });
    expect(pre.pairs.map((p) => [p.student.layerName, p.teacher.layerName])).toEqual([['s1_2_pw_bn', 's1_bn2'], ['s2_2_pw_bn', 's2_bn2']]);
    expect(pre.pairs.map((p) => [p.student.channels, p.teacher.channels, p.student.height])).toEqual(post.pairs.map((p) => [p.student.channels, p.teacher.channels, p.student.height]));
    const explicit = hintPairs(t, s, [{ teacher: 's2_relu2', student: 's2_2_pw_relu' }], 'pre-relu');
    expect(explicit.map((p) => [p.student.layerName, p.teacher.layerName])).toEqual([['s2_2_pw_bn', 's2_bn2']]);
    // Not a ReLU: left where it is.
    expect(preActivation(t, { layerName: 's1_bn2', height: 8, width: 8, channels: 4 }).layerName).toBe('s1_bn2');
    const x = batchX();
    const l = pre.step(x, labels(), 'joint');
    expect(l.hints.every((h) => Number.isFinite(h))).toBe(true);
    pre.dispose();
    post.dispose();
    x.dispose();
  });
});

describe('training step', () => {
  it('hints phase trains only layers up to the hint points and the adapters; logits phase leaves adapters alone', () => {
    const s = tinyStudent();
    const tr = createDistillTrainer(tinyTeacher(), s);
    const x = batchX();
    const y = labels();
    const head0 = snapshot(s, 'logits');
    const conv0 = snapshot(s, 's1_1_pw');
    const ad0 = Array.from(tr.adapters[0]!.kernel.dataSync());
    const l = tr.step(x, y, 'hints');
    expect(l.hints).toHaveLength(2);
    expect(l.kd).toBeNull();
    expect(l.ce).toBeNull();
    expect(snapshot(s, 'logits')).toEqual(head0);
    expect(snapshot(s, 's1_1_pw')).not.toEqual(conv0);
    const ad1 = Array.from(tr.adapters[0]!.kernel.dataSync());
    expect(ad1).not.toEqual(ad0);
    const l2 = tr.step(x, y, 'logits');
    expect(l2.hints).toEqual([]);
    expect(l2.kd).not.toBeNull();
    expect(l2.ce).not.toBeNull();
    expect(snapshot(s, 'logits')).not.toEqual(head0);
    expect(Array.from(tr.adapters[0]!.kernel.dataSync())).toEqual(ad1);
    tr.dispose();
    tf.dispose([x, y]);
  });

  it('joint phase has every term; total is their weighted sum', () => {
    const tr = createDistillTrainer(tinyTeacher(), tinyStudent(), { hintWeights: [0.5, 2], kdWeight: 0.6, ceWeight: 0.4 });
    const x = batchX();
    const y = labels();
    const l = tr.step(x, y, 'joint');
    expect(l.total).toBeCloseTo(0.5 * l.hints[0]! + 2 * l.hints[1]! + 0.6 * l.kd! + 0.4 * l.ce!, 4);
    tr.dispose();
    tf.dispose([x, y]);
  });

  it.each(['cosine', 'attention'] as const)('hintLoss %s: its own hint values, student trained, adapters trained only when used, no leak', (kind) => {
    const teacher = tinyTeacher();
    const x = batchX();
    const y = labels();
    const mse = createDistillTrainer(teacher, tinyStudent());
    const mseHints = mse.step(x, y, 'joint').hints;
    mse.dispose();
    const s = tinyStudent();
    const tr = createDistillTrainer(teacher, s, { hintLoss: kind });
    const conv0 = snapshot(s, 's1_1_pw');
    const ad0 = Array.from(tr.adapters[0]!.kernel.dataSync());
    const l = tr.step(x, y, 'joint');
    tr.step(x, y, 'hints'); // each phase's Adam creates its slots on its first step
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tr.step(x, y, 'hints');
      tr.step(x, y, 'joint');
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(l.hints).toHaveLength(2);
    expect(l.hints.every((h) => Number.isFinite(h) && h >= 0)).toBe(true);
    expect(l.hints).not.toEqual(mseHints);
    if (kind === 'cosine') expect(l.hints.every((h) => h <= 2)).toBe(true);
    expect(snapshot(s, 's1_1_pw')).not.toEqual(conv0);
    const ad1 = Array.from(tr.adapters[0]!.kernel.dataSync());
    if (kind === 'attention') expect(ad1).toEqual(ad0);
    else expect(ad1).not.toEqual(ad0);
    tr.dispose();
    tf.dispose([x, y]);
  });

  it('drops cross-entropy when the data is unlabeled', () => {
    const tr = createDistillTrainer(tinyTeacher(), tinyStudent());
    const x = batchX();
    const l = tr.step(x, null, 'logits');
    expect(l.ce).toBeNull();
    expect(l.kd).not.toBeNull();
    expect(l.total).toBeCloseTo(0.7 * l.kd!, 5);
    tr.dispose();
    x.dispose();
  });

  it('noise: sigma=0 and alpha=0 give the clean loss; sigma>0 changes it, the same way for the same seed', () => {
    const x = batchX();
    const y = labels();
    const kdOf = (o: DistillTrainerOptions): number => {
      const tr = createDistillTrainer(tinyTeacher(), tinyStudent(), { ...o, hints: 'none' });
      const l = tr.step(x, y, 'logits');
      tr.dispose();
      return l.kd!;
    };
    const clean = kdOf({ noiseSigma: 0 });
    expect(kdOf({ noiseSigma: 0.5, noiseFraction: 0 })).toBe(clean);
    const noisy = kdOf({ noiseSigma: 0.5, noiseFraction: 1, seed: 3 });
    expect(noisy).not.toBeCloseTo(clean, 5);
    expect(kdOf({ noiseSigma: 0.5, noiseFraction: 1, seed: 3 })).toBe(noisy);
    expect(kdOf({ noiseSigma: 0.5, noiseFraction: 1, seed: 4 })).not.toBe(noisy);
    tf.dispose([x, y]);
  });

  it('leaks no tensors over many steps in every phase', () => {
    const x = batchX();
    const y = labels();
    const teacher = tinyTeacher();
    const student = tinyStudent();
    const before = tf.memory().numTensors;
    const tr = createDistillTrainer(teacher, student);
    for (let i = 0; i < 3; i++) for (const p of ['hints', 'logits', 'joint'] as const) tr.step(x, y, p);
    const mid = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) for (const p of ['hints', 'logits', 'joint'] as const) tr.step(x, y, p);
    expect(tf.memory().numTensors).toBe(mid);
    tr.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, y]);
  });
});

describe('teacher with a softmax output', () => {
  it('takes logits as log(p): KD equals KD on the raw logits (softmax is shift-invariant)', () => {
    const inp = tf.input({ shape: [4] });
    const logitsLayer = tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) });
    const raw = tf.model({ inputs: inp, outputs: logitsLayer.apply(inp) as tf.SymbolicTensor });
    const fused = tf.sequential({ layers: [tf.layers.dense({ units: 3, activation: 'softmax', inputShape: [4] })] });
    fused.setWeights(raw.getWeights());
    expect(logitsSource(fused).fromProbabilities).toBe(true);
    expect(logitsSource(raw).fromProbabilities).toBe(false);
    const x = tf.tensor2d([[1, 2, 3, 4], [0, -1, 0.5, 2]]);
    const s = tf.tensor2d([[0, 1, 0], [1, 0, 0]]);
    const a = tf.tidy(() => kdLoss(s, raw.predict(x) as tf.Tensor2D, 4).dataSync()[0]!);
    const b = tf.tidy(() => kdLoss(s, tf.log(fused.predict(x) as tf.Tensor2D), 4).dataSync()[0]!);
    expect(b).toBeCloseTo(a, 4);
    tf.dispose([x, s]);
  });
});

describe('distill()', () => {
  it('fitnets spends hintFraction of the steps on hints, then logits; reports progress for each step', async () => {
    const seen: string[] = [];
    const r = await distill(tinyTeacher(), tinyStudent(), tinyData(24), {
      epochs: 2, batchSize: 6, hintFraction: 0.25, onProgress: (p) => seen.push(`${p.globalStep}/${p.totalSteps}:${p.phase}`),
    });
    expect(r.steps).toBe(8);
    expect(seen).toEqual(['1/8:hints', '2/8:hints', '3/8:logits', '4/8:logits', '5/8:logits', '6/8:logits', '7/8:logits', '8/8:logits']);
    expect(r.history[0]!.phases.hints!.steps).toBe(2);
    expect(r.history[1]!.phases.logits!.kd).toBeGreaterThanOrEqual(0);
  });

  it('is reproducible for a seed (same student weights after the same run)', async () => {
    const run = async (): Promise<number[]> => {
      const s = tinyStudent(5);
      await distill(tinyTeacher(), s, tinyData(12), { epochs: 1, batchSize: 6, seed: 9, schedule: 'joint' });
      return snapshot(s, 'logits');
    };
    const a = await run();
    expect(await run()).toEqual(a);
  });

  it('plain supervised training lowers the loss; refuses unlabeled data without a teacher', async () => {
    const s = tinyStudent(1);
    const r = await trainSupervised(s, tinyData(48), { epochs: 4, batchSize: 12, learningRate: 0.01 });
    const first = r.history[0]!.phases.logits!.ce!;
    const last = r.history[3]!.phases.logits!.ce!;
    expect(last).toBeLessThan(first);
    await expect(trainSupervised(s, tinyData(12, false))).rejects.toMatchObject({ code: 'EDGEKT_ERR_USAGE' });
  });
});

describe('recalibrateBatchNorm', () => {
  it('sets moving mean/variance to the population statistics of the BN input', () => {
    const model = tf.sequential({ layers: [tf.layers.batchNormalization({ inputShape: [2, 2, 2], axis: -1 })] });
    const data = tinyData(5);
    const set = { ...data, x: Float32Array.from({ length: 5 * 8 }, (_, i) => (i % 2 === 0 ? i / 10 : -i)), shape: [2, 2, 2] as [number, number, number] };
    const c0 = Array.from(set.x).filter((_, i) => i % 2 === 0);
    const c1 = Array.from(set.x).filter((_, i) => i % 2 === 1);
    const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
    const pvar = (v: number[]): number => mean(v.map((x) => (x - mean(v)) ** 2));
    const before = tf.memory().numTensors;
    expect(recalibrateBatchNorm(model, set, { batchSize: 2, batches: 10 })).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
    const [, , mm, mv] = model.layers[0]!.getWeights();
    const m = Array.from(mm!.dataSync());
    const v = Array.from(mv!.dataSync());
    expect(m[0]).toBeCloseTo(mean(c0), 4);
    expect(m[1]).toBeCloseTo(mean(c1), 4);
    expect(v[0]).toBeCloseTo(pvar(c0), 3);
    expect(v[1]).toBeCloseTo(pvar(c1), 2);
  });
});

describe('fine-tuning for pruning', () => {
  it('maxSteps caps a run; the fine-tuner fits compress/budget FineTuner and trains the student in place', async () => {
    const r = await distill(tinyTeacher(), tinyStudent(), tinyData(36), { epochs: 3, batchSize: 6, maxSteps: 4 });
    expect(r.steps).toBe(4);
    const s = tinyStudent(2);
    const tune: FineTuner = createDistillFineTuner(tinyTeacher(), tinyData(24), { batchSize: 6, briefSteps: 2 });
    const before = snapshot(s, 'logits');
    await tune(s, { iteration: 1, kind: 'brief' });
    expect(snapshot(s, 'logits')).not.toEqual(before);
  });
});

describe('learning-rate schedule', () => {
  it('cosine anneals from the base rate to near 0; constant stays put', () => {
    expect(scheduledLearningRate('cosine', 1e-3, 0, 100)).toBeCloseTo(1e-3, 12);
    expect(scheduledLearningRate('cosine', 1e-3, 50, 100)).toBeCloseTo(5e-4, 12);
    expect(scheduledLearningRate('cosine', 1e-3, 99, 100)).toBeLessThan(1e-6);
    expect(scheduledLearningRate('cosine', 1e-3, 0, 1)).toBe(1e-3);
    expect(scheduledLearningRate('constant', 1e-3, 99, 100)).toBe(1e-3);
  });

  it('a step uses the rate it is given: 0 leaves the weights alone, a larger rate moves them further', () => {
    const moved = (lr: number): number => {
      const s = tinyStudent(3);
      const before = snapshot(s, 's1_1_pw');
      const tr = createDistillTrainer(tinyTeacher(), s, { seed: 1 });
      const x = batchX();
      const y = labels();
      tr.step(x, y, 'joint', lr);
      tf.dispose([x, y]);
      tr.dispose();
      const after = snapshot(s, 's1_1_pw');
      s.dispose();
      return Math.max(...after.map((v, i) => Math.abs(v - before[i]!)));
    };
    expect(moved(0)).toBe(0);
    // Adam's first step moves each weight by about lr, whatever the gradient's scale.
    expect(moved(1e-2)).toBeGreaterThan(5 * moved(1e-3));
  });
});
