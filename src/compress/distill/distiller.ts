import * as tf from '@tensorflow/tfjs';
import { systemClock, type Clock } from '../../core/clock.js';
import { EdgektError } from '../../core/errors.js';
import { shuffledIndices } from '../../data/split.js';
import type { ImageSet } from '../../data/types.js';
import { batchIndices, makeBatch } from '../../data/batches.js';
import type { HintPair } from './hint-points.js';
import type { LossParts } from './losses.js';
import { recalibrateBatchNorm } from './recalibrate.js';
import { captureDistillState, checkResumable, restoreDistillState, type DistillRunKey, type DistillState } from './state.js';
import { createDistillTrainer, DISTILL_DEFAULTS, hintPairs, type DistillPhase, type DistillTrainerOptions } from './trainer.js';
import type { DistillWorkers } from './parallel.js';
import { createStepper } from './stepper.js';
import type { BackendChoice } from '../../runtime/backend.js';
import { augmentSeedAt, type AugmentOptions } from '../../data/augment.js';

export type DistillSchedule = 'fitnets' | 'joint';

/** How the learning rate moves over a run: fixed, or a cosine from the base rate down to 0. */
export type LrSchedule = 'constant' | 'cosine';

/**
 * Learning rate at step `i` (0-based) of a span of `n` steps: cosine annealing (Loshchilov & Hutter)
 * from `base` to 0, or `base` throughout for 'constant'.
 */
export function scheduledLearningRate(schedule: LrSchedule, base: number, i: number, n: number): number {
  if (schedule === 'constant' || n <= 1) return base;
  return (base * (1 + Math.cos((Math.PI * Math.min(i, n - 1)) / n))) / 2;
}

export interface DistillProgress {
  phase: DistillPhase;
  epoch: number;
  epochs: number;
  /** Step within the epoch, 1-based. */
  step: number;
  stepsPerEpoch: number;
  /** Steps done so far over the whole run, 1-based. */
  globalStep: number;
  totalSteps: number;
  loss: LossParts;
}

export interface DistillOptions extends DistillTrainerOptions {
  /** 'fitnets' (default): hints first, then logits KD + CE; 'joint': every term from the start. */
  schedule?: DistillSchedule;
  /** Passes over the training data. Default 5. */
  epochs?: number;
  /** Batch size. Default 64. */
  batchSize?: number;
  /**
   * Learning-rate schedule over each phase's steps. Default 'cosine': on a fixed step budget it ends
   * in a lower loss than a constant rate (see docs/benchmarks.md).
   */
  lrSchedule?: LrSchedule;
  /** Stop after this many steps in all (e.g. a brief fine-tune between pruning steps). Default: no cap. */
  maxSteps?: number;
  /** FitNets stage 1 (hints only) share of all steps. Default 0.25. */
  hintFraction?: number;
  /** Called after every step; awaited between steps so progress bars can redraw. */
  onProgress?: (p: DistillProgress) => void;
  /**
   * Batches of training data over which BatchNorm statistics are recomputed after training
   * (see recalibrateBatchNorm). Default 20; 0 keeps tfjs's moving averages.
   */
  recalibrateBatches?: number;
  /** Lets a caller stop early (e.g. on SIGINT); checked between steps, throws EDGEKT_ERR_ABORTED. */
  signal?: AbortSignal;
  /**
   * Data-parallel worker threads (default 1: the single-thread path). Each holds a student and
   * teacher replica; shard gradients are averaged by shard size, so results match one thread's up
   * to float rounding on models without BatchNorm (with BN each shard normalises over itself).
   */
  workers?: number;
  /** Workers kept across runs (createDistillWorkers, same teacher); overrides `workers`. The caller disposes it. */
  pool?: DistillWorkers;
  /** Backend of workers this run starts itself. Default 'auto'. */
  backend?: BackendChoice;
  /**
   * Random flips and ±2 px shifts of every training batch (augmentImages), seeded from `seed` and
   * the step, so a run is reproducible and the same on any worker count. Default off.
   */
  augment?: boolean | Omit<AugmentOptions, 'seed'>;
  /** Periodic resumable snapshots, so a killed device loses minutes of a long run, not the run. */
  checkpoint?: DistillCheckpointOptions;
}

/** When a distillation saves its state, where to, and the state to resume from. */
export interface DistillCheckpointOptions {
  /** Save after every this many steps. */
  everySteps?: number;
  /**
   * Save at the first step boundary at least this long after the last save (or the start).
   * Default 60 when `everySteps` is not given either.
   */
  everySeconds?: number;
  /** Persists a state (e.g. encodeDistillState → CheckpointStore); awaited between steps. A throw ends the run with it. */
  save(state: DistillState): Promise<void>;
  /**
   * Resume from this state, into a student of the same architecture (its current weights are
   * overwritten). It must come from a run with the same data size and options: EDGEKT_ERR_CHECKPOINT otherwise.
   */
  load?: DistillState | null;
  /** Time source for `everySeconds`. Default systemClock. */
  clock?: Clock;
}

export interface EpochSummary {
  epoch: number;
  /** Mean of each loss term over the epoch's steps (per phase, since terms differ between phases). */
  phases: Partial<Record<DistillPhase, LossParts & { steps: number }>>;
}

export interface DistillResult {
  pairs: HintPair[];
  schedule: DistillSchedule;
  steps: number;
  seconds: number;
  history: EpochSummary[];
  /** Live tensors in each worker at the end (data-parallel runs only): flat across runs means no leak. */
  workerTensors?: number[];
}

export const DISTILL_RUN_DEFAULTS = { ...DISTILL_DEFAULTS, schedule: 'fitnets' as DistillSchedule, lrSchedule: 'cosine' as LrSchedule, epochs: 5, batchSize: 64, hintFraction: 0.25, recalibrateBatches: 20 };

/**
 * Trains `student` from a frozen `teacher` on `data` (labels optional) with multi-level knowledge
 * transfer; a null teacher trains on hard labels only. The student's weights are updated in place.
 */
export async function distill(
  teacher: tf.LayersModel | null,
  student: tf.LayersModel,
  data: ImageSet,
  options: DistillOptions = {},
): Promise<DistillResult> {
  const epochs = options.epochs ?? DISTILL_RUN_DEFAULTS.epochs;
  const batchSize = options.batchSize ?? DISTILL_RUN_DEFAULTS.batchSize;
  const schedule = options.schedule ?? DISTILL_RUN_DEFAULTS.schedule;
  const seed = options.seed ?? DISTILL_DEFAULTS.seed;
  if (!(epochs >= 1 && Number.isInteger(epochs))) throw new EdgektError('EDGEKT_ERR_USAGE', `epochs must be an integer >= 1, got ${epochs}`);
  if (!(batchSize >= 1 && Number.isInteger(batchSize))) throw new EdgektError('EDGEKT_ERR_USAGE', `batchSize must be an integer >= 1, got ${batchSize}`);
  if (!teacher && !data.y) throw new EdgektError('EDGEKT_ERR_USAGE', 'training without a teacher needs labeled data');
  const [h, w, c] = data.shape;
  const inShape = student.inputs[0]!.shape;
  if (inShape[1] !== h || inShape[2] !== w || inShape[3] !== c) {
    throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `student input ${inShape.slice(1).join('x')} does not match data ${h}x${w}x${c}`);
  }
  const stepsPerEpoch = Math.ceil(data.count / batchSize);
  const totalSteps = Math.min(epochs * stepsPerEpoch, options.maxSteps ?? Infinity);
  if (!(totalSteps >= 1)) throw new EdgektError('EDGEKT_ERR_USAGE', `maxSteps must be >= 1, got ${options.maxSteps}`);
  const ckpt = options.checkpoint;
  const saveDue = checkpointTrigger(ckpt);
  const trainer = await createStepper(teacher, student, data, options, seed);
  const hasHints = trainer.pairs.length > 0;
  const hintSteps = schedule === 'fitnets' && hasHints
    ? Math.max(1, Math.round((options.hintFraction ?? DISTILL_RUN_DEFAULTS.hintFraction) * totalSteps))
    : 0;
  const phaseAt = (g: number): DistillPhase => (schedule === 'joint' ? (hasHints ? 'joint' : 'logits') : g < hintSteps ? 'hints' : 'logits');
  const lrSchedule = options.lrSchedule ?? DISTILL_RUN_DEFAULTS.lrSchedule;
  const baseLr = options.learningRate ?? DISTILL_DEFAULTS.learningRate;
  // Each phase anneals over its own span (FitNets stage 1, then stage 2, each with its own Adam).
  const lrAt = (g: number): number =>
    g < hintSteps ? scheduledLearningRate(lrSchedule, baseLr, g, hintSteps) : scheduledLearningRate(lrSchedule, baseLr, g - hintSteps, totalSteps - hintSteps);

  const augment = options.augment === true ? {} : options.augment || null;
  const run: DistillRunKey = { schedule, lrSchedule, learningRate: baseLr, seed, batchSize, count: data.count, stepsPerEpoch, totalSteps, hintSteps };
  const positionOf = (g: number): DistillState['position'] => ({ globalStep: g, epoch: Math.floor(g / stepsPerEpoch) + 1, step: g % stepsPerEpoch });

  const started = performance.now();
  let history: EpochSummary[] = [];
  let sums: Sums = {};
  let globalStep = 0;
  let workerTensors: number[] | undefined;
  try {
    if (ckpt?.load) {
      checkResumable(ckpt.load, run);
      await trainer.restore(ckpt.load);
      globalStep = ckpt.load.position.globalStep;
      history = structuredClone(ckpt.load.history);
      sums = structuredClone(ckpt.load.epochSums);
    }
    let order = { epoch: 0, batches: [] as Int32Array[] };
    while (globalStep < totalSteps) {
      if (options.signal?.aborted) throw new EdgektError('EDGEKT_ERR_ABORTED', 'distillation aborted', { globalStep });
      const { epoch, step } = positionOf(globalStep);
      if (order.epoch !== epoch) order = { epoch, batches: batchIndices(shuffledIndices(data.count, seed * 7919 + epoch), batchSize) };
      const phase = phaseAt(globalStep);
      const aug = augment ? { ...augment, seed: augmentSeedAt(seed, globalStep) } : undefined;
      const loss = await trainer.step(order.batches[step]!, phase, lrAt(globalStep), aug);
      globalStep++;
      accumulate(sums, phase, loss);
      if (step + 1 === stepsPerEpoch || globalStep === totalSteps) {
        history.push({ epoch, phases: finish(sums) });
        sums = {};
      }
      options.onProgress?.({ phase, epoch, epochs, step: step + 1, stepsPerEpoch, globalStep, totalSteps, loss });
      if (options.onProgress) await new Promise((r) => setImmediate(r));
      if (ckpt && saveDue(globalStep)) {
        await ckpt.save(await trainer.capture({ run, position: positionOf(globalStep), history, epochSums: sums }));
        saveDue.saved();
      }
    }
    workerTensors = await trainer.finish();
    const recalibrate = options.recalibrateBatches ?? DISTILL_RUN_DEFAULTS.recalibrateBatches;
    if (recalibrate > 0) recalibrateBatchNorm(student, data, { batches: recalibrate, batchSize, seed });
  } finally {
    await trainer.dispose();
  }
  return { pairs: trainer.pairs, schedule, steps: globalStep, seconds: (performance.now() - started) / 1000, history, ...(workerTensors ? { workerTensors } : {}) };
}

export interface DistillFineTunerOptions extends Omit<DistillOptions, 'maxSteps' | 'checkpoint'> {
  /** Steps of a 'brief' fine-tune (after each pruning step). Default 50. */
  briefSteps?: number;
  /** Epochs of the 'final' fine-tune (once the budgets hold). Default `epochs` or 1. */
  finalEpochs?: number;
}

/**
 * A fine-tuner for the pruning loop (matches compress/budget's FineTuner): trains the pruned
 * student in place with multi-level knowledge transfer from the same frozen teacher. Hint adapters
 * are rebuilt on each call, since pruning changes the student's channel counts.
 */
export function createDistillFineTuner(
  teacher: tf.LayersModel | null,
  data: ImageSet,
  options: DistillFineTunerOptions = {},
): (student: tf.LayersModel, request: { kind: 'brief' | 'final'; iteration?: number }) => Promise<void> {
  return async (student, request) => {
    const seed = (options.seed ?? 0) + (request.iteration ?? 0);
    const schedule = options.schedule ?? 'joint';
    if (request.kind === 'brief') await distill(teacher, student, data, { ...options, schedule, seed, epochs: Math.max(1, options.epochs ?? 1), maxSteps: options.briefSteps ?? 50 });
    else await distill(teacher, student, data, { ...options, schedule, seed, epochs: options.finalEpochs ?? options.epochs ?? 1 });
  };
}

/** Hard-label training (no teacher): the "labels only" baseline and the teacher's own training. */
export function trainSupervised(model: tf.LayersModel, data: ImageSet, options: Omit<DistillOptions, 'hints' | 'schedule'> = {}): Promise<DistillResult> {
  return distill(null, model, data, { ...options, schedule: 'joint', hints: 'none' });
}

type Sums = EpochSummary['phases'];

function checkpointTrigger(ckpt: DistillCheckpointOptions | undefined): ((globalStep: number) => boolean) & { saved(): void } {
  const everySteps = ckpt?.everySteps;
  const everySeconds = ckpt?.everySeconds ?? (everySteps === undefined ? 60 : undefined);
  if (everySteps !== undefined && !(Number.isInteger(everySteps) && everySteps >= 1)) throw new EdgektError('EDGEKT_ERR_USAGE', `checkpoint.everySteps must be an integer >= 1, got ${everySteps}`);
  if (everySeconds !== undefined && !(everySeconds > 0)) throw new EdgektError('EDGEKT_ERR_USAGE', `checkpoint.everySeconds must be > 0, got ${everySeconds}`);
  const clock = ckpt?.clock ?? systemClock;
  let last = clock.hrMs();
  const due = (g: number): boolean =>
    (everySteps !== undefined && g % everySteps === 0) || (everySeconds !== undefined && clock.hrMs() - last >= everySeconds * 1000);
  return Object.assign(due, { saved: () => void (last = clock.hrMs()) });
}

function accumulate(sums: Sums, phase: DistillPhase, l: LossParts): void {
  const s = (sums[phase] ??= { total: 0, hints: l.hints.map(() => 0), kd: l.kd === null ? null : 0, ce: l.ce === null ? null : 0, steps: 0 });
  s.total += l.total;
  l.hints.forEach((v, i) => (s.hints[i] = (s.hints[i] ?? 0) + v));
  if (l.kd !== null) s.kd = (s.kd ?? 0) + l.kd;
  if (l.ce !== null) s.ce = (s.ce ?? 0) + l.ce;
  if (l.proximal !== undefined) s.proximal = (s.proximal ?? 0) + l.proximal;
  s.steps++;
}

function finish(sums: Sums): Sums {
  for (const s of Object.values(sums)) {
    if (!s) continue;
    s.total /= s.steps;
    s.hints = s.hints.map((v) => v / s.steps);
    if (s.kd !== null) s.kd /= s.steps;
    if (s.ce !== null) s.ce /= s.steps;
    if (s.proximal !== undefined) s.proximal /= s.steps;
  }
  return sums;
}
