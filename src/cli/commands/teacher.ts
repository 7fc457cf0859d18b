import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { evaluateAccuracy, trainSupervised } from '../../compress/distill/index.js';
import { EdgektError } from '../../core/errors.js';
import { loadDataset } from '../../data/index.js';
import { graphFromModel, saveModel } from '../../model/index.js';
import { buildReferenceTeacher } from '../../model/reference-teacher.js';
import { action, parseIntOption, printJson, type CliContext } from '../context.js';
import { createTrainingBar } from './distill.js';

export const TEACHER_META = 'teacher.json';

/** What `teacher train` records next to the model, so a cached teacher reports without retraining. */
export interface TeacherMeta {
  data: string;
  seed: number;
  epochs: number;
  batchSize: number;
  trainSamples: number;
  testSamples: number;
  testAccuracy: number;
  params: number;
  macs: number;
  trainSeconds: number;
  backend: string;
  createdAt: string;
}

/** Cache root: $EDGEKT_CACHE, else .cache/ under the current directory (the project when run from it). */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.EDGEKT_CACHE ? path.resolve(env.EDGEKT_CACHE) : path.resolve('.cache');
}

export function teacherDir(data: string, seed: number, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheRoot(env), 'teachers', `${data.replace(/[^A-Za-z0-9_.-]+/g, '_')}-${seed}`);
}

export async function readTeacherMeta(dir: string): Promise<TeacherMeta | null> {
  const file = path.join(dir, TEACHER_META);
  if (!existsSync(file) || !existsSync(path.join(dir, 'model.json'))) return null;
  return JSON.parse(await readFile(file, 'utf8')) as TeacherMeta;
}

export interface EnsureTeacherOptions {
  data: string;
  seed: number;
  epochs: number;
  batchSize: number;
  limit?: number;
  out?: string;
  force?: boolean;
}

/** Returns the cached reference teacher for (data, seed), training and caching it first when absent. */
export async function ensureTeacher(ctx: CliContext, o: EnsureTeacherOptions): Promise<{ dir: string; meta: TeacherMeta; cached: boolean }> {
  const dir = o.out ? path.resolve(o.out) : teacherDir(o.data, o.seed);
  const cached = o.force ? null : await readTeacherMeta(dir);
  if (cached) return { dir, meta: cached, cached: true };
  const info = await ctx.backend();
  const data = await loadDataset(o.data, { seed: o.seed, limit: o.limit });
  const [h, w, c] = data.train.shape;
  const model = buildReferenceTeacher({ seed: o.seed, inputShape: [h, w, c], classes: data.train.numClasses });
  try {
    const bar = createTrainingBar(ctx, 'teacher');
    const r = await trainSupervised(model, data.train, { epochs: o.epochs, batchSize: o.batchSize, seed: o.seed, onProgress: bar.update });
    bar.stop();
    const accuracy = evaluateAccuracy(model, data.test);
    const graph = graphFromModel(model);
    await saveModel(model, dir);
    const meta: TeacherMeta = {
      data: o.data, seed: o.seed, epochs: o.epochs, batchSize: o.batchSize, trainSamples: data.train.count, testSamples: data.test.count,
      testAccuracy: accuracy, params: graph.totalParams, macs: graph.totalMacs, trainSeconds: r.seconds,
      backend: info.backend, createdAt: new Date().toISOString(),
    };
    await writeFile(path.join(dir, TEACHER_META), JSON.stringify(meta, null, 2) + '\n');
    return { dir, meta, cached: false };
  } finally {
    model.dispose();
  }
}

interface TrainCliOptions {
  data: string;
  epochs: string;
  seed: string;
  batchSize: string;
  limit?: string;
  out?: string;
  force?: boolean;
  json?: boolean;
}

export function registerTeacher(program: Command, ctx: CliContext): void {
  const teacher = program.command('teacher').description('the reference VGG-style teacher (Flatten+Dense head)');
  teacher
    .command('train')
    .description('train the reference teacher with a fixed seed and cache it (reuses the cache unless --force)')
    .option('--data <spec>', 'dataset spec', 'fashion-mnist')
    .option('--epochs <n>', 'passes over the training data', '3')
    .option('--seed <n>', 'seed of initializers and shuffling', '0')
    .option('--batch-size <n>', 'batch size', '64')
    .option('--limit <n>', 'use at most N samples of each split (quick runs)')
    .option('--out <dir>', 'output directory (default $EDGEKT_CACHE or .cache: teachers/<data>-<seed>)')
    .option('--force', 'retrain even if a cached teacher exists')
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (opts: TrainCliOptions) => {
        const epochs = parseIntOption('epochs')(opts.epochs);
        const seed = parseIntOption('seed')(opts.seed);
        const batchSize = parseIntOption('batch-size')(opts.batchSize);
        const limit = opts.limit === undefined ? undefined : parseIntOption('limit')(opts.limit);
        if (epochs < 1 || batchSize < 1) throw new EdgektError('EDGEKT_ERR_USAGE', '--epochs and --batch-size must be >= 1');
        const { dir, meta, cached } = await ensureTeacher(ctx, { data: opts.data, seed, epochs, batchSize, limit, out: opts.out, force: opts.force });
        if (opts.json) return printJson(ctx, { dir, cached, ...meta });
        if (cached) ctx.out(`cached    ${dir} (use --force to retrain)`);
        else ctx.out(`teacher   ${dir}`);
        ctx.out(`params    ${meta.params.toLocaleString('en-US')}  MACs ${meta.macs.toLocaleString('en-US')}`);
        ctx.out(`trained   ${meta.epochs} epochs on ${meta.trainSamples} samples in ${meta.trainSeconds.toFixed(0)} s (${meta.backend})`);
        ctx.out(`accuracy  ${(meta.testAccuracy * 100).toFixed(2)}% on ${meta.testSamples} test samples`);
      }),
    );
}
