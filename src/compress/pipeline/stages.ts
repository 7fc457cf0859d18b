import type * as tf from '@tensorflow/tfjs';
import { shuffledIndices, subset } from '../../data/index.js';
import type { ImageSet } from '../../data/types.js';
import { evaluateAccuracy, graphFromModel } from '../../model/index.js';
import type { FineTuner } from '../budget.js';
import { EdgektError } from '../../core/errors.js';
import { createDistillWorkers, distill, type DistillOptions, type DistillSchedule, type DistillWorkers } from '../distill/index.js';
import { lighten, type LightenOptions } from '../lighten/index.js';
import type { PipelineStages, StageProgress } from '../pipeline.js';
import { foldBatchNorm } from './fold-bn.js';

export interface DefaultStageOptions {
  lighten?: LightenOptions;
  /** Epochs of the distillation stage. Default 3. */
  distillEpochs?: number;
  /**
   * Schedule of the distillation stage. Default 'joint' (hints, KD and labels from the first step),
   * which beat FitNets' two stages in `edgekt bench distill` (docs/benchmarks.md). Fine-tunes are
   * always joint: the adapters are rebuilt after each cut.
   */
  schedule?: DistillSchedule;
  batchSize?: number;
  /** Training samples of each brief fine-tune after a pruning step. Default 2048. */
  briefSamples?: number;
  /** Epochs over all training data once the budgets hold. Default 2. */
  finalEpochs?: number;
  /** Hint levels in fine-tuning ('auto': multi-level; 'none': logits KD only). Default 'auto'. */
  hints?: 'auto' | 'none';
  /** Extra distillation options (temperature, weights, noise...). */
  distill?: Omit<DistillOptions, 'epochs' | 'batchSize' | 'onProgress' | 'seed' | 'hints'>;
  seed?: number;
  /** Fold BN into convs (and fuse ReLU) in the written student. Default true. */
  fold?: boolean;
  onProgress?: (p: StageProgress) => void;
  /**
   * Data-parallel workers for distillation and every fine-tune (default 1: one thread). One pool
   * holding the teacher serves the whole run; student replicas are rebuilt only after surgery.
   */
  workers?: number;
  /** Stops distillation and fine-tunes between training steps (EDGEKT_ERR_ABORTED). */
  signal?: AbortSignal;
}

/**
 * Distillation settings of the pipeline where they differ from the library's: joint schedule and
 * T = 2, the better setting in `edgekt bench distill` (docs/benchmarks.md, issue 4).
 */
export const PIPELINE_DISTILL = { schedule: 'joint' as DistillSchedule, temperature: 2 };

/**
 * The production stages: lighten (depthwise-separable student), multi-level distillation, and KD
 * fine-tuning in the pruning loop through the same distillation step.
 */
export function defaultStages(o: DefaultStageOptions = {}): PipelineStages {
  const seed = o.seed ?? 0;
  const batchSize = o.batchSize ?? 64;
  const hints = o.hints ?? 'auto';
  const workers = o.workers ?? 1;
  let pool: Promise<DistillWorkers> | null = null;
  // One pool for the run's one teacher, started on first use; `release` stops it.
  const parallel = async (teacher: tf.LayersModel): Promise<{ pool?: DistillWorkers }> => {
    if (workers <= 1) return {};
    pool ??= createDistillWorkers(teacher, { workers });
    const p = await pool;
    if (p.teacher !== teacher) throw new EdgektError('EDGEKT_ERR_INTERNAL', 'default stages serve one teacher per run');
    return { pool: p };
  };
  return {
    lighten: async (teacher) => (await lighten(teacher, { seed, ...o.lighten })).student,
    distill: async (teacher, student, train, onProgress, checkpoint) => {
      await distill(teacher, student, train, {
        ...(checkpoint ? { checkpoint } : {}),
        temperature: PIPELINE_DISTILL.temperature,
        ...o.distill,
        schedule: o.schedule ?? PIPELINE_DISTILL.schedule,
        epochs: o.distillEpochs ?? 3,
        batchSize,
        seed,
        hints,
        ...(await parallel(teacher)),
        ...(o.signal ? { signal: o.signal } : {}),
        onProgress: (p) => onProgress({ stage: 'distill', done: p.globalStep, total: p.totalSteps, detail: `${p.phase} loss ${p.loss.total.toFixed(4)}` }),
      });
    },
    fineTuner: (teacher: tf.LayersModel, train: ImageSet): FineTuner => async (student, req) => {
      const brief = req.kind === 'brief';
      const n = Math.min(train.count, o.briefSamples ?? 2048);
      const data = brief ? subset(train, shuffledIndices(train.count, seed * 31 + req.iteration).subarray(0, n)) : train;
      const stage = brief ? `fine-tune ${req.iteration}` : 'final fine-tune';
      await distill(teacher, student, data, {
        temperature: PIPELINE_DISTILL.temperature,
        ...o.distill,
        schedule: 'joint',
        hints,
        epochs: brief ? 1 : o.finalEpochs ?? 2,
        batchSize,
        seed: seed + req.iteration,
        ...(await parallel(teacher)),
        ...(o.signal ? { signal: o.signal } : {}),
        onProgress: o.onProgress
          ? (p) => o.onProgress!({ stage, done: p.globalStep, total: p.totalSteps, detail: `loss ${p.loss.total.toFixed(4)}` })
          : undefined,
      });
    },
    evaluate: (model, set) => (set.y ? evaluateAccuracy(model, set) : null),
    macs: (model) => graphFromModel(model).totalMacs,
    deploy: o.fold === false ? undefined : foldBatchNorm,
    release: async () => {
      const p = pool;
      pool = null;
      if (p) await (await p).dispose();
    },
  };
}
