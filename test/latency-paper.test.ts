import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { interleavedTrials } from '../src/bench/latency.js';
import { evaluateAccuracy } from '../src/model/index.js';
import { paperMarkdown, paperTable } from '../src/bench/paper-bench.js';
import type { ImageSet } from '../src/data/types.js';
import { initBackend } from '../src/runtime/backend.js';

function net(filters: number, units: number): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [6, 6, 1], filters, kernelSize: 3, padding: 'same', activation: 'relu' }));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units }));
  m.add(tf.layers.dense({ units: 2 }));
  return m;
}

describe('paper bench table', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('accuracy counts argmax hits', () => {
    const m = tf.sequential();
    m.add(tf.layers.flatten({ inputShape: [1, 1, 2] }));
    const set: ImageSet = { x: new Float32Array([1, 0, 0, 1, 1, 0, 0, 1]), y: new Int32Array([0, 1, 1, 1]), count: 4, shape: [1, 1, 2], numClasses: 2, classNames: ['a', 'b'] };
    expect(evaluateAccuracy(m, set, 3)).toBeCloseTo(0.75);
  });

  it('ratios follow the measured figures; nothing leaks', () => {
    const t = net(16, 32);
    const s = net(2, 4);
    const set: ImageSet = { x: Float32Array.from({ length: 10 * 36 }, (_, i) => Math.sin(i)), y: new Int32Array(10).map((_, i) => i % 2), count: 10, shape: [6, 6, 1], numClasses: 2, classNames: ['a', 'b'] };
    const before = tf.memory().numTensors;
    const run = interleavedTrials([t, s], { runs: 4, trials: 3, warmup: 1 });
    for (const m of run.models) {
      expect(m.latency.trials).toBe(3);
      expect(m.latency.p50.min).toBeLessThanOrEqual(m.latencyP50Ms);
      expect(m.latency.p50.max).toBeGreaterThanOrEqual(m.latencyP50Ms);
    }
    const p = paperTable(t, s, set, 'cpu', 20, s);
    expect(p.runs).toBe(20);
    expect(p.trials).toBe(5);
    expect(p.latencyRatioVsDeployedTeacher).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
    expect(p.teacher.params).toBe(t.countParams());
    expect(p.paramsRatio).toBeCloseTo(t.countParams() / s.countParams());
    expect(p.macsRatio).toBeGreaterThan(1);
    expect(p.latencyRatio).toBeCloseTo(p.teacher.latencyP50Ms / p.student.latencyP50Ms);
    expect(p.accuracyDropPoints).toBeCloseTo((p.teacherAccuracy - p.studentAccuracy) * 100);
    expect(p.meetsTargets).toBe(p.paramsRatio >= 50 && p.latencyRatio >= 3.2 && p.accuracyDropPoints <= 1);
    expect(p.meetsMargins).toBe(p.paramsRatio >= 60 && p.latencyRatio >= 3.6 && p.accuracyDropPoints <= 0.7);
    expect(paperMarkdown(p)).toContain(`| every target met | | | | ${p.meetsTargets ? 'yes' : 'no'} | ${p.meetsMargins ? 'yes' : 'no'} |`);
    expect(paperMarkdown(p)).toContain('| parameters |');
    expect(p.computeBound.macsPerMs).toBeGreaterThan(0);
    expect(p.computeBound.studentBoundMs).toBeCloseTo(p.student.macs / p.computeBound.macsPerMs);
    expect(p.computeBound.studentOverBound).toBeCloseTo(p.student.latencyP50Ms / p.computeBound.studentBoundMs);
    expect(paperMarkdown(p)).toContain('p50 ÷ bound');
    expect(p.meetsBeyond).toBeUndefined();
    expect(paperMarkdown(p)).not.toContain('goal beyond the paper');
    const b = paperTable(t, s, set, 'cpu', 10, undefined, 2, true);
    expect(b.meetsBeyond).toBe(b.paramsRatio >= 100 && b.latencyRatio >= 5 && b.accuracyDropPoints <= 1);
    expect(paperMarkdown(b)).toContain(`| goal beyond the paper: ≥ 100× params, ≥ 5× latency, ≤ 1 point | | | | ${b.meetsBeyond ? 'met' : 'not met'} | |`);
    expect(tf.memory().numTensors).toBe(before);
    t.dispose();
    s.dispose();
  });
});
