import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLatencyProbe, measureModelCost, measurePair, percentile, spreadOf } from '../src/bench/latency.js';
import { createSystemLoadSampler, noLoadSampler, parseProcStat, stealBetween, type LoadSampler } from '../src/bench/load-sampler.js';
import { initBackend } from '../src/runtime/backend.js';
import { saveModel } from '../src/model/index.js';
import { main } from '../src/cli/main.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

function tiny(filters: number): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [8, 8, 1], filters, kernelSize: 3, padding: 'same', activation: 'relu' }));
  m.add(tf.layers.globalAveragePooling2d({}));
  m.add(tf.layers.dense({ units: 3 }));
  return m;
}

describe('latency probe', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('percentile uses nearest rank', () => {
    const xs = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(10);
    expect(percentile(xs, 95)).toBe(19);
    expect(percentile(xs, 99)).toBe(20);
    expect(percentile([5], 95)).toBe(5);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });

  it('reports ordered percentiles, peak memory and size with a fake clock; no leaks', async () => {
    const m = tiny(4);
    let t = 0;
    let calls = 0;
    // Each run takes 1, 2, 3, ... ms: two clock reads per timed run.
    const clock = { now: () => 0, hrMs: () => (calls++ % 2 === 0 ? t : (t += Math.ceil(calls / 2))) };
    const before = tf.memory().numTensors;
    const cost = await measureModelCost(m, { warmup: 2, runs: 10, trials: 1, clock, load: noLoadSampler });
    expect(tf.memory().numTensors).toBe(before);
    expect(cost.latencyP50Ms).toBe(5);
    expect(cost.latencyP95Ms).toBe(10);
    expect(cost.latencyP99Ms).toBe(10);
    expect(cost.params).toBe(m.countParams());
    expect(cost.modelSizeKB).toBeCloseTo((m.countParams() * 4) / 1024);
    // Weights + input + at least one 8x8x4 activation.
    expect(cost.peakMemoryMB * 2 ** 20).toBeGreaterThanOrEqual(m.countParams() * 4 + 64 * 4 + 8 * 8 * 4 * 4);
    m.dispose();
  });

  it('the figure is the median of per-trial percentiles; one disturbed trial does not move it', async () => {
    const m = tiny(4);
    // Five trials of four runs: every run takes 1 ms except in trial 2, where each takes 50 ms.
    let reads = 0;
    let t = 0;
    const clock = { now: () => 0, hrMs: () => (reads++ % 2 === 0 ? t : (t += Math.floor((reads - 1) / 8) === 2 ? 50 : 1)) };
    const cost = await measureModelCost(m, { warmup: 1, runs: 4, trials: 5, clock, load: noLoadSampler });
    expect(cost.latencyP95Ms).toBe(1);
    expect(cost.latencyP50Ms).toBe(1);
    expect(cost.latency!.p95).toEqual({ min: 1, q1: 1, median: 1, q3: 1, max: 50 });
    expect(cost.latency!.trials).toBe(5);
    expect(cost.latency!.runsPerTrial).toBe(4);
    expect(spreadOf([3, 1, 2, 5, 4])).toEqual({ min: 1, q1: 2, median: 3, q3: 4, max: 5 });
    m.dispose();
  });

  it('a pair is measured in alternating trials (A, B, A, B); ratio and load from the same run; no leaks', async () => {
    const a = tiny(2);
    const b = tiny(8);
    // A run of model A takes 1 ms, of B 4 ms: tell them apart by the order of the trials.
    const order: string[] = [];
    let current = 'a';
    let reads = 0;
    let t = 0;
    const clock = { now: () => 0, hrMs: () => (reads++ % 2 === 0 ? t : (t += current === 'a' ? 1 : 4)) };
    let windows = 0;
    const load: LoadSampler = { begin: () => ((windows++), () => ({ loadAvg1Before: 1.5, loadAvg1After: 2.5, stealPct: 3 })) };
    const before = tf.memory().numTensors;
    const tracked = (x: tf.LayersModel, name: string): void => {
      const p = x.predict.bind(x);
      x.predict = ((i: tf.Tensor) => (order.push(name), (current = name), p(i))) as typeof x.predict;
    };
    tracked(a, 'a');
    tracked(b, 'b');
    const pair = await measurePair(a, b, { warmup: 0, runs: 2, trials: 3, clock, load });
    expect(tf.memory().numTensors).toBe(before);
    // Timed runs: a a b b, three times (the memory pass runs each once more at the end).
    expect(order.slice(0, 12).join('')).toBe('aabbaabbaabb');
    expect(pair.candidate.latencyP95Ms).toBe(1);
    expect(pair.reference.latencyP95Ms).toBe(4);
    expect(pair.ratioP95).toBe(0.25);
    expect(windows).toBe(1);
    expect(pair.candidate.load).toEqual({ loadAvg1Before: 1.5, loadAvg1After: 2.5, stealPct: 3 });
    expect(pair.reference.load).toEqual(pair.candidate.load);
    expect(pair.reference.params).toBe(b.countParams());
    a.dispose();
    b.dispose();
  });

  it('load sampler: steal from /proc/stat deltas, load average around the window, null without /proc', () => {
    const stat = (steal: number, idle: number): string => `cpu  100 0 50 ${idle} 5 0 2 ${steal} 0 0\ncpu0 1 2 3 4\n`;
    expect(parseProcStat(stat(7, 800))).toEqual({ total: 100 + 50 + 800 + 5 + 2 + 7, steal: 7 });
    expect(parseProcStat('intr 1 2')).toBeNull();
    expect(stealBetween(parseProcStat(stat(7, 800)), parseProcStat(stat(17, 890)))).toBeCloseTo(10, 9);
    const texts = [stat(0, 100), stat(5, 120)];
    const loads = [[0.5], [0.75]];
    const s = createSystemLoadSampler({ readStat: () => texts.shift() ?? null, loadavg: () => loads.shift() ?? [] });
    expect(s.begin()()).toEqual({ loadAvg1Before: 0.5, loadAvg1After: 0.75, stealPct: 20 });
    const none = createSystemLoadSampler({ readStat: () => null, loadavg: () => [0, 0, 0] });
    expect(none.begin()()).toEqual({ loadAvg1Before: 0, loadAvg1After: 0, stealPct: null });
  });

  it('a wider model costs more memory and size, measured with the real clock', async () => {
    const probe = createLatencyProbe({ warmup: 1, runs: 5 });
    const small = tiny(2);
    const big = tiny(32);
    const a = await probe.measure(small);
    const b = await probe.measure(big);
    expect(b.peakMemoryMB).toBeGreaterThan(a.peakMemoryMB);
    expect(b.modelSizeKB).toBeGreaterThan(a.modelSizeKB);
    expect(a.latencyP50Ms).toBeGreaterThan(0);
    expect(a.latencyP95Ms).toBeGreaterThanOrEqual(a.latencyP50Ms);
    small.dispose();
    big.dispose();
  });

  it('edgekt bench latency --model DIR --json measures a saved model', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'edgekt-lat-'));
    const m = tiny(4);
    await saveModel(m, dir);
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (lines.push(String(s)), true)) as typeof process.stdout.write;
    let code: number;
    try {
      code = await main(['node', 'edgekt', '--backend', 'cpu', 'bench', 'latency', '--model', dir, '--runs', '4', '--json']);
    } finally {
      process.stdout.write = write;
    }
    expect(code).toBe(0);
    const r = JSON.parse(lines.join('')) as { params: number; latencyP95Ms: number; macs: number };
    expect(r.params).toBe(m.countParams());
    expect(r.latencyP95Ms).toBeGreaterThan(0);
    expect(r.macs).toBeGreaterThan(0);
    // With --reference: both models in one interleaved run, their ratio, the spread and the load.
    const refDir = mkdtempSync(path.join(tmpdir(), 'edgekt-lat-ref-'));
    const ref = tiny(16);
    await saveModel(ref, refDir);
    lines.length = 0;
    process.stdout.write = ((s: string) => (lines.push(String(s)), true)) as typeof process.stdout.write;
    try {
      code = await main(['node', 'edgekt', '--backend', 'cpu', 'bench', 'latency', '--model', dir, '--reference', refDir, '--runs', '3', '--trials', '2', '--json']);
    } finally {
      process.stdout.write = write;
    }
    expect(code).toBe(0);
    const p = JSON.parse(lines.join('')) as { latencyP95Ms: number; ratioP95: number; latency: { trials: number }; reference: { params: number; latencyP95Ms: number }; load: object };
    expect(p.reference.params).toBe(ref.countParams());
    expect(p.ratioP95).toBeCloseTo(p.latencyP95Ms / p.reference.latencyP95Ms, 9);
    expect(p.latency.trials).toBe(2);
    expect(p.load).toBeDefined();
    ref.dispose();
    m.dispose();
  });
});
