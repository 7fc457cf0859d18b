import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { archBench, forwardThroughput } from '../src/bench/arch-bench.js';
import { lighten } from '../src/compress/lighten/index.js';
import { graphFromModel } from '../src/model/index.js';
import { buildReferenceTeacher } from '../src/model/reference-teacher.js';

describe('bench arch', () => {
  it('rows carry params, MACs, ops, the teacher-relative speed-up and the compute bound; no tensor leaks', async () => {
    await tf.setBackend('cpu');
    const teacher = buildReferenceTeacher({ seed: 0, inputShape: [12, 12, 1], widths: [4, 8], denseUnits: 16 });
    const student = (await lighten(teacher, { widthMultiplier: 0.5, depth: 1 })).student;
    const before = tf.memory().numTensors;
    const r = archBench([{ name: 't', model: teacher }, { name: 's', model: student }], { runs: 3, trials: 2, warmup: 1, throughputBatches: [1, 4] });
    expect(tf.memory().numTensors).toBe(before);
    const [t, s] = r.rows as [typeof r.rows[0], typeof r.rows[0]];
    expect(t.speedup).toBe(1);
    expect([1, 4]).toContain(r.throughputBatch);
    expect(s.params).toBe(graphFromModel(student).totalParams);
    expect(s.ops).toBe(student.layers.length - 1);
    expect(s.boundMs).toBeCloseTo(s.macs / r.macsPerMs, 9);
    expect(s.overBound).toBeCloseTo(s.latencyP50Ms / s.boundMs, 9);
    expect(s.macs).toBeLessThan(t.macs);
    expect(forwardThroughput(teacher, t.macs, 2, 2)).toBeGreaterThan(0);
    teacher.dispose();
    student.dispose();
  });
});
