import { describe, expect, it } from 'vitest';
import { formatDistillBench, meanStd, runDistillBench, summarize, type MethodRun } from '../src/bench/distill-bench.js';

describe('distill bench statistics', () => {
  it('mean and sample std (n - 1) match hand-computed values', () => {
    const r = meanStd([0.8, 0.9, 0.7]);
    expect(r.mean).toBeCloseTo(0.8, 10);
    expect(r.std).toBeCloseTo(Math.sqrt((0 + 0.01 + 0.01) / 2), 10);
    expect(meanStd([0.5]).std).toBe(0);
  });

  it('loss vs teacher and the relative claim (loss_b - loss_d) / loss_b', () => {
    const runs: MethodRun[] = [
      { method: 'kd', seed: 0, accuracy: 0.8, seconds: 1 },
      { method: 'kd', seed: 1, accuracy: 0.82, seconds: 1 },
      { method: 'multilevel-noise', seed: 0, accuracy: 0.86, seconds: 1 },
      { method: 'multilevel-noise', seed: 1, accuracy: 0.86, seconds: 1 },
    ];
    const s = summarize(runs, 0.9);
    const lossB = 0.9 - 0.81;
    const lossD = 0.9 - 0.86;
    expect(s.methods.map((m) => m.method)).toEqual(['kd', 'multilevel-noise']);
    expect(s.methods[0]!.lossVsTeacher.mean).toBeCloseTo(lossB, 10);
    expect(s.claim!.relativeReduction).toBeCloseTo((lossB - lossD) / lossB, 10);
    expect(s.claim!.holds).toBe((lossB - lossD) / lossB >= 0.3);
    const none = summarize(runs.map((r) => ({ ...r, accuracy: 0.95 })), 0.9);
    expect(none.claim!.relativeReduction).toBeNull();
  });

  it('runs every method for every seed, seed-major, and formats a markdown table', async () => {
    const order: string[] = [];
    const r = await runDistillBench({
      seeds: [0, 1],
      teacherAccuracy: 0.9,
      run: async (method, seed) => {
        order.push(`${seed}:${method}`);
        return { accuracy: 0.5 + seed / 10 + method.length / 100, seconds: 2 };
      },
    });
    expect(order).toEqual(['0:labels', '0:kd', '0:multilevel', '0:multilevel-noise', '1:labels', '1:kd', '1:multilevel', '1:multilevel-noise']);
    expect(r.runs).toHaveLength(8);
    const lines = formatDistillBench(r);
    expect(lines.filter((l) => l.startsWith('| ('))).toHaveLength(4);
    expect(lines.join('\n')).toContain('Relative claim');
  });
});
