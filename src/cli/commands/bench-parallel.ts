import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Command } from 'commander';
import { formatWorkersCompare, runWorkersCompare } from '../../bench/workers-compare.js';
import { createDistillWorkers, distill } from '../../compress/distill/index.js';
import { PIPELINE_DISTILL } from '../../compress/pipeline/stages.js';
import { lighten } from '../../compress/lighten/index.js';
import { EdgektError } from '../../core/errors.js';
import { loadDataset } from '../../data/index.js';
import { buildReferenceTeacher } from '../../model/reference-teacher.js';
import { loadModel } from '../../model/index.js';
import { action, parseFloatOption, parseIntOption, printJson, type CliContext } from '../context.js';
import { teacherDir } from './teacher.js';

interface BenchParallelOptions {
  teacher?: string;
  workers: number;
  repeats: number;
  steps: number;
  batchSize: number;
  width: number;
  trainLimit: number;
  seed: number;
  json?: boolean;
}

export function registerBenchParallel(bench: Command, ctx: CliContext): void {
  bench
    .command('parallel')
    .description('the distill stage (pipeline settings) on one thread and on W workers, interleaved, on the Fashion-MNIST paper teacher')
    .option('--teacher <dir>', 'teacher model (default: the cached fashion-mnist teacher; else the reference architecture, untrained: timing depends only on the architecture)')
    .option('--workers <n>', 'workers to compare with one thread', parseIntOption('workers'), 2)
    .option('--repeats <n>', 'pairs of runs', parseIntOption('repeats'), 3)
    .option('--steps <n>', 'distillation steps per run', parseIntOption('steps'), 150)
    .option('--batch-size <n>', 'batch size', parseIntOption('batch-size'), 64)
    .option('--width <f>', 'lighten width multiplier of the student', parseFloatOption('width'), 1)
    .option('--train-limit <n>', 'training samples loaded', parseIntOption('train-limit'), 10_000)
    .option('--seed <n>', 'seed', parseIntOption('seed'), 0)
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (o: BenchParallelOptions) => {
        if (o.workers < 2 || o.repeats < 1 || o.steps < 1) throw new EdgektError('EDGEKT_ERR_USAGE', '--workers must be >= 2, --repeats and --steps >= 1');
        const info = await ctx.backend();
        const cached = o.teacher ?? teacherDir('fashion-mnist', 0);
        const haveCached = existsSync(path.join(cached, 'model.json'));
        if (o.teacher && !haveCached) throw new EdgektError('EDGEKT_ERR_USAGE', `no model in ${o.teacher}`);
        const data = await loadDataset('fashion-mnist', { seed: o.seed, limit: o.trainLimit });
        const [h, w, c] = data.train.shape;
        const teacher = haveCached ? (await loadModel(cached, { logits: true })).model : buildReferenceTeacher({ seed: 0, inputShape: [h, w, c], classes: data.train.numClasses });
        const student = (await lighten(teacher, { widthMultiplier: o.width, seed: o.seed })).student;
        const start = student.getWeights().map((t) => t.clone());
        const loadBefore = os.loadavg();
        const t0 = performance.now();
        const pool = await createDistillWorkers(teacher, { workers: o.workers, backend: info.backend });
        const poolSeconds = (performance.now() - t0) / 1000;
        try {
          const once = async (workers: number, steps: number) => {
            student.setWeights(start); // every run trains the same student from the same start
            const r = await distill(teacher, student, data.train, {
              temperature: PIPELINE_DISTILL.temperature, schedule: PIPELINE_DISTILL.schedule, epochs: 1_000, maxSteps: steps,
              batchSize: o.batchSize, seed: o.seed, recalibrateBatches: 0, ...(workers > 1 ? { pool } : {}),
            });
            return { seconds: r.seconds, steps: r.steps };
          };
          // Untimed warm-up of both sides: kernel set-up and the workers' first student replica.
          await once(1, 3);
          await once(o.workers, 3);
          const result = await runWorkersCompare({
            workers: o.workers,
            repeats: o.repeats,
            run: (workers) => once(workers, o.steps),
            onRun: (r) => ctx.err(`bench parallel: repeat ${r.repeat + 1} W=${r.workers}: ${r.seconds.toFixed(1)} s for ${r.steps} steps`),
          });
          const report = {
            teacher: haveCached ? cached : 'reference architecture (untrained)', teacherParams: teacher.countParams(), studentParams: student.countParams(),
            backend: info.backend, workerBackend: pool.backend, steps: o.steps, batchSize: o.batchSize, width: o.width, poolStartSeconds: poolSeconds,
            loadAvg: { before: loadBefore.map((v) => Number(v.toFixed(2))), after: os.loadavg().map((v) => Number(v.toFixed(2))), cores: os.availableParallelism() },
            ...result,
          };
          if (o.json) return printJson(ctx, report);
          ctx.out(`teacher ${report.teacher} (${report.teacherParams} params), student ${report.studentParams} params, ${o.steps} steps of ${o.batchSize} on ${info.backend}`);
          for (const line of formatWorkersCompare(result)) ctx.out(line);
          ctx.out(`worker pool start (tfjs + teacher in ${o.workers} threads): ${poolSeconds.toFixed(1)} s, once per compress run, not in the timings`);
          ctx.out(`load average (1/5/15 min) ${report.loadAvg.before.join(' ')} before, ${report.loadAvg.after.join(' ')} after, on ${report.loadAvg.cores} cores`);
        } finally {
          await pool.dispose();
          tf.dispose(start);
          student.dispose();
          teacher.dispose();
        }
      }),
    );
}
