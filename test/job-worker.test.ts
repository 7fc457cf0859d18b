import { mkdirSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PipelineEvent } from '../src/compress/pipeline.js';
import type { CompressJobSpecInput } from '../src/config/job-spec.js';
import { runCompressJobInWorker, type LogLine } from '../src/jobs/index.js';
import { loadModelFromBuffers, saveModel, WEIGHTS_BIN } from '../src/model/index.js';
import { initBackend } from '../src/runtime/backend.js';
import { tmpDir, writeIdxPair } from './helpers/data-fixtures.js';
import { bnTeacher } from './helpers/model-fixtures.js';


let root = '';
let spec: CompressJobSpecInput;

describe('runCompressJobInWorker', () => {
  beforeAll(async () => {
    await initBackend('cpu');
    root = tmpDir('edgekt-job-worker-');
    const data = path.join(root, 'data');
    mkdirSync(data);
    writeIdxPair(data, 'train', 256, { h: 16, w: 16, classes: 10 });
    writeIdxPair(data, 't10k', 40, { h: 16, w: 16, classes: 10 });
    const t = bnTeacher({ size: 16, classes: 10, filters: [16, 32], hidden: 64 });
    await saveModel(t, path.join(root, 'teacher'));
    t.dispose();
    spec = {
      teacher: path.join(root, 'teacher'), data: `idx:${data}`, seed: 1, width: 0.5, distillEpochs: 2, finalEpochs: 1,
      briefSamples: 64, batchSize: 32, step: 0.3, maxIterations: 2, minChannels: 2, roundTo: 2, runs: 20,
      profile: { name: 'p-worker', match: { arch: ['x64', 'arm64'] }, budgets: { modelSizeKB: '0.01x' }, runtime: { backend: 'wasm', threads: 1 }, training: { batchSize: 32, maxRssMB: 2000, maxTemperatureC: 90 } },
    };
  });

  it('runs distillation and measurements off the main thread: a 100 ms timer never lags 250 ms', async () => {
    let last = performance.now();
    let worstLag = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worstLag = Math.max(worstLag, now - last - 100);
      last = now;
    }, 100);
    const events: PipelineEvent[] = [];
    const logs: LogLine[] = [];
    try {
      const r = await runCompressJobInWorker({ ...spec, out: path.join(root, 'out') }, {
        checkpoints: { kind: 'dir', root: path.join(root, 'ckpt-ok') }, backend: 'wasm',
        onEvent: (e) => void events.push(e), onLog: (l) => void logs.push(l),
      });
      expect(r.report.backend).toBe('wasm');
      expect(r.report.history.length).toBeGreaterThanOrEqual(2);
      expect(r.met).toBe(r.report.met);
      // The student crosses as bytes and loads.
      const m = (await loadModelFromBuffers(r.student.modelJson, { [WEIGHTS_BIN]: r.student.weights })).model;
      expect(m.countParams()).toBe(r.report.student.params);
      const y = tf.tidy(() => (m.predict(tf.zeros([1, 16, 16, 1])) as tf.Tensor).shape);
      expect(y).toEqual([1, 10]);
      m.dispose();
    } finally {
      clearInterval(timer);
    }
    expect(events.some((e) => e.type === 'progress' && e.progress.stage === 'distill')).toBe(true);
    expect(events.filter((e) => e.type === 'iteration').length).toBeGreaterThanOrEqual(2);
    expect(logs.some((l) => l.msg === 'compress job finished')).toBe(true);
    expect(worstLag).toBeLessThan(250);
  }, 120_000);

  it('cancelled mid-distillation rejects with EDGEKT_ERR_ABORTED', async () => {
    const ac = new AbortController();
    const run = runCompressJobInWorker(spec, {
      checkpoints: { kind: 'dir', root: path.join(root, 'ckpt-abort') }, backend: 'wasm', signal: ac.signal,
      onEvent: (e) => {
        if (e.type === 'progress' && e.progress.stage === 'distill' && e.progress.done === 2) ac.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'EDGEKT_ERR_ABORTED' });
  }, 60_000);

  it('a bad spec rejects with EDGEKT_ERR_JOB_SPEC; a worker-side failure keeps its code', async () => {
    await expect(runCompressJobInWorker({ ...spec, step: 3 }, { checkpoints: { kind: 'dir', root: path.join(root, 'ckpt-bad') } })).rejects.toMatchObject({ code: 'EDGEKT_ERR_JOB_SPEC' });
    await expect(
      runCompressJobInWorker({ ...spec, teacher: path.join(root, 'no-teacher') }, { checkpoints: { kind: 'dir', root: path.join(root, 'ckpt-missing') }, backend: 'wasm' }),
    ).rejects.toMatchObject({ code: 'EDGEKT_ERR_MODEL_FORMAT' });
  }, 60_000);
});
