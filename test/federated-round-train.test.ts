import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDistillTrainer } from '../src/compress/distill/index.js';
import { fineTuneRound } from '../src/compress/round-train.js';
import { prefixPlanOf } from '../src/compress/enrol.js';
import { RoundConfigSchema } from '../src/config/federated.js';
import { l2Norm, sliceForDevice, zipWeights } from '../src/federated/index.js';
import { weightSetFromModel } from '../src/federated/tfjs-weights.js';
import { createRoundTrainer, enrolDevice } from '../src/jobs/round-trainer.js';
import { tinyImages } from './helpers/data-fixtures.js';
import { buildReferenceStudent, buildReferenceTeacher } from '../src/model/reference-teacher.js';

// Tiny teacher/student (8x8x1, 3 classes) so training runs on the cpu backend in seconds.
const SHAPE: [number, number, number] = [8, 8, 1];
const tinyTeacher = (): tf.LayersModel => buildReferenceTeacher({ seed: 1, inputShape: SHAPE, widths: [4, 8], classes: 3, denseUnits: 8 });
const tinyStudent = (): tf.LayersModel => buildReferenceStudent({ seed: 2, inputShape: SHAPE, widths: [4, 8], classes: 3 });

const tinyData = tinyImages;

const config = (mu: number, round = 1): ReturnType<typeof RoundConfigSchema.parse> =>
  RoundConfigSchema.parse({ type: 'round-config', roundId: `r${round}`, round, strategy: 'fedavg', epochs: 2, learningRate: 0.05, batchSize: 8, mu, deadline: '2030-01-01T00:00:00Z' });

/** ‖w − w0‖ over the student's trainable weights after `steps` steps at μ. */
function driftAfter(mu: number, steps: number): number {
  const teacher = tinyTeacher();
  const student = tinyStudent();
  const before = student.trainableWeights.map((w) => w.read().dataSync().slice());
  const tr = createDistillTrainer(teacher, student, { learningRate: 0.05, proximal: { mu } });
  const data = tinyData(12);
  const x = tf.tensor4d(data.x, [12, 8, 8, 1]);
  const y = tf.tensor1d(Array.from(data.y!));
  let prox: number | undefined;
  for (let i = 0; i < steps; i++) prox = tr.step(x, y, 'joint').proximal;
  if (mu > 0) expect(prox).toBeGreaterThan(0);
  else expect(prox).toBeUndefined();
  const after = student.trainableWeights.map((w) => w.read().dataSync());
  let sq = 0;
  after.forEach((a, k) => a.forEach((v, i) => (sq += (v - before[k]![i]!) ** 2)));
  tf.dispose([x, y]);
  tr.dispose();
  teacher.dispose();
  student.dispose();
  return Math.sqrt(sq);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('FedProx in the distillation trainer', () => {
  it('a large μ keeps the weights near the anchor; μ = 0 is the plain trainer', () => {
    const free = driftAfter(0, 8);
    const small = driftAfter(0.01, 8);
    const large = driftAfter(100, 8);
    expect(free).toBeGreaterThan(0);
    expect(Math.abs(small - free) / free).toBeLessThan(0.2);
    expect(large).toBeLessThan(0.5 * free);
  });

  it('leaks no tensor over repeated steps and rounds', async () => {
    const teacher = tinyTeacher();
    const student = tinyStudent();
    const data = tinyData(16);
    const opts = { epochs: 1, learningRate: 0.01, batchSize: 8, mu: 0.1, seed: 0, recalibrateBatches: 1 };
    await fineTuneRound(teacher, student, data, opts);
    const n0 = tf.memory().numTensors;
    for (let r = 0; r < 3; r++) {
      const m = await fineTuneRound(teacher, student, data, { ...opts, seed: r });
      expect(m.steps).toBe(2);
      expect(m.proximal).toBeGreaterThanOrEqual(0);
    }
    expect(tf.memory().numTensors).toBe(n0);
    teacher.dispose();
    student.dispose();
  });
});

describe('enrolment and the round trainer', () => {
  it('prunes the base by importance or by prefix at equal channel counts, with index maps that slice the base into the student', async () => {
    const base = tinyStudent();
    const data = tinyData(16);
    const imp = await enrolDevice({ base, pruning: { kind: 'fraction', fraction: 0.4, minChannels: 2 } });
    const pre = await enrolDevice({ base, pruning: { kind: 'fraction', fraction: 0.4, minChannels: 2 }, channels: 'prefix', data });
    expect(Object.keys(imp.kept).length).toBeGreaterThan(0);
    for (const [key, idx] of Object.entries(imp.kept)) {
      expect(pre.kept[key]).toEqual(idx.map((_, i) => i));
    }
    expect(imp.student.countParams()).toBe(pre.student.countParams());
    // Surgery and the index map agree: slicing the base gives the importance student's own weights.
    const sliced = sliceForDevice(weightSetFromModel(base), imp.indexMap);
    const own = weightSetFromModel(imp.student);
    expect(l2Norm(zipWeights(sliced, own, (a, b) => a - b))).toBe(0);
    expect(prefixPlanOf(imp.plans).groups.map((g) => g.keep.length)).toEqual(imp.plans[0]!.groups.map((g) => g.keep.length));
    [base, imp.student, pre.student].forEach((m) => m.dispose());
  });

  it('a round loads the global slice, trains, and returns pruned-shaped weights with the index map; μ pulls them to the slice', async () => {
    const teacher = tinyTeacher();
    const base = tinyStudent();
    const data = tinyData(16);
    const dev = await enrolDevice({ base, pruning: { kind: 'fraction', fraction: 0.4, minChannels: 2 } });
    const global = weightSetFromModel(base);
    const start = sliceForDevice(global, dev.indexMap);
    const trainer = createRoundTrainer({ teacher, student: dev.student, indexMap: dev.indexMap, data, train: { recalibrateBatches: 0 } });
    const drift = async (mu: number): Promise<number> => {
      const r = await trainer({ roundId: 'r1', round: 1, config: config(mu), global, signal: new AbortController().signal });
      expect(r.indexMap).toBe(dev.indexMap);
      expect(r.numSamples).toBe(16);
      for (const [name, t] of Object.entries(start)) expect(r.weights[name]!.shape).toEqual(t.shape);
      return l2Norm(zipWeights(r.weights, start, (a, b) => a - b));
    };
    const free = await drift(0);
    const held = await drift(1000);
    expect(held).toBeLessThan(0.5 * free);
    const aborted = new AbortController();
    aborted.abort();
    await expect(trainer({ roundId: 'r2', round: 2, config: config(0, 2), global, signal: aborted.signal })).rejects.toMatchObject({ code: 'EDGEKT_ERR_ABORTED' });
    [teacher, base, dev.student].forEach((m) => m.dispose());
  });
});
