import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runPruneLoop, type FineTuner, type PruneLoopOptions } from '../src/compress/budget.js';
import type { ResolvedBudgets } from '../src/config/device-profile.js';
import { initBackend } from '../src/runtime/backend.js';
import { createFakeProbe, paramCost, type FakeProbeOptions, twoConvNet } from './helpers/fake-probe.js';

const net = (c2: number): tf.LayersModel => twoConvNet(c2);

/**
 * A run whose final fine-tune is what lifts accuracy over its minimum (0.96 against 0.95; every
 * pruned-only model scores 0.90), with the teacher as the side-by-side reference.
 */
function setup(budgets: (teacherP95: number) => ResolvedBudgets, slowdown: (finalTuned: (m: tf.LayersModel) => boolean) => FakeProbeOptions['slowdown']) {
  const teacher = net(64);
  const student = net(32);
  const tuned = new WeakSet<tf.LayersModel>();
  const fineTune: FineTuner = async (m, req) => {
    if (req.kind === 'final') tuned.add(m);
  };
  const probe = createFakeProbe({ slowdown: slowdown((m) => tuned.has(m)) });
  const o: PruneLoopOptions = {
    budgets: budgets(paramCost(teacher).latencyP95Ms),
    probe,
    teacher,
    fineTune,
    evaluate: (m) => (tuned.has(m) ? 0.96 : 0.9),
    stepFraction: 0.2,
    minChannels: 2,
  };
  return { teacher, student, tuned, o };
}

const relative = (t: number): ResolvedBudgets => ({ latencyP95Ms: 0.4 * t, latencyP95Ratio: 0.4, minAccuracy: 0.95 });

describe('prune loop on a noisy machine', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('one 10x outlier on the final model does not make the loop discard it', async () => {
    let spiked = false;
    const { teacher, student, tuned, o } = setup(relative, (isFinal) => (_call, c, isRef) => {
      if (isRef || !isFinal(c) || spiked) return 1;
      spiked = true;
      return 10;
    });
    const before = tf.memory().numTensors;
    const r = await runPruneLoop(student, o);
    expect(spiked).toBe(true);
    expect(r.met).toBe(true);
    expect(tuned.has(r.model)).toBe(true);
    const final = r.history[r.history.length - 1]!;
    expect(final.kind).toBe('final');
    expect(r.chosen).toBe(r.history.length - 1);
    // The outlier was read, re-measured side by side with the teacher, and not believed.
    const d = final.latencyDecision!;
    expect(d.readings.map((x) => x.over)).toEqual([true, false]);
    expect(d.confirmed).toBe(false);
    expect(final.figures.latencyP95Ms).toBe(d.readings[1]!.p95Ms);
    expect(final.figures.reference!.role).toBe('teacher');
    expect(final.figures.load).toBeDefined();
    expect(tf.memory().numTensors - before).toBe(r.model.weights.length);
    r.model.dispose();
    student.dispose();
    teacher.dispose();
  });

  it('a relative budget holds through a load burst that slows teacher and student alike', async () => {
    // Every measurement of the final model runs on a machine 10x slower, for teacher and student.
    const { teacher, student, tuned, o } = setup(relative, (isFinal) => (_call, c) => (isFinal(c) ? 10 : 1));
    const r = await runPruneLoop(student, o);
    expect(r.met).toBe(true);
    expect(tuned.has(r.model)).toBe(true);
    const final = r.history[r.history.length - 1]!;
    expect(final.latencyDecision!.readings).toHaveLength(1);
    // The raw figure is far over the limit resolved before the run; the same-run ratio is not.
    expect(final.figures.latencyP95Ms).toBeGreaterThan(o.budgets.latencyP95Ms!);
    expect(final.figures.reference!.ratioP95).toBeLessThanOrEqual(0.4);
    r.model.dispose();
    student.dispose();
    teacher.dispose();
  });

  it('an absolute budget missed in every side-by-side reading is a confirmed miss, reported for the saved fine-tuned model', async () => {
    const absolute = (t: number): ResolvedBudgets => ({ latencyP95Ms: 0.4 * t, minAccuracy: 0.95 });
    const { teacher, student, tuned, o } = setup(absolute, (isFinal) => (_call, c) => (isFinal(c) ? 10 : 1));
    const r = await runPruneLoop(student, o);
    const final = r.history[r.history.length - 1]!;
    expect(final.kind).toBe('final');
    expect(final.latencyDecision!.readings).toHaveLength(3);
    expect(final.latencyDecision!.confirmed).toBe(true);
    expect(r.met).toBe(false);
    // Still the better model is saved: the fine-tune changed no architecture, only the accuracy, and
    // the verdict is the saved model's own record (not the pre-tune record of the same object).
    expect(tuned.has(r.model)).toBe(true);
    expect(r.chosen).toBe(r.history.length - 1);
    expect(r.history[r.chosen]!.check.violations.map((v) => v.budget)).toEqual(['latencyP95Ms']);
    expect(r.met).toBe(r.history[r.chosen]!.check.met);
    expect(r.model.countParams()).toBe(r.history[r.chosen]!.figures.params);
    r.model.dispose();
    student.dispose();
    teacher.dispose();
  });
});
