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
  /** Training recipe (absent: 'quick', the 3-epoch one). */
  preset: z.enum(['quick', 'strong']).optional(),
  /** Trained with random flips and shifts (absent: no). */
  augment: z.boolean().optional(),
  createdAt: z.string(),
});
export type TeacherMeta = z.infer<typeof TeacherMetaSchema>;

export type TeacherPreset = 'quick' | 'strong';

/**
 * Teacher training recipes. 'quick': 3 epochs, no augmentation, the teacher quick benchmark runs
 * were built on. 'strong': flips and ±2 px shifts, a cosine rate over more epochs, for a teacher
 * above 93 % on Fashion-MNIST (docs/benchmarks.md "Reference teacher (issue 13, item 3)").
 */
export const TEACHER_PRESETS: Record<TeacherPreset, { epochs: number; batchSize: number; augment: boolean }> = {
  quick: { epochs: 3, batchSize: 64, augment: false },
  strong: { epochs: 15, batchSize: 64, augment: true },
};

/**
 * The cache directory of the reference teacher for (data, seed) under a cache root; the strong
 * preset has its own key (teachers/<data>-strong-<seed>) so the two never overwrite each other.
 */
export function teacherCacheDir(root: string, data: string, seed: number, preset: TeacherPreset = 'quick'): string {
  const name = data.replace(/[^A-Za-z0-9_.-]+/g, '_');
  return path.join(root, 'teachers', preset === 'quick' ? `${name}-${seed}` : `${name}-${preset}-${seed}`);
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
  /** Random flips and shifts of every batch. Default false. */
  augment?: boolean;
  /** Recorded in the meta (absent: 'quick'). */
  preset?: TeacherPreset;
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
    const onProgress = (p: DistillProgress): void => {
      o.onProgress?.(p);
      if (p.step === p.stepsPerEpoch) log.info({ epoch: p.epoch + 1, epochs: p.epochs, loss: p.loss.total, globalStep: p.globalStep }, 'teacher epoch done');
    };
    const r = await trainSupervised(model, data.train, {
      epochs: o.epochs, batchSize: o.batchSize, seed: o.seed, lrSchedule: 'cosine', onProgress,
      ...(o.workers && o.workers > 1 ? { workers: o.workers } : {}), ...(o.augment ? { augment: true } : {}),
    });
    const graph = graphFromModel(model);
    await saveModel(model, o.dir);
    const meta: TeacherMeta = {
      data: o.data, seed: o.seed, epochs: o.epochs, batchSize: o.batchSize, trainSamples: data.train.count, testSamples: data.test.count,
      testAccuracy: evaluateAccuracy(model, data.test), params: graph.totalParams, macs: graph.totalMacs, trainSeconds: r.seconds,
      backend: o.backend, ...(o.workers && o.workers > 1 ? { workers: o.workers } : {}),
      ...(o.preset && o.preset !== 'quick' ? { preset: o.preset } : {}), ...(o.augment ? { augment: true } : {}), createdAt: new Date((o.clock ?? systemClock).now()).toISOString(),
    };
    await writeFile(path.join(o.dir, TEACHER_META), JSON.stringify(meta, null, 2) + '\n');
    log.info({ dir: o.dir, testAccuracy: meta.testAccuracy, trainSeconds: meta.trainSeconds }, 'teacher trained');
    return { dir: o.dir, meta, cached: false };
  } finally {
    model.dispose();
  }
}
