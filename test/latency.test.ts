import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLatencyProbe, measureModelCost, percentile } from '../src/bench/latency.js';
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
    const cost = await measureModelCost(m, { warmup: 2, runs: 10, clock });
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
    m.dispose();
  });
});
