import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { BEYOND_TARGETS, paperMarkdown, paperTable } from '../../bench/paper-bench.js';
import { unmetSummary } from '../../compress/pipeline.js';
import type { ImportanceKind } from '../../compress/prune/importance.js';
import { HINT_LOSSES, HINT_POINT_KINDS, IMPORTANCE_KINDS, JOB_SPEC_DEFAULTS, TRANSFER_KINDS, type HintLoss, type HintPointKind, type TransferKind } from '../../config/job-spec.js';
import { foldBatchNorm } from '../../compress/pipeline/fold-bn.js';
import { PIPELINE_DISTILL } from '../../compress/pipeline/stages.js';
import { EdgektError } from '../../core/errors.js';
import { loadDataset } from '../../data/index.js';
import { loadModel } from '../../model/index.js';
import { action, parseChoiceOption, parseDepthOption, parseFloatOption, parseIntOption, printJson, type CliContext } from '../context.js';
import { runCompressCommand } from './compress.js';
import { cacheRoot, parseTeacherPreset, teacherDir } from './teacher.js';

interface PaperOptions {
  workers?: number;
  teacher?: string;
  out?: string;
  resume?: boolean;
  json?: boolean;
  preset: PaperPreset;
  width?: number;
  depth?: number | number[] | 'all';
  distillEpochs?: number;
  finalEpochs?: number;
  schedule: string;
  temperature: number;
  briefSamples: number;
  step?: number;
  size?: string;
  latency?: string;
  runs: number;
  evalLimit: number;
  trainLimit?: number;
  seed: number;
  teacherPreset: string;
  importance: ImportanceKind;
  latencyAware?: boolean;
  transfer?: TransferKind;
  lr?: number;
  hintLoss: HintLoss;
  hintPoint: HintPointKind;
}

/**
 * Defaults of `bench paper`, measured against PAPER_MARGINS (issue 13, item 4; docs/benchmarks.md, "Paper table"). A
 * width-1.75 student with one conv in the 28×28 and 7×7 stages (batch-1 latency follows the op count,
 * `bench arch`): 14,010 parameters folded, 62.7×. The size budget, 1.65 % of the teacher (60.6×),
 * holds after lightening, so the loop goes straight to the final fine-tune (at 1.5 %, one 5 % pruning
 * step cost 3.2 held-out points). Plain logits KD at Adam 3e-3: in 3-epoch probes on this student
 * it matched multi-level transfer at 1e-3 with 1.4× cheaper steps, and 3e-3 gave +1.25 points. 10 + 4
 * epochs on all cores, 23 min here. Measured (HEAD 3af8331): 62.7×, 3.66×, 0.49 points: every margin.
 * Before: multi-level + noisy teacher at 1e-3 (0.80–0.86 points); before 2918d05: width 1, every conv, 3 + 2 epochs, 0.01x.
 */
export const PAPER_DEFAULTS: PaperSettings = {
  width: 1.75,
  depth: [1, 2, 1],
  distillEpochs: 10,
  finalEpochs: 4,
  step: 0.05,
  size: '0.0165x',
  transfer: 'kd',
  lr: 3e-3,
};

interface PaperSettings {
  width: number;
  depth: number[] | 'all';
  distillEpochs: number;
  finalEpochs: number;
  step: number;
  size: string;
  transfer: TransferKind;
  lr: number;
}

/**
 * Issue 13's goal beyond the paper (BEYOND_TARGETS: ≥ 100× params, ≥ 5× latency, ≤ 1 point): a
 * width-1.5 student with one conv per stage (7,834 parameters folded, 112×; 9 ops, 0.69 M MACs, 11.9×
 * fewer than the teacher), which the 1 % size budget admits before any pruning, trained longer.
 */
export const BEYOND_DEFAULTS: PaperSettings = {
  ...PAPER_DEFAULTS,
  width: 1.5,
  depth: [1, 1, 1],
  distillEpochs: 14,
  finalEpochs: 6,
  size: '0.01x',
};

export const PAPER_PRESETS = { paper: PAPER_DEFAULTS, beyond: BEYOND_DEFAULTS } as const;
export type PaperPreset = keyof typeof PAPER_PRESETS;

function depthName(d: number[] | 'all'): string {
  return d === 'all' ? 'all' : d.join(',');
}

function parsePaperDepth(value: string): number | number[] | 'all' {
  return value.trim() === 'all' ? 'all' : parseDepthOption('depth')(value);
}

export function registerBenchPaper(bench: Command, ctx: CliContext): void {
  bench
    .command('paper')
    .description("the paper's table on Fashion-MNIST: cached teacher vs compressed student (params, MACs, batch-1 latency, accuracy)")
    .option('--teacher <dir>', 'teacher directory (default: the cached `edgekt teacher train --data fashion-mnist` model)')
    .option('--teacher-preset <name>', 'cached teacher when --teacher is not given: quick (3 epochs) or strong (`teacher train --preset strong`)', 'quick')
    .option('--out <dir>', 'compression output (default $EDGEKT_CACHE|.cache/bench-paper)')
    .option('--resume', 'resume an interrupted compression in OUT')
    .option('--json', 'print JSON')
    .option('--preset <name>', `settings of the run: paper (the paper's targets with margin) or beyond (≥ ${BEYOND_TARGETS.paramsRatio}× params, ≥ ${BEYOND_TARGETS.latencyRatio}× latency, ≤ ${BEYOND_TARGETS.maxAccuracyDropPoints}-point drop); the flags below override it`, parseChoiceOption('preset', Object.keys(PAPER_PRESETS) as PaperPreset[]), 'paper')
    .option('--width <f>', `lighten width multiplier (paper ${PAPER_DEFAULTS.width}, beyond ${BEYOND_DEFAULTS.width})`, parseFloatOption('width'))
    .option('--depth <n|list|all>', `convolutions kept per lightened stage: one count, one per stage like 1,2,2, or all (paper ${depthName(PAPER_DEFAULTS.depth)}, beyond ${depthName(BEYOND_DEFAULTS.depth)})`, parsePaperDepth)
    .option('--distill-epochs <n>', `distillation epochs (paper ${PAPER_DEFAULTS.distillEpochs}, beyond ${BEYOND_DEFAULTS.distillEpochs})`, parseIntOption('distill-epochs'))
    .option('--final-epochs <n>', `fine-tune epochs after pruning (paper ${PAPER_DEFAULTS.finalEpochs}, beyond ${BEYOND_DEFAULTS.finalEpochs})`, parseIntOption('final-epochs'))
    .option('--schedule <s>', 'distillation schedule: joint | fitnets', PIPELINE_DISTILL.schedule)
    .option('--temperature <T>', 'KD softmax temperature', parseFloatOption('temperature'), PIPELINE_DISTILL.temperature)
    .option('--lr <f>', `Adam's base learning rate of distillation and fine-tunes, cosine to 0 (presets ${PAPER_DEFAULTS.lr}; compress ${JOB_SPEC_DEFAULTS.learningRate})`, parseFloatOption('lr'))
    .option('--transfer <kind>', `what the student learns from the teacher: ${TRANSFER_KINDS.join(' | ')} (presets ${PAPER_DEFAULTS.transfer}; compress ${JOB_SPEC_DEFAULTS.transfer})`, parseChoiceOption('transfer', TRANSFER_KINDS))
    .option('--hint-loss <kind>', `how hints compare features: ${HINT_LOSSES.join(' | ')}`, parseChoiceOption('hint-loss', HINT_LOSSES), JOB_SPEC_DEFAULTS.hintLoss)
    .option('--hint-point <where>', `where hints read a stage's feature: ${HINT_POINT_KINDS.join(' | ')}`, parseChoiceOption('hint-point', HINT_POINT_KINDS), JOB_SPEC_DEFAULTS.hintPoint)
    .option('--brief-samples <n>', 'samples per brief fine-tune', parseIntOption('brief-samples'), 4096)
    .option('--step <f>', `share of channels cut per pruning iteration (default ${PAPER_DEFAULTS.step})`, parseFloatOption('step'))
    .option('--size <budget>', `model size budget relative to the teacher (paper ${PAPER_DEFAULTS.size}, beyond ${BEYOND_DEFAULTS.size})`)
    .option('--latency <budget>', 'optional p95 latency budget relative to the teacher, e.g. 0.3x (p95 is noisy on a shared machine)')
    .option('--importance <kind>', `filter importance: ${IMPORTANCE_KINDS.join(' | ')}`, parseChoiceOption('importance', IMPORTANCE_KINDS), JOB_SPEC_DEFAULTS.importance)
    .option('--latency-aware', 'rank filter groups by importance lost per ms saved (NetAdapt-style: measures a latency table per group each iteration)')
    .option('--runs <n>', 'timed batch-1 runs per model for the table', parseIntOption('runs'), 300)
    .option('--train-limit <n>', 'train the student on at most N samples (time budget on slow machines)', parseIntOption('train-limit'))
    .option('--eval-limit <n>', 'validation samples used inside the pruning loop', parseIntOption('eval-limit'), 2000)
    .option('--seed <n>', 'seed', parseIntOption('seed'), 0)
    .option('--workers <n>', `data-parallel training threads for distillation and fine-tunes (default: all cores, ${os.availableParallelism()} here)`, parseIntOption('workers'))
    .action(
      action(ctx, async (opts: PaperOptions) => {
        // commander leaves an option that was not given out of `opts`, so a given flag overrides the preset.
        const o = { ...PAPER_PRESETS[opts.preset], ...opts };
        const workers = o.workers ?? os.availableParallelism();
        const tdir = o.teacher ?? teacherDir('fashion-mnist', 0, process.env, parseTeacherPreset(o.teacherPreset));
        if (!existsSync(path.join(tdir, 'model.json'))) {
          throw new EdgektError('EDGEKT_ERR_USAGE', `no teacher in ${tdir}; train it first: edgekt teacher train --data fashion-mnist --preset ${o.teacherPreset}`);
        }
        const out = o.out ?? path.join(cacheRoot(), 'bench-paper');
        await mkdir(out, { recursive: true });
        const profileFile = path.join(out, 'paper-profile.json');
        await writeFile(profileFile, JSON.stringify({
          name: 'paper-fashion-mnist',
          description: 'bench paper: size budget relative to the teacher; latency is compared in the table (interleaved p50)',
          match: { arch: [process.arch] },
          budgets: { modelSizeKB: o.size, ...(o.latency ? { latencyP95: o.latency } : {}) },
          runtime: { backend: 'auto', threads: 1 },
          training: { batchSize: 64, maxRssMB: 4000, maxTemperatureC: 95 },
        }, null, 2));
        const started = performance.now();
        const { met, report } = await runCompressCommand(ctx, {
          teacher: tdir, data: 'fashion-mnist', profile: profileFile, out, resume: Boolean(o.resume), evalLimit: o.evalLimit,
          seed: o.seed, workers, width: o.width, ...(o.depth !== 'all' ? { depth: o.depth } : {}), distillEpochs: o.distillEpochs, finalEpochs: o.finalEpochs, briefSamples: o.briefSamples,
          schedule: o.schedule as 'joint' | 'fitnets', temperature: o.temperature, learningRate: o.lr, transfer: o.transfer, hintLoss: o.hintLoss, hintPoint: o.hintPoint,
          batchSize: 64, step: o.step, maxIterations: 40, importance: o.importance, ...(o.latencyAware ? { latencyAware: true } : {}), minChannels: 4, roundTo: 4, runs: 30, valFraction: 0.1, ...(o.trainLimit ? { trainLimit: o.trainLimit } : {}),
        });
        if (!met) ctx.err(`edgekt: ${unmetSummary(report)}; reporting the closest student`);
        const minutes = (performance.now() - started) / 60000;
        const info = await ctx.backend();
        const data = await loadDataset('fashion-mnist', { seed: o.seed });
        const teacher = (await loadModel(tdir)).model;
        const student = (await loadModel(path.join(out, 'student'))).model;
        const teacherFolded = await foldBatchNorm(teacher);
        try {
          const table = { ...paperTable(teacher, student, data.test, info.backend, o.runs, teacherFolded, 5, o.preset === 'beyond'),
            preset: o.preset, settings: { width: o.width, depth: o.depth, distillEpochs: o.distillEpochs, finalEpochs: o.finalEpochs, step: o.step, size: o.size, learningRate: o.lr, transfer: o.transfer, hintLoss: o.hintLoss, hintPoint: o.hintPoint, workers },
            budgetsMet: met, compressMinutes: minutes };
          await writeFile(path.join(out, 'paper.json'), JSON.stringify(table, null, 2));
          if (o.json) return printJson(ctx, table);
          ctx.out(paperMarkdown(table));
          ctx.out(`compression took ${minutes.toFixed(1)} min; report in ${path.join(out, 'report.md')}`);
        } finally {
          teacher.dispose();
          student.dispose();
          teacherFolded.dispose();
        }
      }),
    );
}
