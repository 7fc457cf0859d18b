import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { z } from 'zod';
import { systemClock, type Clock } from '../core/clock.js';
import { EdgektError } from '../core/errors.js';
import { loadDataset } from '../data/index.js';
import { evaluateAccuracy, graphFromModel, saveModel } from '../model/index.js';
import { buildReferenceTeacher } from '../model/reference-teacher.js';
import { trainSupervised, type DistillProgress } from './distill/index.js';

export const TEACHER_META = 'teacher.json';

/** What a cached reference teacher records beside its model, so it reports without retraining. */
export const TeacherMetaSchema = z.strictObject({
  data: z.string(),
  seed: z.number().int(),
  epochs: z.number().int().positive(),
  batchSize: z.number().int().positive(),
  trainSamples: z.number().int().nonnegative(),
  testSamples: z.number().int().nonnegative(),
  testAccuracy: z.number().min(0).max(1),
  params: z.number().int().positive(),
  macs: z.number().nonnegative(),
  trainSeconds: z.number().nonnegative(),
  backend: z.string(),
  /** Data-parallel training threads (absent: one). */
  workers: z.number().int().positive().optional(),
  createdAt: z.string(),
});
export type TeacherMeta = z.infer<typeof TeacherMetaSchema>;

/** The cache directory of the reference teacher for (data, seed) under a cache root. */
export function teacherCacheDir(root: string, data: string, seed: number): string {
  return path.join(root, 'teachers', `${data.replace(/[^A-Za-z0-9_.-]+/g, '_')}-${seed}`);
}

/** The cached teacher's record, or null when none is cached; an unreadable record is EDGEKT_ERR_CHECKPOINT. */
export async function readTeacherMeta(dir: string): Promise<TeacherMeta | null> {
  const file = path.join(dir, TEACHER_META);
  if (!existsSync(file) || !existsSync(path.join(dir, 'model.json'))) return null;
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `${file} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const r = TeacherMetaSchema.safeParse(json);
  if (!r.success) throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `${file}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}; retrain with force`);
  return r.data;
}

export interface EnsureTeacherOptions {
  /** Where the teacher is (or will be) cached. */
  dir: string;
  data: string;
  seed: number;
  epochs: number;
  batchSize: number;
  limit?: number;
  force?: boolean;
  /** Data-parallel training threads (distill's workers). Default 1. */
  workers?: number;
  /** Backend name recorded in the meta. */
  backend: string;
  /** Training progress, for a bar or log lines drawn by the caller. */
  onProgress?: (p: DistillProgress) => void;
  logger?: Logger;
  clock?: Clock;
}

/** Returns the cached reference teacher for (data, seed), training and caching it first when absent. */
export async function ensureTeacher(o: EnsureTeacherOptions): Promise<{ dir: string; meta: TeacherMeta; cached: boolean }> {
  const log = o.logger ?? pino({ level: 'silent' });
  const cached = o.force ? null : await readTeacherMeta(o.dir);
  if (cached) {
    log.info({ dir: o.dir }, 'teacher cached');
    return { dir: o.dir, meta: cached, cached: true };
  }
  const data = await loadDataset(o.data, { seed: o.seed, ...(o.limit ? { limit: o.limit } : {}) });
  const [h, w, c] = data.train.shape;
  const model = buildReferenceTeacher({ seed: o.seed, inputShape: [h, w, c], classes: data.train.numClasses });
  try {
    log.info({ dir: o.dir, data: o.data, epochs: o.epochs }, 'teacher training started');
    const r = await trainSupervised(model, data.train, { epochs: o.epochs, batchSize: o.batchSize, seed: o.seed, ...(o.workers && o.workers > 1 ? { workers: o.workers } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) });
    const graph = graphFromModel(model);
    await saveModel(model, o.dir);
    const meta: TeacherMeta = {
      data: o.data, seed: o.seed, epochs: o.epochs, batchSize: o.batchSize, trainSamples: data.train.count, testSamples: data.test.count,
      testAccuracy: evaluateAccuracy(model, data.test), params: graph.totalParams, macs: graph.totalMacs, trainSeconds: r.seconds,
      backend: o.backend, ...(o.workers && o.workers > 1 ? { workers: o.workers } : {}), createdAt: new Date((o.clock ?? systemClock).now()).toISOString(),
    };
    await writeFile(path.join(o.dir, TEACHER_META), JSON.stringify(meta, null, 2) + '\n');
    log.info({ dir: o.dir, testAccuracy: meta.testAccuracy, trainSeconds: meta.trainSeconds }, 'teacher trained');
    return { dir: o.dir, meta, cached: false };
  } finally {
    model.dispose();
  }
}
