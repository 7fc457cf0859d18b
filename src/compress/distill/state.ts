import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../../core/errors.js';
import type { DistillSchedule, EpochSummary, LrSchedule } from './distiller.js';
import type { DistillPhase, DistillTrainer } from './trainer.js';

/** One tensor as plain data: what a checkpoint stores (float32 only, row-major). */
export interface TensorData {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** One phase's Adam optimizer: everything its next update reads. */
export interface AdamSlots {
  phase: DistillPhase;
  /** tfjs's step counter. */
  iterations: number;
  /**
   * β1^t and β2^t as Adam accumulated them (float32 products). tfjs's setWeights recomputes them with
   * pow(), which can differ in the last bit, so they are saved and put back as they were.
   */
  accBeta1: number;
  accBeta2: number;
  /** First moments, then second moments, in the phase's variable order (tfjs getWeights order). */
  moments: TensorData[];
}

/**
 * What fixes a run's step sequence. A state resumes only a run with the same key: another seed,
 * batch size, data size or step budget would replay different batches or learning rates.
 */
export interface DistillRunKey {
  schedule: DistillSchedule;
  lrSchedule: LrSchedule;
  learningRate: number;
  seed: number;
  batchSize: number;
  count: number;
  stepsPerEpoch: number;
  totalSteps: number;
  hintSteps: number;
}

/**
 * A distillation run between two steps, as plain serialisable data (encodeDistillState turns it
 * into JSON meta + bytes). Resuming from it in a fresh student gives the weights an uninterrupted
 * run would have given. The learning rate and the epoch's shuffle order are not stored: both are
 * functions of `position.globalStep` and the run key (order = shuffledIndices(count, seed·7919 + epoch)).
 */
export interface DistillState {
  version: 1;
  run: DistillRunKey;
  /** The next step to run: 0-based over the run, its epoch (1-based) and step within the epoch (0-based). */
  position: { globalStep: number; epoch: number; step: number };
  /** The noisy teacher's rng state; `shuffleSeed` is the base of every epoch's order. */
  rng: { noise: number; shuffleSeed: number };
  /** Every student weight (trainable and BatchNorm moving statistics), in `model.weights` order. */
  student: TensorData[];
  /** Each hint adapter's kernel then bias. */
  adapters: TensorData[];
  optimizers: AdamSlots[];
  /** Finished epochs' summaries and the running sums of the epoch in progress. */
  history: EpochSummary[];
  epochSums: EpochSummary['phases'];
}

interface AdamInternals {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
}

async function tensorData(name: string, t: tf.Tensor): Promise<TensorData> {
  if (t.dtype !== 'float32') throw new EdgektError('EDGEKT_ERR_INTERNAL', `cannot checkpoint ${name}: dtype ${t.dtype}`);
  // Copy: some backends hand out their own storage.
  return { name, shape: t.shape.slice(), data: Float32Array.from((await t.data()) as Float32Array) };
}

/** The optimizer and its (private in tfjs's typings) accumulated beta powers. */
function asAdam(opt: tf.Optimizer, phase: string): { adam: tf.AdamOptimizer; acc: AdamInternals } {
  if (!(opt instanceof tf.AdamOptimizer)) throw new EdgektError('EDGEKT_ERR_INTERNAL', `the ${phase} optimizer is not Adam`);
  return { adam: opt, acc: opt as unknown as AdamInternals };
}

async function scalarOf(t: tf.Tensor): Promise<number> {
  return (await t.data())[0]!;
}

async function captureAdam(phase: DistillPhase, opt: tf.Optimizer): Promise<AdamSlots> {
  const { adam, acc } = asAdam(opt, phase);
  const [iter, ...moments] = await adam.getWeights();
  const iterations = await scalarOf(iter!.tensor);
  iter!.tensor.dispose(); // a fresh scalar; the moments are Adam's own variables
  return {
    phase,
    iterations,
    accBeta1: await scalarOf(acc.accBeta1),
    accBeta2: await scalarOf(acc.accBeta2),
    moments: await Promise.all(moments.map((m) => tensorData(m.name, m.tensor))),
  };
}

/** Reads everything a resume needs out of a live run. Creates no lasting tensors. */
export async function captureDistillState(
  trainer: DistillTrainer,
  student: tf.LayersModel,
  frame: Pick<DistillState, 'run' | 'position' | 'history' | 'epochSums'>,
): Promise<DistillState> {
  const optimizers: AdamSlots[] = [];
  for (const [phase, opt] of Object.entries(trainer.optimizers) as Array<[DistillPhase, tf.Optimizer | undefined]>) {
    if (opt) optimizers.push(await captureAdam(phase, opt));
  }
  return {
    version: 1,
    run: { ...frame.run },
    position: { ...frame.position },
    rng: { noise: trainer.noiseRng.getState(), shuffleSeed: frame.run.seed },
    student: await Promise.all(student.weights.map((w) => tensorData(w.name, w.read()))),
    adapters: await Promise.all(trainer.adapters.flatMap((a) => [tensorData(`${a.kernel.name}`, a.kernel), tensorData(`${a.bias.name}`, a.bias)])),
    optimizers,
    history: structuredClone(frame.history),
    epochSums: structuredClone(frame.epochSums),
  };
}

function mismatch(message: string, details: Record<string, unknown> = {}): EdgektError {
  return new EdgektError('EDGEKT_ERR_CHECKPOINT', `distillation checkpoint: ${message}`, details);
}

function checkShapes(what: string, want: number[][], got: TensorData[]): void {
  if (want.length !== got.length) throw mismatch(`${what}: ${got.length} tensors saved, ${want.length} expected`);
  want.forEach((shape, i) => {
    const t = got[i]!;
    if (shape.join('x') !== t.shape.join('x') || t.data.length !== shape.reduce((a, b) => a * b, 1)) {
      throw mismatch(`${what}[${i}] (${t.name}) is ${t.shape.join('x')}, expected ${shape.join('x')}`);
    }
  });
}

/** Throws EDGEKT_ERR_CHECKPOINT when `state` was not saved by a run with this key. */
export function checkResumable(state: DistillState, run: DistillRunKey): void {
  for (const key of Object.keys(run) as Array<keyof DistillRunKey>) {
    if (state.run[key] !== run[key]) throw mismatch(`saved with ${key} ${state.run[key]}, this run has ${run[key]}`, { field: key });
  }
  const { globalStep, epoch, step } = state.position;
  if (!(globalStep >= 0 && globalStep <= run.totalSteps) || epoch !== Math.floor(globalStep / run.stepsPerEpoch) + 1 || step !== globalStep % run.stepsPerEpoch) {
    throw mismatch(`position ${JSON.stringify(state.position)} is not a step of this run`);
  }
}

/**
 * Writes a saved state into a live run: student weights, adapters, each phase's Adam and the noise
 * rng. Shapes are checked before anything is written.
 */
export async function restoreDistillState(trainer: DistillTrainer, student: tf.LayersModel, state: DistillState): Promise<void> {
  const adapterVars = trainer.adapters.flatMap((a) => [a.kernel, a.bias] as tf.Variable[]);
  checkShapes('student', student.weights.map((w) => w.shape as number[]), state.student);
  checkShapes('adapters', adapterVars.map((v) => v.shape), state.adapters);
  for (const s of state.optimizers) {
    if (s.moments.length % 2 !== 0) throw mismatch(`${s.phase} optimizer has an odd number of moments`);
  }
  tf.tidy(() => {
    student.weights.forEach((w, i) => w.write(tf.tensor(state.student[i]!.data, state.student[i]!.shape)));
    adapterVars.forEach((v, i) => v.assign(tf.tensor(state.adapters[i]!.data, state.adapters[i]!.shape)));
  });
  for (const s of state.optimizers) {
    const { adam, acc } = asAdam(trainer.optimizerFor(s.phase), s.phase);
    const inputs = [
      { name: 'iter', tensor: tf.scalar(s.iterations, 'int32') },
      ...s.moments.map((m) => ({ name: m.name, tensor: tf.tensor(m.data, m.shape) })),
    ];
    try {
      await adam.setWeights(inputs); // the moment variables share the inputs' storage (ref-counted)
    } finally {
      tf.dispose(inputs.map((t) => t.tensor));
    }
    tf.tidy(() => {
      acc.accBeta1.assign(tf.scalar(s.accBeta1));
      acc.accBeta2.assign(tf.scalar(s.accBeta2));
    });
  }
  trainer.noiseRng.setState(state.rng.noise);
}
