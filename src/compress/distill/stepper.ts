import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../../core/errors.js';
import { gather } from '../../data/batches.js';
import { augmentImages, type AugmentOptions } from '../../data/augment.js';
import type { ImageSet } from '../../data/types.js';
import type { DistillOptions } from './distiller.js';
import type { HintPair } from './hint-points.js';
import type { LossParts } from './losses.js';
import { createDistillWorkers, type ParallelRun } from './parallel.js';
import type { DistillFrame } from './parallel-protocol.js';
import { captureDistillState, restoreDistillState, type DistillState } from './state.js';
import { createDistillTrainer, hintPairs, type DistillPhase, type DistillTrainerOptions } from './trainer.js';

/** What distill's loop drives: one thread's DistillTrainer, or the same step data-parallel over workers. */
export interface Stepper {
  readonly pairs: HintPair[];
  /** `augment` (with this step's seed) transforms the batch's images before the step. */
  step(indices: Int32Array, phase: DistillPhase, learningRate: number, augment?: AugmentOptions): Promise<LossParts>;
  capture(frame: DistillFrame): Promise<DistillState>;
  restore(state: DistillState): Promise<void>;
  /** The trained weights are in the student after this; returns the workers' live tensor counts (data-parallel only). */
  finish(): Promise<number[] | undefined>;
  dispose(): Promise<void>;
}

/** W = 1: the DistillTrainer on this thread, as before; W > 1: the same step over a worker pool. */
export async function createStepper(teacher: tf.LayersModel | null, student: tf.LayersModel, data: ImageSet, options: DistillOptions, seed: number): Promise<Stepper> {
  const workers = options.pool?.workers ?? options.workers ?? 1;
  if (!(Number.isInteger(workers) && workers >= 1)) throw new EdgektError('EDGEKT_ERR_USAGE', `workers must be an integer >= 1, got ${workers}`);
  if (workers === 1) {
    const trainer = createDistillTrainer(teacher, student, { ...options, seed });
    return {
      pairs: trainer.pairs,
      step: async (indices, phase, lr, augment) => {
        const g = gather(data, indices);
        const x = tf.tensor4d(augment ? augmentImages(g.x, [indices.length, ...data.shape], augment) : g.x, [indices.length, ...data.shape]);
        const y = g.labels ? tf.tensor1d(Float32Array.from(g.labels)) : null;
        try {
          return trainer.step(x, y, phase, lr);
        } finally {
          tf.dispose([x, ...(y ? [y] : [])]);
        }
      },
      capture: (frame) => captureDistillState(trainer, student, frame),
      restore: (state) => restoreDistillState(trainer, student, state),
      finish: async () => undefined,
      dispose: async () => trainer.dispose(),
    };
  }
  if (options.pool && options.pool.teacher !== teacher) throw new EdgektError('EDGEKT_ERR_USAGE', 'the worker pool was made for another teacher');
  const pool = options.pool ?? (await createDistillWorkers(teacher, { workers, ...(options.backend ? { backend: options.backend } : {}) }));
  const trainerOptions = { ...trainerOptionsOf(options), seed };
  let run: ParallelRun;
  try {
    run = await pool.begin(student, trainerOptions);
  } catch (e) {
    if (!options.pool) await pool.dispose();
    throw e;
  }
  let ended = false;
  const end = async () => {
    if (ended) return;
    ended = true;
    await run.end(student);
  };
  return {
    pairs: hintPairs(teacher, student, options.hints ?? 'auto', options.hintPoint),
    step: (indices, phase, lr, augment) => run.step(data, indices, phase, lr, augment),
    capture: (frame) => run.capture(frame),
    restore: (state) => run.restore(state),
    finish: async () => {
      await end();
      return run.workerTensorCounts();
    },
    dispose: async () => {
      try {
        await end(); // after an abort the student keeps the weights trained so far, as on one thread
      } finally {
        if (!options.pool) await pool.dispose();
      }
    },
  };
}

/**
 * Every DistillTrainerOptions key, as a Record so that the compiler refuses this file when a trainer
 * option is added without it (it would silently stay on the main thread otherwise).
 */
const TRAINER_OPTION_KEYS: Record<keyof DistillTrainerOptions, true> = {
  hints: true, temperature: true, kdWeight: true, ceWeight: true, hintLoss: true, hintPoint: true, hintWeights: true,
  noiseSigma: true, noiseFraction: true, learningRate: true, seed: true, proximal: true,
};

/** The trainer's own options out of a run's: plain data, so they can cross into workers. */
function trainerOptionsOf(o: DistillOptions): DistillTrainerOptions {
  const keys = Object.keys(TRAINER_OPTION_KEYS) as (keyof DistillTrainerOptions)[];
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as DistillTrainerOptions;
}
