import { mkdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCompressJob } from '../src/compress/job/index.js';
import { EdgektError } from '../src/core/errors.js';
import { initBackend } from '../src/runtime/backend.js';
import { loadModelFromBuffers, saveModel, WEIGHTS_BIN } from '../src/model/index.js';
import { createDirCheckpointStore } from '../src/store/dir-checkpoint-store.js';
import { tmpDir, writeIdxPair } from './helpers/data-fixtures.js';
import { bnTeacher } from './helpers/model-fixtures.js';
import { createFakeProbe } from './helpers/fake-probe.js';

let teacherDir = '';
let dataDir = '';

beforeAll(async () => {
  await initBackend('cpu');
  const root = tmpDir('edgekt-distill-resume-');
  teacherDir = `${root}/teacher`;
  const m = bnTeacher({ size: 8, classes: 3, filters: [8, 32] });
  await saveModel(m, teacherDir);
  m.dispose();
  dataDir = `${root}/data`;
  mkdirSync(dataDir, { recursive: true });
  writeIdxPair(dataDir, 'train', 96, { h: 8, w: 8, classes: 3 });
  writeIdxPair(dataDir, 't10k', 24, { h: 8, w: 8, classes: 3 });
});

const spec = (out: string, resume: boolean) => ({
  teacher: teacherDir, data: `idx:${dataDir}`, out, resume, seed: 3, distillEpochs: 3, finalEpochs: 1, maxIterations: 1, step: 0.3, batchSize: 16,
  briefSamples: 32, checkpointSeconds: 0.001,
  profile: { name: 't', match: { arch: ['x64', 'arm64'] }, budgets: { modelSizeKB: '0.9x' }, runtime: { backend: 'cpu' as const, threads: 1 }, training: { batchSize: 16, maxRssMB: 9000, maxTemperatureC: 100 } },
});

async function weightsOf(student: { modelJson: string; weights: Uint8Array }): Promise<Float32Array[]> {
  const m = (await loadModelFromBuffers(student.modelJson, { [WEIGHTS_BIN]: student.weights })).model;
  const w = m.getWeights().map((t) => t.dataSync().slice() as Float32Array);
  m.dispose();
  return w;
}

describe('a job killed inside the distillation stage', () => {
  it('resumes from the in-stage checkpoint, not from the start of the stage, and ends with the same student', async () => {
    const clean = await runCompressJob(spec(tmpDir('edgekt-a-'), false), { checkpoints: createDirCheckpointStore(tmpDir('edgekt-ca-')), probe: createFakeProbe() });

    const root = tmpDir('edgekt-cb-');
    const store = createDirCheckpointStore(root);
    const controller = new AbortController();
    let saves = 0;
    const first = runCompressJob(spec(tmpDir('edgekt-b-'), false), {
      checkpoints: store, probe: createFakeProbe(), signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'progress' && e.progress.detail === 'checkpoint saved' && ++saves === 7) controller.abort();
      },
    });
    await expect(first).rejects.toSatisfy((e) => e instanceof EdgektError && e.code === 'EDGEKT_ERR_ABORTED');
    expect(await store.list()).toContain('distill-progress');
    expect(await store.list()).not.toContain('distill');

    let firstStep = -1;
    const resumed = await runCompressJob(spec(tmpDir('edgekt-c-'), true), {
      checkpoints: store, probe: createFakeProbe(),
      onEvent: (e) => {
        if (e.type === 'progress' && e.progress.stage === 'distill' && firstStep < 0) firstStep = e.progress.done;
      },
    });
    expect(firstStep).toBeGreaterThan(7);
    expect(await store.list()).not.toContain('distill-progress');
    const [a, b] = [await weightsOf(clean.student), await weightsOf(resumed.student)];
    expect(b.length).toBe(a.length);
    let diff = 0;
    a.forEach((w, i) => w.forEach((v, j) => (diff = Math.max(diff, Math.abs(v - b[i]![j]!)))));
    expect(diff).toBeLessThan(1e-5);
    expect(tf.memory().numTensors).toBeLessThan(200);
  }, 120_000);
});
