import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CostProbe } from '../src/compress/budget.js';
import { lighten } from '../src/compress/lighten/index.js';
import { runCompressJob, runFingerprint, type CompressJobResult } from '../src/compress/job/index.js';
import type { PipelineEvent } from '../src/compress/pipeline.js';
import { parseCompressJobSpec, type CompressJobSpecInput } from '../src/config/job-spec.js';
import { loadModelFromBuffers, saveModel, WEIGHTS_BIN } from '../src/model/index.js';
import { initBackend } from '../src/runtime/backend.js';
import { createDirCheckpointStore } from '../src/store/dir-checkpoint-store.js';
import { tmpDir, writeIdxPair } from './helpers/data-fixtures.js';
import { bnTeacher } from './helpers/model-fixtures.js';
import { createFakeProbe } from './helpers/fake-probe.js';

/** Deterministic stand-in for the device, so budget decisions repeat exactly. */
const probe: CostProbe = createFakeProbe();

let root = '';
let base: CompressJobSpecInput;


async function weightsOf(r: CompressJobResult): Promise<Float32Array[]> {
  const m = (await loadModelFromBuffers(r.student.modelJson, { [WEIGHTS_BIN]: r.student.weights })).model;
  const w = m.getWeights().map((t) => t.dataSync() as Float32Array);
  m.dispose();
  return w;
}

describe('runCompressJob', () => {
  beforeAll(async () => {
    await initBackend('cpu');
    root = tmpDir('edgekt-job-');
    const data = path.join(root, 'data');
    mkdirSync(data);
    writeIdxPair(data, 'train', 64, { h: 8, w: 8, classes: 3 });
    writeIdxPair(data, 't10k', 16, { h: 8, w: 8, classes: 3 });
    const t = bnTeacher({ size: 8, classes: 3, filters: [8, 32] });
    await saveModel(t, path.join(root, 'teacher'));
    const l = await lighten(t, { widthMultiplier: 1, seed: 5 });
    const kb = (l.student.countParams() * 4) / 1024;
    l.student.dispose();
    t.dispose();
    const profile = { name: 'p-job', match: { arch: ['x64', 'arm64'] }, budgets: { modelSizeKB: 0.45 * kb }, runtime: { backend: 'cpu' as const, threads: 1 }, training: { batchSize: 16, maxRssMB: 500, maxTemperatureC: 80 } };
    base = {
      teacher: path.join(root, 'teacher'), data: `idx:${data}`, profile, seed: 5, width: 1, distillEpochs: 1, finalEpochs: 1,
      briefSamples: 16, batchSize: 16, step: 0.3, maxIterations: 4, minChannels: 2, roundTo: 2,
    };
  });

  it('names every bad field of a spec under EDGEKT_ERR_JOB_SPEC, and applies the CLI defaults', () => {
    let err: unknown;
    try {
      parseCompressJobSpec({ teacher: 't', data: 'mnist', profile: 'x86-64-dev', step: 2, importance: 'l3', transfer: 'telepathy', skipLayers: 'a,b', extra: 1 });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'EDGEKT_ERR_JOB_SPEC' });
    const paths = (err as { details: { issues: Array<{ path: string }> } }).details.issues.map((i) => i.path).sort();
    expect(paths).toEqual(['(spec)', 'importance', 'skipLayers', 'step', 'transfer']);
    const s = parseCompressJobSpec({ teacher: 't', data: 'mnist', profile: 'x86-64-dev' });
    expect(s).toMatchObject({ seed: 0, width: 0.5, distillEpochs: 3, finalEpochs: 2, schedule: 'joint', temperature: 2, learningRate: 1e-3, transfer: 'multilevel-noise', hintLoss: 'mse', hintPoint: 'post-relu', step: 0.1, maxIterations: 30, runs: 30, resume: false, skipLayers: [] });
  });

  it('transfer picks what the student learns (kd, multilevel, multilevel-noise train different students) and learningRate its step', async () => {
    const one = { ...base, maxIterations: 0 };
    const run = async (extra: Partial<CompressJobSpecInput>, dir: string): Promise<Float32Array[]> =>
      weightsOf(await runCompressJob({ ...one, ...extra }, { checkpoints: createDirCheckpointStore(path.join(root, dir)), probe }));
    const noisy = await run({}, 't-noisy');
    const plain = await run({ transfer: 'multilevel' }, 't-ml');
    const kd = await run({ transfer: 'kd', schedule: 'fitnets' }, 't-kd');
    const kdAgain = await run({ transfer: 'kd' }, 't-kd2');
    const fast = await run({ learningRate: 1e-2 }, 't-lr');
    const diff = (a: Float32Array[], b: Float32Array[]): number => Math.max(...a.map((w, i) => Math.max(...w.map((v, j) => Math.abs(v - b[i]![j]!)))));
    expect(diff(noisy, plain)).toBeGreaterThan(1e-4);
    expect(diff(noisy, fast)).toBeGreaterThan(1e-4);
    expect(diff(plain, kd)).toBeGreaterThan(1e-4);
    // kd has no hints to stage, so the schedule makes no difference.
    expect(diff(kd, kdAgain)).toBeLessThanOrEqual(1e-6);
  }, 120_000);

  it('the run identity covers the backend', async () => {
    const parts = { settings: { a: 1 }, profile: { name: 'p' } };
    const dir = path.join(root, 'teacher');
    expect(await runFingerprint(dir, { ...parts, backend: 'cpu' })).toBe(await runFingerprint(dir, { ...parts, backend: 'cpu' }));
    expect(await runFingerprint(dir, { ...parts, backend: 'wasm' })).not.toBe(await runFingerprint(dir, { ...parts, backend: 'cpu' }));
  });

  it('aborted at every stage and resumed each time, ends with the student of an uninterrupted run', async () => {
    const full = await runCompressJob(base, { checkpoints: createDirCheckpointStore(path.join(root, 'full')), probe });
    expect(full.met).toBe(true);
    const iterations = full.report.history.map((h) => h.iteration);
    expect(full.report.history.filter((h) => h.kind === 'prune').length).toBeGreaterThanOrEqual(2);

    // One abort point after another; each run resumes the previous one and stops at the next point.
    type Point = { name: string; hit: (e: PipelineEvent) => boolean };
    const points: Point[] = [
      { name: 'teacher', hit: (e) => e.type === 'stage-start' && e.stage === 'teacher' },
      { name: 'lighten', hit: (e) => e.type === 'stage-start' && e.stage === 'lighten' },
      { name: 'distill', hit: (e) => e.type === 'progress' && e.progress.stage === 'distill' && e.progress.done === 2 },
      ...iterations.slice(0, -1).map((i) => ({ name: `prune ${i}`, hit: (e: PipelineEvent) => e.type === 'iteration' && e.record.iteration === i })),
      { name: 'final', hit: (e) => e.type === 'progress' && e.progress.stage === 'final fine-tune' && e.progress.done === 1 },
    ];
    const store = createDirCheckpointStore(path.join(root, 'aborted'));
    const before = tf.memory().numTensors;
    for (const [k, p] of points.entries()) {
      const ac = new AbortController();
      const run = runCompressJob({ ...base, resume: k > 0 }, { checkpoints: store, probe, signal: ac.signal, onEvent: (e) => p.hit(e) && ac.abort() });
      await expect(run, p.name).rejects.toMatchObject({ code: 'EDGEKT_ERR_ABORTED' });
    }
    expect(tf.memory().numTensors).toBe(before);
    const resumed = await runCompressJob({ ...base, resume: true }, { checkpoints: store, probe });
    expect(resumed.report.history.map((h) => [h.kind, h.figures.params, h.figures.accuracy, JSON.stringify(h.plan)])).toEqual(
      full.report.history.map((h) => [h.kind, h.figures.params, h.figures.accuracy, JSON.stringify(h.plan)]),
    );
    const a = await weightsOf(full);
    const b = await weightsOf(resumed);
    expect(b.map((w) => w.length)).toEqual(a.map((w) => w.length));
    const maxDiff = Math.max(...a.map((w, i) => Math.max(...w.map((v, j) => Math.abs(v - b[i]![j]!)))));
    expect(maxDiff).toBeLessThanOrEqual(1e-6);
  }, 300_000);

  it('a corrupt checkpoint meta is EDGEKT_ERR_CHECKPOINT on resume, never a cast', async () => {
    const dir = path.join(root, 'corrupt');
    const store = createDirCheckpointStore(dir);
    const ac = new AbortController();
    await expect(
      runCompressJob(base, { checkpoints: store, probe, signal: ac.signal, onEvent: (e) => e.type === 'stage-start' && e.stage === 'lighten' && ac.abort() }),
    ).rejects.toMatchObject({ code: 'EDGEKT_ERR_ABORTED' });
    writeFileSync(path.join(dir, 'teacher', 'meta.json'), JSON.stringify({ figures: { params: 'many' }, budgets: {} }));
    await expect(runCompressJob({ ...base, resume: true }, { checkpoints: store, probe })).rejects.toMatchObject({ code: 'EDGEKT_ERR_CHECKPOINT' });
    writeFileSync(path.join(dir, 'run', 'meta.json'), JSON.stringify({ fingerprint: 42 }));
    await expect(runCompressJob({ ...base, resume: true }, { checkpoints: store, probe })).rejects.toMatchObject({ code: 'EDGEKT_ERR_CHECKPOINT' });
  });
});
