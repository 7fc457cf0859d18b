import os from 'node:os';
import type { Command } from 'commander';
import {
  DISTILL_METHODS,
  METHOD_LABELS,
  formatDistillBench,
  runDistillBench,
  type DistillMethod,
} from '../../bench/distill-bench.js';
import { createDistillWorkers, distill, HINT_LOSS_KINDS, HINT_POINTS, trainSupervised, type DistillOptions, type DistillWorkers, type HintLossKind, type HintPoint } from '../../compress/distill/index.js';
import { evaluateAccuracy } from '../../model/index.js';
import { lighten } from '../../compress/lighten/index.js';
import { EdgektError } from '../../core/errors.js';
import { loadDataset, splitIndices, subset } from '../../data/index.js';
import { loadModel } from '../../model/index.js';
import { action, parseDepthOption, parseFloatOption, parseIntOption, printJson, type CliContext } from '../context.js';
import { TEACHER_PRESETS } from '../../compress/teacher-cache.js';
import { ensureCachedTeacher, parseTeacherPreset, teacherWorkers } from './teacher.js';

interface BenchDistillCliOptions {
  data: string;
  seeds: string;
  epochs: string;
  trainLimit: string;
  testLimit?: string;
  batchSize: string;
  width: string;
  lr: string;
  schedule: string;
  teacherEpochs?: string;
  teacherPreset: string;
  methods?: string;
  temperature?: string;
  kdWeight?: string;
  ceWeight?: string;
  hintWeight?: string;
  noiseSigma?: string;
  noiseFraction?: string;
  hintFraction?: string;
  hintLoss: string;
  hintPoint: string;
  depth?: number | number[];
  workers?: number;
  json?: boolean;
}

const num = (name: string, v: string | undefined): number | undefined => (v === undefined ? undefined : parseFloatOption(name)(v));

export function registerBenchDistill(bench: Command, ctx: CliContext): void {
  bench
    .command('distill')
    .description('one lightened student trained four ways: (a) labels, (b) plain KD, (c) multi-level, (d) multi-level + noisy teacher')
    .option('--data <spec>', 'dataset spec', 'fashion-mnist')
    .option('--seeds <n>', 'seeds per method (0..n-1)', '3')
    .option('--epochs <n>', 'epochs per student', '2')
    .option('--train-limit <n>', 'stratified training subset size', '5000')
    .option('--test-limit <n>', 'stratified test subset size (default: the whole test set)')
    .option('--batch-size <n>', 'batch size', '64')
    .option('--width <f>', 'lighten width multiplier of the student', '0.5')
    .option('--lr <f>', 'Adam learning rate for every method', '0.003')
    .option('--schedule <s>', 'schedule of the multi-level methods: fitnets | joint', 'fitnets')
    .option('--teacher-preset <name>', 'cached teacher: quick (3 epochs) or strong (augmented, cosine, all cores; `teacher train --preset strong`)', 'quick')
    .option('--teacher-epochs <n>', "epochs if the cached teacher must be trained first (default: the preset's)")
    .option('--methods <list>', `comma-separated subset of ${DISTILL_METHODS.join(',')}`)
    .option('--temperature <T>', 'KD temperature for (b)-(d) (default 4)')
    .option('--kd-weight <w>', 'KD weight for (b)-(d) (default 0.7)')
    .option('--ce-weight <w>', 'hard-label weight for (b)-(d) (default 0.3)')
    .option('--hint-weight <w>', 'weight of each hint level for (c), (d) (default 1)')
    .option('--noise-sigma <s>', 'noisy-teacher sigma for (d) (default 0.1)')
    .option('--noise-fraction <a>', 'noisy-teacher fraction for (d) (default 0.5)')
    .option('--hint-fraction <f>', 'fitnets: share of steps on hints only for (c), (d) (default 0.25)')
    .option('--hint-loss <kind>', `how the hints of (c), (d) compare features: ${HINT_LOSS_KINDS.join(' | ')} (FitNets MSE, cosine, attention transfer)`, 'mse')
    .option('--hint-point <where>', `where (c), (d) read a stage's feature: ${HINT_POINTS.join(' | ')} (before the ReLU keeps negative responses)`, 'post-relu')
    .option('--depth <n|list>', 'convolutions kept per lightened stage: one count, or one per stage like 1,2,1 (default: all)', parseDepthOption('depth'))
    .option('--workers <n>', `data-parallel training threads per student (default: all cores, ${os.availableParallelism()} here)`, parseIntOption('workers'))
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (opts: BenchDistillCliOptions) => {
        const seedCount = parseIntOption('seeds')(opts.seeds);
        const epochs = parseIntOption('epochs')(opts.epochs);
        const trainLimit = parseIntOption('train-limit')(opts.trainLimit);
        const batchSize = parseIntOption('batch-size')(opts.batchSize);
        const width = parseFloatOption('width')(opts.width);
        const learningRate = parseFloatOption('lr')(opts.lr);
        const teacherPreset = parseTeacherPreset(opts.teacherPreset);
        const teacherEpochs = opts.teacherEpochs === undefined ? TEACHER_PRESETS[teacherPreset].epochs : parseIntOption('teacher-epochs')(opts.teacherEpochs);
        const schedule = opts.schedule;
        if (schedule !== 'fitnets' && schedule !== 'joint') throw new EdgektError('EDGEKT_ERR_USAGE', `--schedule must be fitnets or joint, got "${schedule}"`);
        const methods = (opts.methods ? opts.methods.split(',').map((m) => m.trim()) : [...DISTILL_METHODS]) as DistillMethod[];
        const unknown = methods.filter((m) => !(DISTILL_METHODS as readonly string[]).includes(m));
        if (unknown.length) throw new EdgektError('EDGEKT_ERR_USAGE', `unknown method(s) ${unknown.join(', ')}; expected ${DISTILL_METHODS.join(', ')}`);
        const hintLoss = opts.hintLoss as HintLossKind;
        if (!HINT_LOSS_KINDS.includes(hintLoss)) throw new EdgektError('EDGEKT_ERR_USAGE', `--hint-loss must be one of ${HINT_LOSS_KINDS.join(', ')}, got "${opts.hintLoss}"`);
        const hintPoint = opts.hintPoint as HintPoint;
        if (!HINT_POINTS.includes(hintPoint)) throw new EdgektError('EDGEKT_ERR_USAGE', `--hint-point must be one of ${HINT_POINTS.join(', ')}, got "${opts.hintPoint}"`);
        if (seedCount < 1 || epochs < 1 || trainLimit < 1) throw new EdgektError('EDGEKT_ERR_USAGE', '--seeds, --epochs and --train-limit must be >= 1');

        const started = performance.now();
        const info = await ctx.backend();
        const t = await ensureCachedTeacher(ctx, { data: opts.data, seed: 0, epochs: teacherEpochs, batchSize: 64, preset: teacherPreset, workers: teacherWorkers(teacherPreset, undefined, undefined) });
        const data = await loadDataset(opts.data, { seed: 0 });
        const pick = stratified(data.train.y, data.train.count, trainLimit);
        const train = trainLimit >= data.train.count ? data.train : subset(data.train, pick!);
        const testLimit = opts.testLimit === undefined ? data.test.count : parseIntOption('test-limit')(opts.testLimit);
        const test = testLimit >= data.test.count ? data.test : subset(data.test, stratified(data.test.y, data.test.count, testLimit));
        const teacher = await loadModel(t.dir, { logits: true });
        const workers = opts.workers ?? os.availableParallelism();
        const depth = opts.depth === undefined ? {} : { depth: opts.depth };
        // One pool for every teacher-guided run (its replicas are rebuilt per student); (a) has no teacher and starts its own.
        let pool: DistillWorkers | null = null;
        try {
          if (workers > 1 && methods.some((m) => m !== 'labels')) pool = await createDistillWorkers(teacher.model, { workers });
          const teacherAccuracy = evaluateAccuracy(teacher.model, test);
          const probe = await lighten(teacher.graph, { widthMultiplier: width, seed: 0, ...depth });
          const summary = probe.summary;
          probe.student.dispose();
          const settings = {
            data: opts.data, backend: info.backend, teacherDir: t.dir, teacherParams: summary.teacher.params, studentParams: summary.student.params,
            studentMacs: summary.student.macs, width, ...depth, workers, trainSamples: train.count, testSamples: test.count, epochs, batchSize, learningRate,
            schedule, seeds: seedCount,
            temperature: num('temperature', opts.temperature) ?? 4, kdWeight: num('kd-weight', opts.kdWeight) ?? 0.7, ceWeight: num('ce-weight', opts.ceWeight) ?? 0.3,
            hintWeight: num('hint-weight', opts.hintWeight) ?? 1, noiseSigma: num('noise-sigma', opts.noiseSigma) ?? 0.1, noiseFraction: num('noise-fraction', opts.noiseFraction) ?? 0.5,
            hintFraction: num('hint-fraction', opts.hintFraction) ?? 0.25, hintLoss, hintPoint,
          };
          ctx.err(`bench distill: teacher ${(teacherAccuracy * 100).toFixed(2)}% (${summary.teacher.params} params), student ${summary.student.params} params, ${train.count} train samples, ${epochs} epochs, ${seedCount} seeds`);
          const result = await runDistillBench({
            seeds: Array.from({ length: seedCount }, (_, i) => i),
            methods,
            teacherAccuracy,
            run: async (method, seed) => {
              const l = await lighten(teacher.graph, { widthMultiplier: width, seed, ...depth });
              try {
                const hints = l.stages.map((m) => ({ teacher: m.teacher.layerName, student: m.student.layerName }));
                const common: DistillOptions = { epochs, batchSize, seed, learningRate };
                const kdOpts: DistillOptions = { temperature: num('temperature', opts.temperature), kdWeight: num('kd-weight', opts.kdWeight), ceWeight: num('ce-weight', opts.ceWeight) };
                const noise = method === 'multilevel' ? 0 : num('noise-sigma', opts.noiseSigma);
                const r =
                  method === 'labels'
                    ? await trainSupervised(l.student, train, { ...common, workers })
                    : await distill(teacher.model, l.student, train, {
                        ...common,
                        ...(pool ? { pool } : {}),
                        ...kdOpts,
                        ...(method === 'kd'
                          ? { hints: 'none', schedule: 'joint', noiseSigma: 0 }
                          : {
                              hints, schedule, noiseSigma: noise, noiseFraction: num('noise-fraction', opts.noiseFraction),
                              hintWeights: num('hint-weight', opts.hintWeight), hintFraction: num('hint-fraction', opts.hintFraction), hintLoss, hintPoint,
                            }),
                      });
                const epochLosses = r.history.map((e) => {
                  const last = Object.values(e.phases).at(-1);
                  return { kd: last?.kd ?? null, ce: last?.ce ?? null };
                });
                return { accuracy: evaluateAccuracy(l.student, test), seconds: r.seconds, epochLosses };
              } finally {
                l.student.dispose();
              }
            },
            onRun: (r, done, total) => ctx.err(`[${done}/${total}] ${METHOD_LABELS[r.method]} seed ${r.seed}: ${(r.accuracy * 100).toFixed(2)}% (${r.seconds.toFixed(0)} s)`),
          });
          const totalSeconds = (performance.now() - started) / 1000;
          if (opts.json) return printJson(ctx, { settings, ...result, totalSeconds });
          ctx.out(`settings: ${JSON.stringify(settings)}`);
          ctx.out('');
          for (const line of formatDistillBench(result)) ctx.out(line);
          ctx.out('');
          ctx.out(`total ${totalSeconds.toFixed(0)} s`);
        } finally {
          await pool?.dispose();
          teacher.model.dispose();
        }
      }),
    );
}

/** A seeded, class-stratified pick of `limit` of `count` samples (all of them when limit >= count). */
function stratified(labels: Int32Array | null, count: number, limit: number): Int32Array {
  const f = Math.min(1, limit / count);
  return splitIndices(labels, count, [f, 1 - f], { seed: 0, stratify: true })[0]!;
}
