import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { distill, trainSupervised } from '../../compress/distill/index.js';
import { lighten } from '../../compress/lighten/index.js';
import { PIPELINE_DISTILL } from '../../compress/pipeline/stages.js';
import { loadDataset, shuffledIndices, subset, type ImageSet } from '../../data/index.js';
import { evaluateAccuracy, loadModel, saveModel } from '../../model/index.js';
import { buildReferenceTeacher } from '../../model/reference-teacher.js';

/**
 * The server side of the federated bench, before any round: disjoint server / client / test data,
 * a reference teacher trained on the server split, and the global base (lightened, distilled on
 * the server split, not pruned). Teacher and base are cached by their settings.
 */

export interface SetupSettings {
  data: string;
  /** Training images the server holds (teacher and base); disjoint from the clients'. */
  serverSamples: number;
  /** Training images dealt to the clients (Dirichlet), from the rest. */
  clientSamples: number;
  /** Fixed subset of the test split (seeded pick) every accuracy is measured on. */
  testSamples: number;
  teacherEpochs: number;
  baseEpochs: number;
  /** Lighten width multiplier of the base. */
  width: number;
  cacheDir: string;
}

export interface BenchSetup {
  server: ImageSet;
  pool: ImageSet;
  test: ImageSet;
  teacher: tf.LayersModel;
  base: tf.LayersModel;
  /** On `test`; NaN when prepareBench was told not to evaluate. */
  teacherAccuracy: number;
  baseAccuracy: number;
  cached: { teacher: boolean; base: boolean };
  seconds: { teacher: number; base: number };
}

async function cachedModel(dir: string, build: () => Promise<tf.LayersModel>): Promise<{ model: tf.LayersModel; cached: boolean; seconds: number }> {
  if (existsSync(path.join(dir, 'model.json'))) return { model: (await loadModel(dir)).model, cached: true, seconds: Number(JSON.parse(await readFile(path.join(dir, 'built.json'), 'utf8')).seconds) };
  const t0 = performance.now();
  const model = await build();
  const seconds = (performance.now() - t0) / 1000;
  await saveModel(model, dir);
  await writeFile(path.join(dir, 'built.json'), JSON.stringify({ seconds }) + '\n');
  return { model, cached: false, seconds };
}

/** Data splits, the cached (or newly trained) teacher and base; `evaluate: false` skips their test accuracy (--jobs children). */
export async function prepareBench(s: SetupSettings, log: (line: string) => void, opts: { evaluate?: boolean } = {}): Promise<BenchSetup> {
  const all = await loadDataset(s.data, { seed: 0 });
  const order = shuffledIndices(all.train.count, 12345);
  const server = subset(all.train, order.subarray(0, s.serverSamples));
  const pool = subset(all.train, order.subarray(s.serverSamples, s.serverSamples + s.clientSamples));
  const test = subset(all.test, shuffledIndices(all.test.count, 54321).subarray(0, s.testSamples));
  const tag = `${s.data.replace(/[^A-Za-z0-9_.-]+/g, '_')}-n${s.serverSamples}`;
  log(`teacher: ${s.teacherEpochs} epochs on ${server.count} server images`);
  const teacher = await cachedModel(path.join(s.cacheDir, `teacher-${tag}-e${s.teacherEpochs}`), async () => {
    const [h, w, c] = server.shape;
    const m = buildReferenceTeacher({ seed: 0, inputShape: [h, w, c], classes: server.numClasses });
    await trainSupervised(m, server, { epochs: s.teacherEpochs, batchSize: 64, seed: 0 });
    return m;
  });
  log(`base: lighten (width ${s.width}) + ${s.baseEpochs} epochs of distillation on the server images`);
  const base = await cachedModel(path.join(s.cacheDir, `base-${tag}-e${s.teacherEpochs}-w${s.width}-d${s.baseEpochs}`), async () => {
    const m = (await lighten(teacher.model, { seed: 0, widthMultiplier: s.width })).student;
    await distill(teacher.model, m, server, { schedule: 'joint', temperature: PIPELINE_DISTILL.temperature, epochs: s.baseEpochs, batchSize: 64, seed: 0 });
    return m;
  });
  return {
    server, pool, test, teacher: teacher.model, base: base.model,
    teacherAccuracy: opts.evaluate === false ? NaN : evaluateAccuracy(teacher.model, test),
    baseAccuracy: opts.evaluate === false ? NaN : evaluateAccuracy(base.model, test),
    cached: { teacher: teacher.cached, base: base.cached }, seconds: { teacher: teacher.seconds, base: base.seconds },
  };
}
