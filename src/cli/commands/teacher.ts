import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { ensureTeacher, teacherCacheDir, TEACHER_PRESETS, type TeacherMeta, type TeacherPreset } from '../../compress/teacher-cache.js';
import { loadProfile } from '../../config/profile-files.js';
import { EdgektError } from '../../core/errors.js';
import { action, parseIntOption, printJson, type CliContext } from '../context.js';
import { createTrainingBar } from './distill.js';

/** Cache root: $EDGEKT_CACHE, else .cache/ under the current directory (the project when run from it). */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.EDGEKT_CACHE ? path.resolve(env.EDGEKT_CACHE) : path.resolve('.cache');
}

export function teacherDir(data: string, seed: number, env: NodeJS.ProcessEnv = process.env, preset: TeacherPreset = 'quick'): string {
  return teacherCacheDir(cacheRoot(env), data, seed, preset);
}

/** `--teacher-preset` of the benchmarks: 'quick' (the 3-epoch teacher) or 'strong'. */
export function parseTeacherPreset(value: string): TeacherPreset {
  if (value === 'quick' || value === 'strong') return value;
  throw new EdgektError('EDGEKT_ERR_USAGE', `--teacher-preset expects quick or strong, got "${value}"`);
}

/**
 * Worker count of a teacher run: --workers, else the --profile's runtime.threads, else for the
 * strong preset every core of this machine (it is long), and 1 for the quick one (as before).
 */
export function teacherWorkers(preset: TeacherPreset, workers: number | undefined, profile: string | undefined): number {
  if (workers !== undefined) return workers;
  if (profile !== undefined) return loadProfile(profile).runtime.threads;
  return preset === 'strong' ? os.availableParallelism() : 1;
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
  /** Recipe: its cache key, and augmentation for 'strong'. Default 'quick'. */
  preset?: TeacherPreset;
}

/** compress/'s ensureTeacher with the CLI's cache location and its progress bar (or JSON logs). */
export async function ensureCachedTeacher(ctx: CliContext, o: CachedTeacherOptions): Promise<{ dir: string; meta: TeacherMeta; cached: boolean }> {
  const info = await ctx.backend();
  const logger = ctx.logger();
  const bar = logger ? null : createTrainingBar(ctx, 'teacher');
  try {
    return await ensureTeacher({
      dir: o.out ? path.resolve(o.out) : teacherDir(o.data, o.seed, process.env, o.preset ?? 'quick'), data: o.data, seed: o.seed, epochs: o.epochs, batchSize: o.batchSize,
      ...(o.limit !== undefined ? { limit: o.limit } : {}), ...(o.force ? { force: true } : {}), ...(o.workers ? { workers: o.workers } : {}), backend: info.backend,
      ...(o.preset && o.preset !== 'quick' ? { preset: o.preset, augment: TEACHER_PRESETS[o.preset].augment } : {}),
      ...(bar ? { onProgress: bar.update } : {}), ...(logger ? { logger } : {}),
    });
  } finally {
    bar?.stop();
  }
}

interface TrainCliOptions {
  data: string;
  preset: string;
  epochs?: string;
  profile?: string;
  seed: string;
  batchSize: string;
  limit?: string;
  out?: string;
  force?: boolean;
  workers?: string;
  json?: boolean;
}

export function registerTeacher(program: Command, ctx: CliContext): void {
  const teacher = program.command('teacher').description('the reference VGG-style teacher (Flatten+Dense head)');
  teacher
    .command('train')
    .description('train the reference teacher with a fixed seed and cache it (reuses the cache unless --force)')
    .option('--data <spec>', 'dataset spec', 'fashion-mnist')
    .option('--preset <name>', 'recipe: quick (3 epochs) or strong (flips and shifts, cosine rate, 15 epochs, all cores, ~33 min on 2 cores; cached as teachers/<data>-strong-<seed>)', 'quick')
    .option('--epochs <n>', "passes over the training data (default: the preset's)")
    .option('--seed <n>', 'seed of initializers and shuffling', '0')
    .option('--batch-size <n>', 'batch size', '64')
    .option('--limit <n>', 'use at most N samples of each split (quick runs)')
    .option('--out <dir>', 'output directory (default $EDGEKT_CACHE or .cache: teachers/<data>-<seed>)')
    .option('--force', 'retrain even if a cached teacher exists')
    .option('--workers <n>', "data-parallel training threads (default: --profile's runtime.threads, else all cores for strong, 1 for quick)")
    .option('--profile <name|file>', 'device profile whose runtime.threads sets the default --workers')
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (opts: TrainCliOptions) => {
        const preset = parseTeacherPreset(opts.preset);
        const epochs = opts.epochs === undefined ? TEACHER_PRESETS[preset].epochs : parseIntOption('epochs')(opts.epochs);
        const seed = parseIntOption('seed')(opts.seed);
        const batchSize = parseIntOption('batch-size')(opts.batchSize);
        const limit = opts.limit === undefined ? undefined : parseIntOption('limit')(opts.limit);
        const workers = teacherWorkers(preset, opts.workers === undefined ? undefined : parseIntOption('workers')(opts.workers), opts.profile);
        if (epochs < 1 || batchSize < 1 || workers < 1) throw new EdgektError('EDGEKT_ERR_USAGE', '--epochs, --batch-size and --workers must be >= 1');
        const { dir, meta, cached } = await ensureCachedTeacher(ctx, { data: opts.data, seed, epochs, batchSize, limit, out: opts.out, force: opts.force, workers, preset });
        if (opts.json) return printJson(ctx, { dir, cached, ...meta });
        if (cached) ctx.out(`cached    ${dir} (use --force to retrain)`);
        else ctx.out(`teacher   ${dir}`);
        ctx.out(`params    ${meta.params.toLocaleString('en-US')}  MACs ${meta.macs.toLocaleString('en-US')}`);
        ctx.out(`trained   ${meta.epochs} epochs on ${meta.trainSamples} samples in ${meta.trainSeconds.toFixed(0)} s (${meta.preset ?? 'quick'}, ${meta.backend}${meta.workers && meta.workers > 1 ? ` × ${meta.workers} workers` : ''})`);
        ctx.out(`accuracy  ${(meta.testAccuracy * 100).toFixed(2)}% on ${meta.testSamples} test samples`);
      }),
    );
}
