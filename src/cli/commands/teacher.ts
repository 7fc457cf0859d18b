import path from 'node:path';
import type { Command } from 'commander';
import { ensureTeacher, teacherCacheDir, type TeacherMeta } from '../../compress/teacher-cache.js';
import { EdgektError } from '../../core/errors.js';
import { action, parseIntOption, printJson, type CliContext } from '../context.js';
import { createTrainingBar } from './distill.js';

/** Cache root: $EDGEKT_CACHE, else .cache/ under the current directory (the project when run from it). */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.EDGEKT_CACHE ? path.resolve(env.EDGEKT_CACHE) : path.resolve('.cache');
}

export function teacherDir(data: string, seed: number, env: NodeJS.ProcessEnv = process.env): string {
  return teacherCacheDir(cacheRoot(env), data, seed);
}

export interface CachedTeacherOptions {
  data: string;
  seed: number;
  epochs: number;
  batchSize: number;
  limit?: number;
  out?: string;
  force?: boolean;
  /** Data-parallel training threads. Default 1. */
  workers?: number;
}

/** compress/'s ensureTeacher with the CLI's cache location and its progress bar (or JSON logs). */
export async function ensureCachedTeacher(ctx: CliContext, o: CachedTeacherOptions): Promise<{ dir: string; meta: TeacherMeta; cached: boolean }> {
  const info = await ctx.backend();
  const logger = ctx.logger();
  const bar = logger ? null : createTrainingBar(ctx, 'teacher');
  try {
    return await ensureTeacher({
      dir: o.out ? path.resolve(o.out) : teacherDir(o.data, o.seed), data: o.data, seed: o.seed, epochs: o.epochs, batchSize: o.batchSize,
      ...(o.limit !== undefined ? { limit: o.limit } : {}), ...(o.force ? { force: true } : {}), ...(o.workers ? { workers: o.workers } : {}), backend: info.backend,
      ...(bar ? { onProgress: bar.update } : {}), ...(logger ? { logger } : {}),
    });
  } finally {
    bar?.stop();
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
  workers: string;
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
    .option('--workers <n>', 'data-parallel training threads', '1')
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (opts: TrainCliOptions) => {
        const epochs = parseIntOption('epochs')(opts.epochs);
        const seed = parseIntOption('seed')(opts.seed);
        const batchSize = parseIntOption('batch-size')(opts.batchSize);
        const limit = opts.limit === undefined ? undefined : parseIntOption('limit')(opts.limit);
        const workers = parseIntOption('workers')(opts.workers);
        if (epochs < 1 || batchSize < 1 || workers < 1) throw new EdgektError('EDGEKT_ERR_USAGE', '--epochs, --batch-size and --workers must be >= 1');
        const { dir, meta, cached } = await ensureCachedTeacher(ctx, { data: opts.data, seed, epochs, batchSize, limit, out: opts.out, force: opts.force, workers });
        if (opts.json) return printJson(ctx, { dir, cached, ...meta });
        if (cached) ctx.out(`cached    ${dir} (use --force to retrain)`);
        else ctx.out(`teacher   ${dir}`);
        ctx.out(`params    ${meta.params.toLocaleString('en-US')}  MACs ${meta.macs.toLocaleString('en-US')}`);
        ctx.out(`trained   ${meta.epochs} epochs on ${meta.trainSamples} samples in ${meta.trainSeconds.toFixed(0)} s (${meta.backend}${meta.workers && meta.workers > 1 ? ` × ${meta.workers} workers` : ''})`);
        ctx.out(`accuracy  ${(meta.testAccuracy * 100).toFixed(2)}% on ${meta.testSamples} test samples`);
      }),
    );
}
