import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { evaluateAccuracy } from '../../model/index.js';
import { distill, type DistillProgress, type DistillSchedule, type LrSchedule, type LossParts } from '../../compress/distill/index.js';
import { mapStages } from '../../compress/lighten/index.js';
import { EdgektError } from '../../core/errors.js';
import { loadDataset } from '../../data/index.js';
import { loadModel, saveModel } from '../../model/index.js';
import { action, parseFloatOption, parseIntOption, printJson, type CliContext } from '../context.js';

/** Formats the loss terms of one step compactly for a progress bar. */
export function formatLoss(l: LossParts): string {
  const parts = [`total ${l.total.toFixed(3)}`];
  if (l.hints.length) parts.push(`hints ${l.hints.map((h) => h.toFixed(3)).join('/')}`);
  if (l.kd !== null) parts.push(`kd ${l.kd.toFixed(3)}`);
  if (l.ce !== null) parts.push(`ce ${l.ce.toFixed(3)}`);
  return parts.join(' ');
}

/**
 * A cli-progress bar on stderr fed by the distiller's progress callback. When stderr is not a TTY
 * (logs, CI) it prints one line per epoch instead.
 */
export function createTrainingBar(ctx: CliContext, label: string): { update: (p: DistillProgress) => void; stop: () => void } {
  let bar: cliProgress.SingleBar | null = null;
  const started = performance.now();
  return {
    update: (p) => {
      if (!process.stderr.isTTY) {
        if (p.step === p.stepsPerEpoch) {
          ctx.err(`${label} epoch ${p.epoch}/${p.epochs} step ${p.globalStep}/${p.totalSteps} ${p.phase} ${formatLoss(p.loss)} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
        }
        return;
      }
      if (!bar) {
        bar = new cliProgress.SingleBar(
          { stream: process.stderr, format: `${label} |{bar}| {value}/{total} steps  epoch {epoch}/{epochs} {phase}  {loss}`, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(p.totalSteps, 0, { epoch: p.epoch, epochs: p.epochs, phase: p.phase, loss: '' });
      }
      bar.update(p.globalStep, { epoch: p.epoch, epochs: p.epochs, phase: p.phase, loss: formatLoss(p.loss) });
    },
    stop: () => bar?.stop(),
  };
}

interface DistillCliOptions {
  teacher: string;
  student: string;
  data: string;
  out: string;
  epochs: string;
  batchSize: string;
  schedule: string;
  temperature?: string;
  noiseSigma?: string;
  noiseFraction?: string;
  hintWeight?: string;
  kdWeight?: string;
  ceWeight?: string;
  lr?: string;
  lrSchedule: string;
  hintFraction?: string;
  seed: string;
  limit?: string;
  unlabeled?: boolean;
  workers: string;
  json?: boolean;
}

const num = (name: string, v: string | undefined): number | undefined => (v === undefined ? undefined : parseFloatOption(name)(v));

export function registerDistill(program: Command, ctx: CliContext): void {
  program
    .command('distill')
    .description('train a student from a frozen teacher: stage hints (1x1 adapters), logits KD with temperature, noisy teacher, hard labels')
    .requiredOption('--teacher <dir>', 'teacher model directory')
    .requiredOption('--student <dir>', 'student model directory (e.g. from edgekt lighten)')
    .requiredOption('--data <spec>', 'dataset spec (mnist | fashion-mnist[:DIR] | idx:DIR | folder:DIR)')
    .requiredOption('--out <dir>', 'where to write the trained student')
    .option('--epochs <n>', 'passes over the training data', '5')
    .option('--batch-size <n>', 'batch size', '64')
    .option('--schedule <s>', 'fitnets (hints first, then logits) | joint', 'fitnets')
    .option('--temperature <T>', 'KD softmax temperature (default 4)')
    .option('--noise-sigma <s>', 'noisy-teacher sigma, 0 = off (default 0.1)')
    .option('--noise-fraction <a>', 'share of each batch with noisy teacher logits (default 0.5)')
    .option('--hint-weight <w>', 'weight of each hint level (default 1)')
    .option('--kd-weight <w>', 'weight of the KD term (default 0.7)')
    .option('--ce-weight <w>', 'weight of hard-label cross-entropy (default 0.3)')
    .option('--lr <f>', 'Adam learning rate (default 0.001)')
    .option('--lr-schedule <s>', 'cosine (anneal to 0 over each phase) | constant', 'cosine')
    .option('--hint-fraction <f>', 'fitnets: share of steps spent on hints only (default 0.25)')
    .option('--seed <n>', 'seed of noise, adapters, shuffling and subsets', '0')
    .option('--limit <n>', 'use at most N samples of each split (quick runs)')
    .option('--unlabeled', 'ignore the labels (no cross-entropy): distil from the teacher alone')
    .option('--workers <n>', 'data-parallel training threads (each holds a teacher and student replica)', '1')
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (opts: DistillCliOptions) => {
        const schedule = opts.schedule as DistillSchedule;
        if (schedule !== 'fitnets' && schedule !== 'joint') throw new EdgektError('EDGEKT_ERR_USAGE', `--schedule must be fitnets or joint, got "${opts.schedule}"`);
        const lrSchedule = opts.lrSchedule as LrSchedule;
        if (lrSchedule !== 'cosine' && lrSchedule !== 'constant') throw new EdgektError('EDGEKT_ERR_USAGE', `--lr-schedule must be cosine or constant, got "${opts.lrSchedule}"`);
        const epochs = parseIntOption('epochs')(opts.epochs);
        const batchSize = parseIntOption('batch-size')(opts.batchSize);
        const seed = parseIntOption('seed')(opts.seed);
        const limit = opts.limit === undefined ? undefined : parseIntOption('limit')(opts.limit);
        const workers = parseIntOption('workers')(opts.workers);
        if (workers < 1) throw new EdgektError('EDGEKT_ERR_USAGE', '--workers must be >= 1');
        const info = await ctx.backend();
        const data = await loadDataset(opts.data, { seed, limit });
        const teacher = await loadModel(opts.teacher, { logits: true });
        const student = await loadModel(opts.student);
        try {
          const hints = mapStages(teacher.graph, student.graph).map((m) => ({ teacher: m.teacher.layerName, student: m.student.layerName }));
          const train = opts.unlabeled ? { ...data.train, y: null } : data.train;
          const teacherAccuracy = evaluateAccuracy(teacher.model, data.test);
          const before = evaluateAccuracy(student.model, data.test);
          const bar = createTrainingBar(ctx, 'distill');
          const r = await distill(teacher.model, student.model, train, {
            schedule, epochs, batchSize, seed, workers,
            hints: hints.length ? hints : 'auto',
            temperature: num('temperature', opts.temperature),
            noiseSigma: num('noise-sigma', opts.noiseSigma),
            noiseFraction: num('noise-fraction', opts.noiseFraction),
            hintWeights: num('hint-weight', opts.hintWeight),
            kdWeight: num('kd-weight', opts.kdWeight),
            ceWeight: num('ce-weight', opts.ceWeight),
            learningRate: num('lr', opts.lr),
            lrSchedule,
            hintFraction: num('hint-fraction', opts.hintFraction),
            onProgress: bar.update,
          });
          bar.stop();
          const after = evaluateAccuracy(student.model, data.test);
          const saved = await saveModel(student.model, opts.out);
          const report = {
            teacher: opts.teacher, student: opts.student, out: path.resolve(opts.out), data: opts.data, backend: info.backend,
            trainSamples: train.count, labeled: train.y !== null, testSamples: data.test.count,
            schedule, lrSchedule, epochs, batchSize, seed, workers, steps: r.steps, seconds: r.seconds,
            hints: r.pairs.map((p) => ({ teacher: p.teacher.layerName, student: p.student.layerName, resolution: `${p.student.height}x${p.student.width}`, channels: `${p.student.channels}->${p.teacher.channels}` })),
            accuracy: { teacher: teacherAccuracy, studentBefore: before, studentAfter: after, lossVsTeacher: teacherAccuracy - after },
            history: r.history, studentWeightBytes: saved.weightBytes,
          };
          await writeFile(path.join(opts.out, 'distill.json'), JSON.stringify(report, null, 2) + '\n');
          if (opts.json) return printJson(ctx, report);
          ctx.out(`hints     ${report.hints.map((h) => `${h.student}->${h.teacher} (${h.resolution}, ${h.channels} ch)`).join(', ') || 'none'}`);
          ctx.out(`trained   ${r.steps} steps (${schedule}, ${epochs} epochs, ${train.count} samples${train.y ? '' : ', unlabeled'}) in ${r.seconds.toFixed(0)} s on ${info.backend}${workers > 1 ? ` × ${workers} workers` : ''}`);
          ctx.out(`accuracy  teacher ${(teacherAccuracy * 100).toFixed(2)}%  student ${(before * 100).toFixed(2)}% -> ${(after * 100).toFixed(2)}%  (${data.test.count} test samples)`);
          ctx.out(`saved     ${report.out}`);
        } finally {
          teacher.model.dispose();
          student.model.dispose();
        }
      }),
    );
}
