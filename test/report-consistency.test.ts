import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { budgetUnreachable, runCompress, type PipelineStages } from '../src/compress/pipeline.js';
import type { CheckpointStore } from '../src/store/checkpoint-store.js';
import { renderMarkdown, verdictOf, type CompressReport } from '../src/compress/report/index.js';
import { parseDeviceProfile } from '../src/config/device-profile.js';
import type { DatasetSplits, ImageSet } from '../src/data/types.js';
import { initBackend } from '../src/runtime/backend.js';
import { createFakeProbe, twoConvNet } from './helpers/fake-probe.js';

const net = (c2: number): tf.LayersModel => twoConvNet(c2, 3);

const images = (count: number): ImageSet => ({ x: new Float32Array(count * 64), y: new Int32Array(count), count, shape: [8, 8, 1], numClasses: 3, classNames: ['a', 'b', 'c'] });

function memoryStore(): CheckpointStore {
  const m = new Map<string, { meta: unknown; model: { modelJson: string; weights: Uint8Array } | null }>();
  return {
    load: async (s) => m.get(s) ?? null,
    save: async (s, c) => void m.set(s, { meta: JSON.parse(JSON.stringify(c.meta)), model: c.model }),
    remove: async (s) => void m.delete(s),
    list: async () => [...m.keys()].sort(),
    clear: async () => m.clear(),
  };
}

/**
 * A run in which only the final fine-tune lifts accuracy over the budget, and the final model is
 * measured during a load burst that slows everything on the machine 10x (teacher included).
 */
async function noisyFinalRun(latencyP95: string | number): Promise<{ report: CompressReport; saved: tf.LayersModel; tuned: WeakSet<tf.LayersModel>; evaluate: PipelineStages['evaluate']; data: DatasetSplits }> {
  const teacher = net(64);
  const tuned = new WeakSet<tf.LayersModel>();
  const data: DatasetSplits = { name: 'fake', train: images(12), validation: images(10), test: images(14) };
  // Accuracy by model and split; validation and test deliberately differ.
  const evaluate: PipelineStages['evaluate'] = (m, set) => {
    const onTest = set.count === data.test.count;
    if (m === teacher) return onTest ? 0.98 : 0.99;
    return tuned.has(m) ? (onTest ? 0.955 : 0.96) : onTest ? 0.89 : 0.9;
  };
  const stages: PipelineStages = {
    lighten: async () => net(32),
    distill: async () => {},
    fineTuner: () => async (m, req) => void (req.kind === 'final' && tuned.add(m)),
    evaluate,
    macs: (m) => m.countParams() * 64,
  };
  const profile = parseDeviceProfile({
    name: 'noisy', match: { arch: ['x64'] }, budgets: { latencyP95: latencyP95, minAccuracy: '0.95x' },
    runtime: { backend: 'cpu', threads: 1 }, training: { batchSize: 8, maxRssMB: 500, maxTemperatureC: 80 },
  });
  const probe = createFakeProbe({ slowdown: (_call, c) => (tuned.has(c) ? 10 : 1) });
  try {
    const { report, student } = await runCompress({ teacher, data, profile, probe, store: memoryStore(), stages, backend: 'cpu', prune: { stepFraction: 0.2, minChannels: 2 } });
    return { report, saved: student, tuned, evaluate, data };
  } finally {
    teacher.dispose();
  }
}

/** The report's claims about the saved model, checked against the model and against each other. */
function expectOneTruth(r: CompressReport, saved: tf.LayersModel, evaluate: PipelineStages['evaluate'], data: DatasetSplits): void {
  const rec = r.history[r.chosen]!;
  // The student row is the saved model: its own record's figures, its test accuracy.
  expect(saved.countParams()).toBe(r.student.params);
  expect(rec.figures.params).toBe(r.student.params);
  for (const k of ['latencyP95Ms', 'latencyP50Ms', 'peakMemoryMB', 'modelSizeKB', 'accuracy'] as const) expect(r.student[k]).toBe(rec.figures[k]);
  expect(r.accuracyOn.split).toBe('validation');
  expect(r.student.accuracy).toBe(evaluate(saved, data.validation!));
  expect(r.testOn.split).toBe('test');
  expect(r.student.testAccuracy).toBe(evaluate(saved, data.test));
  // The budget table holds the same figures; the verdict is computed from the table.
  const value = { latencyP95Ms: rec.figures.latencyP95Ms, minAccuracy: rec.figures.accuracy } as Record<string, number | null>;
  expect(r.budgetTable.map((row) => row.budget)).toEqual(['latencyP95Ms', 'minAccuracy']);
  for (const row of r.budgetTable) expect(row.value).toBe(value[row.budget]);
  expect(r.verdict).toEqual(verdictOf(r.budgetTable));
  expect(r.met).toBe(r.verdict.met);
  expect(r.verdict.missed).toEqual(rec.check.violations.map((v) => v.budget));
  expect(renderMarkdown(r).split('← saved')).toHaveLength(2);
}

describe('one truth in the report', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('a final model measured during a load burst: the saved fine-tuned model, its figures and its verdict', async () => {
    const before = tf.memory().numTensors;
    const { report, saved, tuned, evaluate, data } = await noisyFinalRun('0.4x');
    expect(tuned.has(saved)).toBe(true);
    expect(report.history[report.chosen]!.kind).toBe('final');
    expect(report.met).toBe(true);
    expectOneTruth(report, saved, evaluate, data);
    // Relative latency is held against the teacher measured in the same run as the saved model.
    const lat = report.budgetTable.find((r) => r.budget === 'latencyP95Ms')!;
    expect(lat.limit).toBeCloseTo(0.4 * report.student.reference!.latencyP95Ms, 12);
    expect(report.student.reference!.role).toBe('teacher');
    expect(report.ratios.latencyP95).toBeCloseTo(1 / report.student.reference!.ratioP95, 12);
    expect(report.student.load).toBeDefined();
    expect(report.teacher.load).toBeDefined();
    expect(tf.memory().numTensors - before).toBe(saved.weights.length);
    saved.dispose();
  });

  it('a confirmed miss of an absolute budget: the closest saved model, its figures and its miss', async () => {
    // 4.28 ms: about 0.4x the fake teacher's calm p95 (9,635 params / 900).
    const { report, saved, evaluate, data } = await noisyFinalRun(4.28);
    expect(report.met).toBe(false);
    expect(report.verdict.missed).toEqual(['latencyP95Ms']);
    expectOneTruth(report, saved, evaluate, data);
    const err = budgetUnreachable(report);
    expect(err.code).toBe('EDGEKT_ERR_BUDGET_UNREACHABLE');
    expect((err.details as { violations: Array<{ budget: string }> }).violations.map((v) => v.budget)).toEqual(report.verdict.missed);
    saved.dispose();
  });
});
