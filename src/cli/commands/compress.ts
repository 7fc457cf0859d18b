import path from 'node:path';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import type { CostProbe } from '../../compress/budget.js';
import { runCompressJob } from '../../compress/job/index.js';
import { unmetSummary, type PipelineEvent, type PipelineStages } from '../../compress/pipeline.js';
import type { CompressReport } from '../../compress/report/index.js';
import { HINT_LOSSES, HINT_POINT_KINDS, IMPORTANCE_KINDS, JOB_SPEC_DEFAULTS as D, TRANSFER_KINDS, type CompressJobSpecInput } from '../../config/job-spec.js';
import { EXIT } from '../../core/errors.js';
import { jobProbe } from '../../jobs/index.js';
import { createDirCheckpointStore } from '../../store/dir-checkpoint-store.js';
import { action, parseDepthOption, parseFloatOption, parseIntOption, printJson, type CliContext } from '../context.js';

/** `edgekt compress` flags as commander hands them over (skip-layers still one string). */
export interface CompressFlags extends Omit<CompressJobSpecInput, 'skipLayers' | 'out' | 'learningRate'> {
  out: string;
  lr?: number;
  skipLayers?: string;
  json?: boolean;
}

/** The job spec the flags stand for; the schema (not this function) checks the values. */
export function specFromFlags(f: CompressFlags): CompressJobSpecInput & { out: string } {
  const { json: _json, skipLayers, lr, ...rest } = f;
  return { ...rest, ...(lr !== undefined ? { learningRate: lr } : {}), skipLayers: (skipLayers ?? '').split(',').map((x) => x.trim()).filter(Boolean) };
}

/** What tests swap or watch: the stages, the probe, the events, and a signal standing in for a killed run. */
export interface CompressHooks {
  stages?: PipelineStages;
  probe?: CostProbe;
  signal?: AbortSignal;
  onEvent?: (e: PipelineEvent) => void;
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
        // total 0: an event with no extent (a checkpoint note at step `done`), not a fraction.
        const at = p.total > 0 ? `${p.done}/${p.total} (${Math.round((100 * p.done) / p.total)}%)` : `step ${p.done}`;
        say(`compress: ${p.stage} ${at}${p.detail ? ` ${p.detail}` : ''}`);
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

/**
 * The whole command as a function, so tests, `demo` and `bench paper` run it in-process: the job
 * runs on this thread (progress bars need no messages), checkpoints in OUT/checkpoints.
 */
export async function runCompressCommand(ctx: CliContext, spec: CompressJobSpecInput & { out: string }, hooks: CompressHooks = {}): Promise<{ report: CompressReport; met: boolean; code: number }> {
  await ctx.backend();
  const logger = ctx.logger();
  // Bars on a terminal; plain lines in pipes and logs (cli-progress draws nothing useful there); JSON with --log-json.
  const progress = logger ? null : progressRenderer(process.stderr.isTTY === true, ctx.err);
  try {
    const { met, report } = await runCompressJob(spec, {
      checkpoints: createDirCheckpointStore(path.join(spec.out, 'checkpoints')),
      probe: hooks.probe ?? jobProbe(spec),
      ...(hooks.stages ? { stages: hooks.stages } : {}),
      ...(hooks.signal ? { signal: hooks.signal } : {}),
      ...(logger ? { logger } : {}),
      onEvent: (e) => {
        progress?.onEvent(e);
        hooks.onEvent?.(e);
      },
    });
    return { report, met, code: met ? EXIT.OK : EXIT.BUDGET_UNREACHABLE };
  } finally {
    progress?.stop();
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
    .option('--seed <n>', 'seed of every random choice', parseIntOption('seed'), D.seed)
    .option('--width <f>', 'lighten width multiplier', parseFloatOption('width'), D.width)
    .option('--depth <n|list>', 'convolutions kept per lightened stage: one count, or one per stage like 1,2,2 (default: all)', parseDepthOption('depth'))
    .option('--distill-epochs <n>', 'distillation epochs', parseIntOption('distill-epochs'), D.distillEpochs)
    .option('--final-epochs <n>', 'fine-tune epochs once the budgets hold', parseIntOption('final-epochs'), D.finalEpochs)
    .option('--schedule <s>', 'distillation schedule: joint (every loss from the start) | fitnets (hints first)', D.schedule)
    .option('--temperature <T>', 'KD softmax temperature', parseFloatOption('temperature'), D.temperature)
    .option('--lr <f>', "Adam's base learning rate of distillation and fine-tunes (cosine to 0)", parseFloatOption('lr'), D.learningRate)
    .option('--transfer <kind>', `what the student learns from the teacher: ${TRANSFER_KINDS.join(' | ')} (hints + noisy-teacher KD + labels; without the noise; logits KD + labels)`, D.transfer)
    .option('--hint-loss <kind>', `how hints compare features: ${HINT_LOSSES.join(' | ')}`, D.hintLoss)
    .option('--hint-point <where>', `where hints read a stage's feature: ${HINT_POINT_KINDS.join(' | ')}`, D.hintPoint)
    .option('--brief-samples <n>', 'samples per brief fine-tune after each pruning step', parseIntOption('brief-samples'), D.briefSamples)
    .option('--batch-size <n>', 'training batch size', parseIntOption('batch-size'), D.batchSize)
    .option('--step <f>', 'share of prunable channels cut per iteration', parseFloatOption('step'), D.step)
    .option('--max-iterations <n>', 'pruning iterations at most', parseIntOption('max-iterations'), D.maxIterations)
    .option('--extra-finals <n>', 'more final fine-tunes while only accuracy misses and each one gains', parseIntOption('extra-finals'), D.extraFinals)
    .option('--importance <kind>', `filter importance: ${IMPORTANCE_KINDS.join(' | ')}`, D.importance)
    .option('--min-channels <n>', 'channels kept per group at least', parseIntOption('min-channels'), D.minChannels)
    .option('--round-to <n>', 'kept channel counts are multiples of this', parseIntOption('round-to'), D.roundTo)
    .option('--skip-layers <names>', 'comma-separated layers whose channels are never pruned')
    .option('--latency-aware', 'rank groups by importance lost per ms saved (NetAdapt-style, slower)')
    .option('--runs <n>', 'timed batch-1 runs per latency measurement', parseIntOption('runs'), D.runs)
    .option('--workers <n>', "data-parallel training threads for distillation and fine-tunes (default: the profile's runtime.threads)", parseIntOption('workers'))
    .action(
      action(ctx, async (flags: CompressFlags) => {
        const { report, met, code } = await runCompressCommand(ctx, specFromFlags(flags));
        if (flags.json) printJson(ctx, report);
        else ctx.out(met ? summary(report, flags.out) : `closest model saved in ${path.join(flags.out, 'student')}; see ${path.join(flags.out, 'report.md')}`);
        if (!met) ctx.err(`edgekt: error EDGEKT_ERR_BUDGET_UNREACHABLE: ${unmetSummary(report)}`);
        return code;
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
