import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { findStageEnds } from '../src/compress/distill/index.js';
import { buildReferenceStudent, buildReferenceTeacher } from '../src/model/reference-teacher.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const weightsOf = (m: tf.LayersModel): number[][] => m.getWeights().map((w) => Array.from(w.dataSync()));

describe('reference teacher', () => {
  it('is a VGG-style Fashion-MNIST net of hundreds of thousands to ~2 M parameters with a Flatten+Dense head', () => {
    const t = buildReferenceTeacher();
    expect(t.countParams()).toBeGreaterThan(300_000);
    expect(t.countParams()).toBeLessThan(2_000_000);
    expect(t.inputs[0]!.shape).toEqual([null, 28, 28, 1]);
    expect(t.outputs[0]!.shape).toEqual([null, 10]);
    const classes = t.layers.map((l) => l.getClassName());
    expect(classes).toContain('Flatten');
    expect(classes.filter((c) => c === 'Conv2D')).toHaveLength(6);
    expect(classes.filter((c) => c === 'BatchNormalization')).toHaveLength(6);
    expect(classes.at(-1)).toBe('Dense');
    expect(findStageEnds(t).map((s) => `${s.layerName}@${s.height}`)).toEqual(['s1_relu2@28', 's2_relu2@14', 's3_relu2@7']);
    const y = tf.tidy(() => (t.predict(tf.zeros([2, 28, 28, 1])) as tf.Tensor).shape);
    expect(y).toEqual([2, 10]);
    t.dispose();
  });

  it('is seeded: the same seed gives the same weights, another seed different ones', () => {
    const a = buildReferenceTeacher({ seed: 3 });
    const b = buildReferenceTeacher({ seed: 3 });
    const c = buildReferenceTeacher({ seed: 4 });
    expect(weightsOf(b)).toEqual(weightsOf(a));
    expect(weightsOf(c)[0]).not.toEqual(weightsOf(a)[0]);
    [a, b, c].forEach((m) => m.dispose());
  });

  it('the fixed separable student is at least 50x smaller and has the same stages', () => {
    const t = buildReferenceTeacher();
    const s = buildReferenceStudent();
    expect(t.countParams() / s.countParams()).toBeGreaterThan(50);
    expect(findStageEnds(s).map((e) => [e.height, e.channels])).toEqual(findStageEnds(t).map((e) => [e.height, e.channels]));
    t.dispose();
    s.dispose();
  });
});

describe('teacher cache', () => {
  it('trains once with progress, then reuses the cache; a corrupt record is EDGEKT_ERR_CHECKPOINT', async () => {
    const { ensureTeacher, readTeacherMeta, TEACHER_META } = await import('../src/compress/teacher-cache.js');
    const { initBackend } = await import('../src/runtime/backend.js');
    await initBackend('wasm'); // the 878 k-parameter teacher trains far faster than on the pure-JS cpu backend
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'edgekt-teacher-')), 't');
    let steps = 0;
    const o = { dir, data: 'mnist', seed: 0, epochs: 1, batchSize: 32, limit: 40, backend: 'wasm', clock: { now: () => Date.UTC(2024, 0, 2), hrMs: () => 0 } };
    const first = await ensureTeacher({ ...o, onProgress: () => void steps++ });
    expect(first.cached).toBe(false);
    expect(steps).toBeGreaterThan(0);
    expect(first.meta.createdAt).toBe('2024-01-02T00:00:00.000Z');
    expect(first.meta.params).toBe(buildReferenceTeacher().countParams());
    const again = await ensureTeacher({ ...o, onProgress: () => void steps++ });
    expect(again).toMatchObject({ cached: true, meta: first.meta });
    writeFileSync(path.join(dir, TEACHER_META), JSON.stringify({ ...first.meta, testAccuracy: 'high' }));
    await expect(readTeacherMeta(dir)).rejects.toMatchObject({ code: 'EDGEKT_ERR_CHECKPOINT' });
  }, 120_000);
});
