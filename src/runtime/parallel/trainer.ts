import { EdgektError } from '../../core/errors.js';
import type { BackendChoice } from '../backend.js';
import type { FromWorker, LossName, OptimizerSpec, ToWorker, TrainableSlot, WeightData } from './protocol.js';
import { createChannel, shardSizes } from './channel.js';
import { spawnTrainingWorker } from './spawn.js';

export { shardSizes };

export interface DataParallelTrainerOptions {
  /** Worker threads, one tfjs engine each; use as many as the device has cores. */
  workers: number;
  /** The model topology, as `model.toJSON(null, false)` returns it (or that JSON as a string). */
  modelJson: object | string;
  /** Initial values of every weight, in `model.weights` order. */
  weights: Array<{ shape: number[]; data: Float32Array }>;
  optimizer: OptimizerSpec;
  loss: LossName;
  backend?: BackendChoice;
  /** Fail if the workers are not ready in time (loading tfjs and wasm). Default 120 s. */
  initTimeoutMs?: number;
  /** Fail a step (and the trainer) when a worker does not answer in time. Default: wait forever. */
  stepTimeoutMs?: number;
}

/** One batch as plain arrays; it is split along the first axis into one shard per worker. */
export interface ParallelBatch {
  x: Float32Array;
  xShape: number[];
  /** Targets, or class indices (Int32Array, shape [n]) for the cross-entropy losses. */
  y: Float32Array | Int32Array;
  yShape: number[];
}

export interface DataParallelTrainer {
  readonly workers: number;
  /** The backend the workers actually run on. */
  readonly backend: string;
  /** One optimizer step on the whole batch; resolves with the batch's mean loss. */
  step(batch: ParallelBatch): Promise<{ loss: number }>;
  /** Current weights in `model.weights` order (every worker holds the same). */
  getWeights(): Promise<WeightData[]>;
  setWeights(weights: Array<{ shape: number[]; data: Float32Array }>): Promise<void>;
  /** Where the last step's time went: per-worker gradient and apply milliseconds, and the whole step. */
  lastStepTimings(): StepTimings | null;
  /** Live tensors in each worker after its last step: flat across steps means no leak. */
  workerTensorCounts(): number[];
  /** Largest absolute difference of any weight between workers (0 when in lock-step). */
  divergence(): Promise<number>;
  dispose(): Promise<void>;
}

export interface StepTimings {
  gradMs: number[];
  /** CPU time of each worker's gradient computation (null where the OS does not tell). */
  gradCpuMs: Array<number | null>;
  applyMs: number[];
  /** Wall time of the step on the calling thread, messaging and averaging included. */
  totalMs: number;
}

type Channel = ReturnType<typeof createChannel<ToWorker, FromWorker>>;

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkBatch(b: ParallelBatch): number {
  const n = b.xShape[0] ?? 0;
  if (n < 1 || b.yShape[0] !== n) throw new EdgektError('EDGEKT_ERR_USAGE', `batch x has ${n} samples, y has ${b.yShape[0]}`);
  if (b.x.length !== product(b.xShape) || b.y.length !== product(b.yShape)) {
    throw new EdgektError('EDGEKT_ERR_USAGE', 'batch data length does not match its shape');
  }
  return n;
}

/**
 * Synchronous data-parallel training over worker_threads. Every worker holds the same weights and
 * an identical optimizer; per step each computes the mean-loss gradients of its shard into shared
 * memory, the main thread averages them weighted by shard size (= the full-batch gradient), and
 * every worker applies that same average. Workers stay bit-identical without broadcasting weights,
 * and the main thread needs no tfjs. BatchNorm normalises with each shard's own statistics (as
 * PyTorch DDP does without SyncBatchNorm); its moving statistics are averaged the same way each step
 * (the moving mean then equals the full batch's; the moving variance omits the spread between shards).
 */
export async function createDataParallelTrainer(opts: DataParallelTrainerOptions): Promise<DataParallelTrainer> {
  if (!Number.isInteger(opts.workers) || opts.workers < 1) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `workers must be a positive integer, got ${opts.workers}`);
  }
  const modelJson = typeof opts.modelJson === 'string' ? (JSON.parse(opts.modelJson) as object) : opts.modelJson;
  const channels: Channel[] = [];
  for (let i = 0; i < opts.workers; i++) channels.push(createChannel<ToWorker, FromWorker>(spawnTrainingWorker(), i));
  let slots: TrainableSlot[];
  let grads: Float32Array[];
  let avg: Float32Array;
  let backend: string;
  try {
    const init: ToWorker = { type: 'init', backend: opts.backend ?? 'auto', modelJson, weights: opts.weights, optimizer: opts.optimizer, loss: opts.loss };
    const ready = await Promise.all(channels.map((c) => c.call(init, 'ready', [], opts.initTimeoutMs ?? 120_000)));
    slots = ready[0]!.slots;
    backend = ready[0]!.backend;
    grads = ready.map((r) => new Float32Array(r.grads));
    const total = [...slots, ...ready[0]!.stateSlots].reduce((a, s) => a + s.size, 0);
    if (grads.some((g) => g.length !== Math.max(1, total))) throw new EdgektError('EDGEKT_ERR_WORKER', 'workers disagree on the model layout');
    avg = new Float32Array(new SharedArrayBuffer(Math.max(1, total) * 4));
    await Promise.all(channels.map((c) => c.call({ type: 'attach', avg: avg.buffer as SharedArrayBuffer }, 'attached')));
  } catch (e) {
    await Promise.all(channels.map((c) => c.kill()));
    throw e;
  }

  let tensorCounts: number[] = channels.map(() => 0);
  let timings: StepTimings | null = null;
  let disposed = false;
  let chain: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    if (disposed) return Promise.reject(new EdgektError('EDGEKT_ERR_WORKER', 'trainer used after dispose'));
    const run = chain.then(fn, fn);
    chain = run.catch(() => undefined);
    return run;
  };

  async function step(batch: ParallelBatch): Promise<{ loss: number }> {
    const t0 = performance.now();
    const n = checkBatch(batch);
    const sizes = shardSizes(n, channels.length);
    const sx = product(batch.xShape.slice(1));
    const sy = product(batch.yShape.slice(1));
    let start = 0;
    const replies = await Promise.all(
      sizes.map((size, i) => {
        const x = batch.x.slice(start * sx, (start + size) * sx);
        const y = batch.y.slice(start * sy, (start + size) * sy);
        start += size;
        const msg: ToWorker = { type: 'grad', x, xShape: [size, ...batch.xShape.slice(1)], y, yShape: [size, ...batch.yShape.slice(1)] };
        return channels[i]!.call(msg, 'grads', [x.buffer as ArrayBuffer, y.buffer as ArrayBuffer], opts.stepTimeoutMs);
      }),
    );
    const coef = sizes.map((s) => s / n);
    const len = avg.length;
    const g0 = grads[0]!;
    const c0 = coef[0]!;
    for (let j = 0; j < len; j++) avg[j] = c0 * g0[j]!;
    for (let i = 1; i < sizes.length; i++) {
      const gi = grads[i]!;
      const ci = coef[i]!;
      for (let j = 0; j < len; j++) avg[j] = avg[j]! + ci * gi[j]!;
    }
    const applied = await Promise.all(channels.map((c) => c.call({ type: 'apply' }, 'applied', [], opts.stepTimeoutMs)));
    tensorCounts = applied.map((a) => a.numTensors);
    timings = { gradMs: replies.map((r) => r.ms), gradCpuMs: replies.map((r) => r.cpuMs), applyMs: applied.map((a) => a.ms), totalMs: performance.now() - t0 };
    return { loss: replies.reduce((a, r, i) => a + coef[i]! * r.loss, 0) };
  }

  async function getWeights(): Promise<WeightData[]> {
    return (await channels[0]!.call({ type: 'get-weights' }, 'weights')).weights;
  }

  async function divergence(): Promise<number> {
    const all = (await Promise.all(channels.map((c) => c.call({ type: 'get-weights' }, 'weights')))).map((r) => r.weights);
    let max = 0;
    for (const ws of all.slice(1)) {
      ws.forEach((w, k) => {
        const ref = all[0]![k]!.data;
        for (let j = 0; j < ref.length; j++) max = Math.max(max, Math.abs(ref[j]! - w.data[j]!));
      });
    }
    return max;
  }

  return {
    workers: channels.length,
    backend,
    step: (batch) => exclusive(() => step(batch)),
    getWeights: () => exclusive(getWeights),
    setWeights: (weights) =>
      exclusive(async () => {
        await Promise.all(channels.map((c) => c.call({ type: 'set-weights', weights }, 'weights-set')));
      }),
    workerTensorCounts: () => tensorCounts.slice(),
    lastStepTimings: () => timings,
    divergence: () => exclusive(divergence),
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      // Terminate first: a step still waiting on a worker is rejected rather than awaited.
      await Promise.all(channels.map((c) => c.kill()));
      await chain;
    },
  };
}
