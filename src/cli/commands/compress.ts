import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { createLatencyProbe } from '../../bench/latency.js';
import { budgetUnreachable, runCompress, type PipelineEvent, type PipelineStages, type PruneSettings } from '../../compress/pipeline.js';
import { defaultStages, PIPELINE_DISTILL } from '../../compress/pipeline/stages.js';
import type { DistillSchedule } from '../../compress/distill/index.js';
import { renderChartSvg, renderMarkdown, type CompressReport } from '../../compress/report/index.js';
import { IMPORTANCE_KINDS, type ImportanceKind } from '../../compress/prune/index.js';
import { EdgektError, EXIT } from '../../core/errors.js';
import { loadDataset, shuffledIndices, subset } from '../../data/index.js';
import { loadModel, saveModel } from '../../model/index.js';
import { action, parseFloatOption, parseIntOption, printJson, type CliContext } from '../context.js';
import { checkRunIdentity, createDirCheckpointStore, runFingerprint } from './compress-store.js';
import { loadProfile } from './profile.js';

export interface CompressCliOptions {
  teacher: string;
  data: string;
  profile: string;
  out: string;
  resume?: boolean;
  json?: boolean;
  limit?: number;
  evalLimit?: number;
  /** Train on at most this many (seeded random) training samples; validation and test stay whole. */
  trainLimit?: number;
  /** Share of training data held out for the loop's accuracy checks (else the test split is used). */
  valFraction?: number;
  seed: number;
  width: number;
  distillEpochs: number;
  finalEpochs: number;
  /** Distillation schedule: joint | fitnets. */
  schedule?: string;
  /** KD temperature of distillation and fine-tunes. */
  temperature?: number;
  briefSamples: number;
  batchSize: number;
  step: number;
  maxIterations: number;
  importance: string;
  minChannels: number;
  roundTo: number;
  latencyAware?: boolean;
  /** Comma-separated producer layers never to prune (the classifier is protected anyway). */
  skipLayers?: string;
  runs: number;
}

export interface CompressHooks {
  /** Swap the training stages (tests). */
  stages?: (o: CompressCliOptions) => PipelineStages;
  afterCheckpoint?: (stage: string) => Promise<void> | void;
}

const iterationLine = (e: Extract<PipelineEvent, { type: 'iteration' }>): string => {
  const f = e.record.figures;
  return `#${e.record.iteration} ${e.record.kind}: ${f.params} params, p95 ${f.latencyP95Ms.toFixed(2)} ms, acc ${f.accuracy === null ? '-' : (f.accuracy * 100).toFixed(2)}%${e.record.check.met ? ' (met)' : ''}`;
};

/**
 * Progress for logs and pipes (systemd, CI): one line per stage start/end and pruning iteration,
 * and a progress line per stage at most every `everyMs`.
 */
export function progressLines(say: (line: string) => void, everyMs = 30_000, now: () => number = Date.now): { onEvent: (e: PipelineEvent) => void; stop: () => void } {
  const last = new Map<string, number>();
  return {
    onEvent: (e) => {
      if (e.type === 'stage-start') say(`compress: ${e.stage} started`);
      else if (e.type === 'stage-done') say(`compress: ${e.stage} ${e.resumed ? 'resumed from checkpoint' : 'done'}`);
      else if (e.type === 'iteration') say(`compress: prune ${iterationLine(e)}`);
      else {
        const p = e.progress;
        const t = now();
        if (t - (last.get(p.stage) ?? -Infinity) < everyMs && p.done < p.total) return;
        last.set(p.stage, t);
        say(`compress: ${p.stage} ${p.done}/${p.total} (${Math.round((100 * p.done) / Math.max(1, p.total))}%)${p.detail ? ` ${p.detail}` : ''}`);
      }
    },
    stop: () => {},
  };
}

function progressRenderer(tty: boolean, say: (line: string) => void): { onEvent: (e: PipelineEvent) => void; stop: () => void } {
  if (!tty) return progressLines(say);
  const bars = new cliProgress.MultiBar(
    { stream: process.stderr, format: '{stage} [{bar}] {value}/{total} {detail}', hideCursor: true, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  const byStage = new Map<string, cliProgress.SingleBar>();
  const bar = (stage: string, total: number): cliProgress.SingleBar => {
    let b = byStage.get(stage);
    if (!b) byStage.set(stage, (b = bars.create(total, 0, { stage: stage.padEnd(16), detail: '' })));
    return b;
  };
  return {
    onEvent: (e) => {
      if (e.type === 'progress') {
        const b = bar(e.progress.stage, e.progress.total);
        b.setTotal(e.progress.total);
        b.update(e.progress.done, { detail: e.progress.detail ?? '' });
      } else if (e.type === 'stage-done') {
        bar(e.stage, 1).update(1, { detail: e.resumed ? 'resumed from checkpoint' : 'done' });
      } else if (e.type === 'iteration') {
        bar('prune', 1).update(0, { detail: iterationLine(e) });
      }
    },
    stop: () => bars.stop(),
  };
}

/** The whole command as a function, so tests and `bench paper` run it in-process. */
export async function runCompressCommand(ctx: CliContext, o: CompressCliOptions, hooks: CompressHooks = {}): Promise<{ report: CompressReport; code: number }> {
  if (o.schedule !== undefined && o.schedule !== 'joint' && o.schedule !== 'fitnets') {
    throw new EdgektError('EDGEKT_ERR_USAGE', `--schedule must be joint or fitnets, got "${o.schedule}"`);
  }
  if (!(IMPORTANCE_KINDS as readonly string[]).includes(o.importance)) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `--importance must be one of ${IMPORTANCE_KINDS.join(', ')}`);
  }
  const profile = loadProfile(o.profile);
  const info = await ctx.backend();
  const teacher = (await loadModel(o.teacher)).model;
  try {
    const loaded = await loadDataset(o.data, { seed: o.seed, ...(o.limit ? { limit: o.limit } : {}), ...(o.valFraction ? { valFraction: o.valFraction } : {}) });
    const data = o.trainLimit && o.trainLimit < loaded.train.count
      ? { ...loaded, train: subset(loaded.train, shuffledIndices(loaded.train.count, o.seed + 17).subarray(0, o.trainLimit)) }
      : loaded;
    const root = path.join(o.out, 'checkpoints');
    const store = createDirCheckpointStore(root);
    const { teacher: _t, out: _o, resume: _r, json: _j, ...settings } = o;
    if (!o.resume) await store.clear();
    await checkRunIdentity(root, await runFingerprint(o.teacher, { settings, profile }), Boolean(o.resume));
    // Bars on a terminal; plain lines in pipes and logs (cli-progress draws nothing useful there).
    const progress = progressRenderer(process.stderr.isTTY === true, ctx.err);
    const prune: PruneSettings = {
      stepFraction: o.step, maxIterations: o.maxIterations, importance: o.importance as ImportanceKind,
      minChannels: o.minChannels, roundTo: o.roundTo, latencyAware: Boolean(o.latencyAware),
      skipLayers: (o.skipLayers ?? '').split(',').map((x) => x.trim()).filter(Boolean),
    };
    const stages = hooks.stages?.(o) ?? defaultStages({
      lighten: { widthMultiplier: o.width, seed: o.seed }, distillEpochs: o.distillEpochs, finalEpochs: o.finalEpochs,
      schedule: o.schedule as DistillSchedule | undefined, ...(o.temperature !== undefined ? { distill: { temperature: o.temperature } } : {}),
      briefSamples: o.briefSamples, batchSize: o.batchSize, seed: o.seed,
      onProgress: (p) => progress.onEvent({ type: 'progress', progress: p }),
    });
    let result;
    try {
      result = await runCompress({
        teacher, data, profile, stages, store, prune, resume: Boolean(o.resume), backend: info.backend,
        probe: createLatencyProbe({ runs: o.runs, warmup: 5 }),
        ...(o.evalLimit ? { evalLimit: o.evalLimit } : {}),
        onEvent: progress.onEvent,
        afterCheckpoint: hooks.afterCheckpoint,
      });
    } finally {
      progress.stop();
    }
    const { student, report } = result;
    try {
      const studentDir = path.join(o.out, 'student');
      await saveModel(student, studentDir);
      await mkdir(o.out, { recursive: true });
      await writeFile(path.join(o.out, 'report.json'), JSON.stringify(report, null, 2));
      await writeFile(path.join(o.out, 'report.svg'), await renderChartSvg(report));
      await writeFile(path.join(o.out, 'report.md'), renderMarkdown(report, 'report.svg'));
      if (!report.met) throw budgetUnreachable(report, studentDir);
    } finally {
      student.dispose();
    }
    return { report, code: EXIT.OK };
  } finally {
    teacher.dispose();
  }
}

export function registerCompress(program: Command, ctx: CliContext): void {
  program
    .command('compress')
    .description('lighten → distill → prune until the device budgets hold; writes OUT/student, report.json, report.md, report.svg')
    .requiredOption('--teacher <dir>', 'teacher tfjs LayersModel directory')
    .requiredOption('--data <spec>', 'dataset spec: mnist | fashion-mnist[:DIR] | idx:DIR | folder:DIR')
    .requiredOption('--profile <name|file>', 'device profile (built-in name or JSON file)')
    .option('--out <dir>', 'output directory', 'edgekt-out')
    .option('--resume', 'continue a killed run from its checkpoints in OUT')
    .option('--json', 'print the report as JSON')
    .option('--limit <n>', 'use at most N samples per source split', parseIntOption('limit'))
    .option('--eval-limit <n>', 'evaluation samples inside the pruning loop', parseIntOption('eval-limit'))
    .option('--train-limit <n>', 'train on at most N training samples (validation/test untouched)', parseIntOption('train-limit'))
    .option('--val-fraction <f>', 'hold out this share of training data for accuracy checks in the loop', parseFloatOption('val-fraction'))
    .option('--seed <n>', 'seed of every random choice', parseIntOption('seed'), 0)
    .option('--width <f>', 'lighten width multiplier', parseFloatOption('width'), 0.5)
    .option('--distill-epochs <n>', 'distillation epochs', parseIntOption('distill-epochs'), 3)
    .option('--final-epochs <n>', 'fine-tune epochs once the budgets hold', parseIntOption('final-epochs'), 2)
    .option('--schedule <s>', 'distillation schedule: joint (every loss from the start) | fitnets (hints first)', PIPELINE_DISTILL.schedule)
    .option('--temperature <T>', 'KD softmax temperature', parseFloatOption('temperature'), PIPELINE_DISTILL.temperature)
    .option('--brief-samples <n>', 'samples per brief fine-tune after each pruning step', parseIntOption('brief-samples'), 2048)
    .option('--batch-size <n>', 'training batch size', parseIntOption('batch-size'), 64)
    .option('--step <f>', 'share of prunable channels cut per iteration', parseFloatOption('step'), 0.1)
    .option('--max-iterations <n>', 'pruning iterations at most', parseIntOption('max-iterations'), 30)
    .option('--importance <kind>', `filter importance: ${IMPORTANCE_KINDS.join(' | ')}`, 'l1')
    .option('--min-channels <n>', 'channels kept per group at least', parseIntOption('min-channels'), 4)
    .option('--round-to <n>', 'kept channel counts are multiples of this', parseIntOption('round-to'), 4)
    .option('--skip-layers <names>', 'comma-separated layers whose channels are never pruned')
    .option('--latency-aware', 'rank groups by importance lost per ms saved (NetAdapt-style, slower)')
    .option('--runs <n>', 'timed batch-1 runs per latency measurement', parseIntOption('runs'), 30)
    .action(
      action(ctx, async (opts: CompressCliOptions) => {
        try {
          const { report } = await runCompressCommand(ctx, opts);
          if (opts.json) printJson(ctx, report);
          else ctx.out(summary(report, opts.out));
          return EXIT.OK;
        } catch (e) {
          if (e instanceof EdgektError && e.code === 'EDGEKT_ERR_BUDGET_UNREACHABLE') {
            // The closest model and its report were written: report them like a success.
            if (opts.json) printJson(ctx, JSON.parse(await readFile(path.join(opts.out, 'report.json'), 'utf8')));
            else ctx.out(`closest model saved in ${path.join(opts.out, 'student')}; see ${path.join(opts.out, 'report.md')}`);
          }
          throw e;
        }
      }),
    );
}

function summary(r: CompressReport, out: string): string {
  const acc = (a: number | null): string => (a === null ? '-' : `${(a * 100).toFixed(2)}%`);
  return [
    `budgets met on ${r.profile} (${r.backend}); student in ${path.join(out, 'student')}, report in ${path.join(out, 'report.md')}`,
    `params   ${r.teacher.params} → ${r.student.params} (${r.ratios.params.toFixed(1)}×)`,
    `p95      ${(r.student.reference?.role === 'teacher' ? r.student.reference.latencyP95Ms : r.teacher.latencyP95Ms).toFixed(3)} → ${r.student.latencyP95Ms.toFixed(3)} ms (${r.ratios.latencyP95.toFixed(2)}×)`,
    `accuracy ${acc(r.teacher.testAccuracy)} → ${acc(r.student.testAccuracy)} (test; ${r.accuracyOn.split} ${acc(r.teacher.accuracy)} → ${acc(r.student.accuracy)})`,
  ].join('\n');
}
