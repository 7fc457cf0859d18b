import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkBudgets, costPerChannelFrom, nextStepFraction, latencySaved, latencyTables, runPruneLoop, type CostProbe, type FineTuneRequest, type LatencyTable } from '../src/compress/budget.js';
import { initBackend } from '../src/runtime/backend.js';
import { createFakeProbe, paramCost } from './helpers/fake-probe.js';

function model(): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' }));
  m.add(tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2' }));
  m.add(tf.layers.globalAveragePooling2d({ name: 'gap' }));
  m.add(tf.layers.dense({ units: 4, name: 'head' }));
  return m;
}

/** Deterministic stand-in for the device: cost grows with parameters. */
const fakeProbe: CostProbe = createFakeProbe();

describe('budget loop', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('checks budgets and ranks distance', () => {
    const f = { latencyP50Ms: 1, latencyP95Ms: 2, latencyP99Ms: 3, peakMemoryMB: 1, modelSizeKB: 100, params: 25600, accuracy: 0.8 };
    expect(checkBudgets(f, { latencyP95Ms: 2, modelSizeKB: 100, minAccuracy: 0.8 }).met).toBe(true);
    const c = checkBudgets(f, { latencyP95Ms: 1, modelSizeKB: 50, minAccuracy: 0.9 });
    expect(c.met).toBe(false);
    expect(c.resourcesMet).toBe(false);
    expect(c.violations.map((v) => v.budget)).toEqual(['latencyP95Ms', 'modelSizeKB', 'minAccuracy']);
    expect(c.distance).toBeCloseTo(1 + 1 + 0.1 / 0.9);
    expect(checkBudgets(f, { minAccuracy: 0.9 }).resourcesMet).toBe(true);
  });

  it('stops once the budgets hold, after a final fine-tune, and leaks nothing', async () => {
    const m = model();
    const startKB = (m.countParams() * 4) / 1024;
    const calls: FineTuneRequest[] = [];
    const before = tf.memory().numTensors;
    const r = await runPruneLoop(m, {
      budgets: { modelSizeKB: 0.4 * startKB, latencyP95Ms: 100 },
      probe: fakeProbe,
      fineTune: async (_s, req) => void calls.push(req),
      evaluate: () => 0.9,
      stepFraction: 0.2,
      minChannels: 2,
      roundTo: 2,
    });
    expect(r.met).toBe(true);
    expect(r.stopReason).toBe('every budget holds');
    expect(r.history[0]!.kind).toBe('start');
    expect(r.history[r.history.length - 1]!.kind).toBe('final');
    expect(r.history.filter((h) => h.kind === 'prune').length).toBeGreaterThanOrEqual(2);
    expect(r.chosen).toBe(r.history.length - 1);
    expect((r.model.countParams() * 4) / 1024).toBeLessThanOrEqual(0.4 * startKB);
    // every prune iteration before the last one was still over budget: the loop stopped at the first fit
    const prunes = r.history.filter((h) => h.kind === 'prune');
    for (const h of prunes.slice(0, -1)) expect(h.check.resourcesMet).toBe(false);
    expect(calls.filter((c) => c.kind === 'final')).toHaveLength(1);
    expect(calls.filter((c) => c.kind === 'brief')).toHaveLength(prunes.length);
    for (const h of prunes) expect(h.plan!.groups.every((g) => g.keep.length % 2 === 0)).toBe(true);
    expect(tf.memory().numTensors - before).toBe(r.model.weights.length);
    r.model.dispose();
    m.dispose();
  });

  it('when only the size budget is over, cuts about what it needs instead of a whole step', async () => {
    const size = (value: number, limit: number) => checkBudgets({ latencyP50Ms: 1, latencyP95Ms: 1, latencyP99Ms: 1, peakMemoryMB: 1, modelSizeKB: value, params: 1, accuracy: 0.5 }, { modelSizeKB: limit, latencyP95Ms: 2, minAccuracy: 0.9 });
    expect(nextStepFraction(size(100, 50), 0.1)).toBe(0.1);
    expect(nextStepFraction(size(100, 97), 0.1)).toBeCloseTo(1.1 * (1 - Math.pow(0.97, 1 / 1.5)), 9);
    expect(nextStepFraction(size(100, 99.99), 0.1)).toBe(0.01);
    // Another resource budget over as well: the configured step.
    const both = checkBudgets({ latencyP50Ms: 3, latencyP95Ms: 3, latencyP99Ms: 3, peakMemoryMB: 1, modelSizeKB: 100, params: 1, accuracy: 0.9 }, { modelSizeKB: 97, latencyP95Ms: 2 });
    expect(nextStepFraction(both, 0.1)).toBe(0.1);

    const m = model();
    const start = m.countParams();
    const r = await runPruneLoop(m, {
      budgets: { modelSizeKB: (0.95 * start * 4) / 1024 },
      probe: fakeProbe,
      fineTune: async () => {},
      evaluate: () => null,
      stepFraction: 0.5,
      minChannels: 2,
    });
    expect(r.met).toBe(true);
    // A 50 % channel step would have left about a third of the parameters.
    expect(r.model.countParams()).toBeGreaterThan(0.85 * start);
    expect(r.model.countParams()).toBeLessThanOrEqual(0.95 * start);
    r.model.dispose();
    m.dispose();
  });

  it('an unreachable budget ends with met=false and the closest model', async () => {
    const m = model();
    const before = tf.memory().numTensors;
    const r = await runPruneLoop(m, {
      budgets: { modelSizeKB: 0.01 },
      probe: fakeProbe,
      fineTune: async () => {},
      evaluate: () => null,
      stepFraction: 0.5,
      minChannels: 4,
    });
    expect(r.met).toBe(false);
    expect(r.stopReason).toMatch(/nothing left|iterations/);
    const best = Math.min(...r.history.map((h) => h.check.distance));
    expect(r.history[r.chosen]!.check.distance).toBe(best);
    expect(r.model.countParams()).toBe(r.history[r.chosen]!.figures.params);
    expect(tf.memory().numTensors - before).toBe(r.model.weights.length);
    r.model.dispose();
    m.dispose();
  });

  it('latency lookup tables: each group measured at several channel counts; savings interpolated', async () => {
    const m = model();
    // A device on which only c2's width costs time, and only above 16 channels (a SIMD-width cliff).
    const cliff: CostProbe = createFakeProbe({
      cost: (x) => {
        const c2 = (x.getLayer('c2').getWeights()[0]!.shape[3] as number);
        return { ...paramCost(x), latencyP50Ms: 1 + Math.max(0, c2 - 16) * 0.1 };
      },
    });
    const tables = await latencyTables(m, cliff, { minChannels: 4, roundTo: 4 });
    const byKey = new Map(tables.map((t) => [t.key, t]));
    expect(tables.map((t) => t.key).sort()).toEqual(['c1', 'c2']);
    // c2: 32 channels kept 24 / 16 / 8 → 1.8 / 1.0 / 1.0 ms against 2.6 ms uncut.
    const t2 = byKey.get('c2')!;
    expect(t2.points.map((p) => p.keep)).toEqual([32, 24, 16, 8]);
    t2.points.forEach((p, i) => expect(p.latencyMs).toBeCloseTo([2.6, 1.8, 1.0, 1.0][i]!, 9));
    expect(latencySaved(t2, 4)).toBeCloseTo(0.4, 9);
    expect(latencySaved(t2, 12)).toBeCloseTo(1.2, 9);
    expect(latencySaved(t2, 20)).toBeCloseTo(1.6, 9);
    // c1 does not change latency on this device: cutting it saves nothing.
    expect(byKey.get('c1')!.points.every((p) => Math.abs(p.latencyMs - 2.6) < 1e-9)).toBe(true);
    const costs = costPerChannelFrom(tables, 0.25);
    expect(costs.get('c2')).toBeCloseTo(0.1, 9);
    expect(costs.get('c1')).toBe(1e-4);
    m.dispose();
  });

  it('interpolates and extrapolates a table linearly, never below zero savings', () => {
    const t: LatencyTable = { key: 'g', size: 16, points: [{ keep: 16, latencyMs: 2 }, { keep: 8, latencyMs: 1 }, { keep: 4, latencyMs: 1.5 }] };
    expect(latencySaved(t, 0)).toBe(0);
    expect(latencySaved(t, 4)).toBeCloseTo(0.5, 9);
    expect(latencySaved(t, 10)).toBeCloseTo(0.75, 9);
    expect(latencySaved(t, 14)).toBeCloseTo(0.25, 9);
  });

  it('accuracy below its minimum after the final fine-tune is reported unmet; latency-aware mode runs', async () => {
    const m = model();
    const r = await runPruneLoop(m, {
      budgets: { latencyP95Ms: (0.6 * m.countParams()) / 900, minAccuracy: 0.95 },
      probe: fakeProbe,
      fineTune: async () => {},
      evaluate: () => 0.9,
      stepFraction: 0.2,
      latencyAware: true,
    });
    expect(r.met).toBe(false);
    expect(r.history[r.history.length - 1]!.check.violations.map((v) => v.budget)).toEqual(['minAccuracy']);
    expect(r.history[r.history.length - 1]!.check.resourcesMet).toBe(true);
    // Each pruning iteration keeps the lookup tables its ranking used.
    const pruned = r.history.filter((h) => h.kind === 'prune');
    expect(pruned.length).toBeGreaterThan(0);
    for (const h of pruned) expect(h.latencyTables!.every((t) => t.points.length >= 2)).toBe(true);
    r.model.dispose();
    m.dispose();
  });

  it('more final fine-tunes while only accuracy misses and each one gains; the saved model is the last one', async () => {
    const m = model();
    const startKB = (m.countParams() * 4) / 1024;
    /** The loop with accuracy accs[k] after k final fine-tunes; returns the result and k. */
    const run = async (accs: number[], extraFinals?: number): Promise<{ r: Awaited<ReturnType<typeof runPruneLoop>>; finals: number }> => {
      let finals = 0;
      const r = await runPruneLoop(m, {
        budgets: { modelSizeKB: 0.5 * startKB, minAccuracy: 0.95 },
        probe: fakeProbe,
        fineTune: async (_s, req) => void (req.kind === 'final' && finals++),
        evaluate: () => accs[finals]!,
        stepFraction: 0.3,
        ...(extraFinals !== undefined ? { extraFinals } : {}),
      });
      return { r, finals };
    };
    // Accuracy rises with each final fine-tune: 0.90 after the first, 0.93, then 0.96 (meets 0.95).
    const rising = await run([0.88, 0.9, 0.93, 0.96]);
    expect(rising.finals).toBe(3);
    expect(rising.r.met).toBe(true);
    expect(rising.r.chosen).toBe(rising.r.history.length - 1);
    expect(rising.r.history.filter((h) => h.kind === 'final').map((h) => h.figures.accuracy)).toEqual([0.9, 0.93, 0.96]);
    rising.r.model.dispose();
    // No gain: stop after the second final, report unmet with the last final's own figures.
    const stuck = await run([0.88, 0.9, 0.89, 0.99]);
    expect(stuck.finals).toBe(2);
    expect(stuck.r.met).toBe(false);
    expect(stuck.r.history[stuck.r.chosen]!.figures.accuracy).toBe(0.89);
    expect(stuck.r.stopReason).toBe('the final model misses minAccuracy');
    stuck.r.model.dispose();
    // extraFinals: 0 keeps the single final fine-tune.
    const once = await run([0.88, 0.9, 0.93, 0.96], 0);
    expect(once.finals).toBe(1);
    expect(once.r.met).toBe(false);
    once.r.model.dispose();
    m.dispose();
  });

  it('confirms a latency violation side by side before believing it', async () => {
    const m = model();
    // Every first reading of a model is "disturbed" (10x slower, the candidate only); a re-measure is clean.
    const noisy = createFakeProbe({ slowdown: (call, _c, isRef) => (call % 2 === 0 && !isRef ? 10 : 1) });
    const limit = (1.01 * m.countParams()) / 900;
    const r = await runPruneLoop(m, { budgets: { latencyP95Ms: limit }, probe: noisy, fineTune: async () => {}, evaluate: () => null });
    expect(r.met).toBe(true);
    expect(r.history.filter((h) => h.kind === 'prune')).toHaveLength(0);
    const d = r.history[0]!.latencyDecision!;
    expect(d.readings.map((x) => x.over)).toEqual([true, false]);
    expect(d.confirmed).toBe(false);
    expect(r.history[0]!.figures.latencyP95Ms).toBe(d.readings[1]!.p95Ms);
    // Without re-measures the one noisy reading is believed.
    const once = await runPruneLoop(m, { budgets: { latencyP95Ms: limit }, probe: noisy, fineTune: async () => {}, evaluate: () => null, confirmations: 0, maxIterations: 1 });
    expect(once.history[0]!.check.resourcesMet).toBe(false);
    expect(once.history[0]!.latencyDecision!.confirmed).toBe(true);
    expect(r.model).toBe(m); // met at the start: the loop hands back the input model
    for (const x of new Set([r.model, once.model, m])) x.dispose();
  });
});
