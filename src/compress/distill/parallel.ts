import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../../core/errors.js';
import type { ImageSet } from '../../data/types.js';
import { gather } from '../../data/batches.js';
import { augmentImages, type AugmentOptions } from '../../data/augment.js';
import type { BackendChoice } from '../../runtime/backend.js';
import { createChannel, shardSizes, weightedSum, type Channel } from '../../runtime/parallel/channel.js';
import { modelData } from '../../runtime/parallel/model-data.js';
import { siblingModule, spawnWorker } from '../../runtime/parallel/spawn.js';
import { noisyTeacherFactors, type LossParts } from './losses.js';
import type { DistillFrame, FromDistillWorker, ToDistillWorker } from './parallel-protocol.js';
import type { DistillState } from './state.js';
import { createNoiseRng, DISTILL_DEFAULTS, type DistillPhase, type DistillTrainerOptions } from './trainer.js';

type DistillChannel = Channel<ToDistillWorker, FromDistillWorker>;

export interface DistillWorkersOptions {
  /** Worker threads (one tfjs engine, teacher and student replica each). */
  workers: number;
  backend?: BackendChoice;
  /** Fail if the workers are not ready in time (tfjs, wasm and the teacher). Default 120 s. */
  initTimeoutMs?: number;
}

/**
 * Worker threads holding the frozen teacher, kept across distillation runs (the prune loop's
 * fine-tunes): a run sends only the student's weights, and its topology when it changed.
 */
export interface DistillWorkers {
  readonly workers: number;
  readonly teacher: tf.LayersModel | null;
  readonly backend: string;
  /** Student replicas rebuilt so far (a run on an unchanged architecture reuses them). */
  readonly rebuilds: number;
  /** Starts a run on this student's current weights. */
  begin(student: tf.LayersModel, options: DistillTrainerOptions): Promise<ParallelRun>;
  dispose(): Promise<void>;
}

/** One distillation run across the workers: the data-parallel counterpart of a DistillTrainer's step. */
export interface ParallelRun {
  /**
   * One step on the samples at `indices`: shard gradients averaged by shard size, then one Adam
   * update everywhere. `augment` is applied to the whole batch before it is sharded.
   */
  step(data: ImageSet, indices: Int32Array, phase: DistillPhase, learningRate: number, augment?: AugmentOptions): Promise<LossParts>;
  /** Worker 0's state, with the main thread's noise stream. */
  capture(frame: DistillFrame): Promise<DistillState>;
  restore(state: DistillState): Promise<void>;
  /** Live tensors in each worker after the last step (flat across steps: no leak). */
  workerTensorCounts(): number[];
  /** Writes the trained weights into the student and frees the workers' trainers (replicas are kept). */
  end(student: tf.LayersModel): Promise<void>;
}

export async function createDistillWorkers(teacher: tf.LayersModel | null, o: DistillWorkersOptions): Promise<DistillWorkers> {
  if (!Number.isInteger(o.workers) || o.workers < 1) throw new EdgektError('EDGEKT_ERR_USAGE', `workers must be a positive integer, got ${o.workers}`);
  const entry = siblingModule(import.meta.url, 'parallel-worker');
  const channels: DistillChannel[] = Array.from({ length: o.workers }, (_, i) => createChannel<ToDistillWorker, FromDistillWorker>(spawnWorker(entry), i));
  let backend = '';
  try {
    const init: ToDistillWorker = { type: 'init', backend: o.backend ?? 'auto', teacher: teacher ? modelData(teacher) : null };
    backend = (await Promise.all(channels.map((c) => c.call(init, 'ready', [], o.initTimeoutMs ?? 120_000))))[0]!.backend;
  } catch (e) {
    await Promise.all(channels.map((c) => c.kill()));
    throw e;
  }
  let rebuilds = 0;
  let busy = false;
  let disposed = false;
  const k = teacher ? ((teacher.outputs[0]!.shape[1] as number | null) ?? 0) : 0;

  async function begin(student: tf.LayersModel, options: DistillTrainerOptions): Promise<ParallelRun> {
    if (disposed) throw new EdgektError('EDGEKT_ERR_WORKER', 'distillation workers used after dispose');
    if (busy) throw new EdgektError('EDGEKT_ERR_INTERNAL', 'one distillation run at a time on a worker pool');
    const { modelJson, weights } = modelData(student);
    const msg: ToDistillWorker = { type: 'begin', student: { json: JSON.stringify(modelJson), weights }, options };
    const begun = await Promise.all(channels.map((c) => c.call(msg, 'begun')));
    if (begun[0]!.rebuilt) rebuilds++;
    busy = true;
    const noiseRng = createNoiseRng(options.seed ?? DISTILL_DEFAULTS.seed);
    const noise = { sigma: options.noiseSigma ?? DISTILL_DEFAULTS.noiseSigma, fraction: options.noiseFraction ?? DISTILL_DEFAULTS.noiseFraction, rng: noiseRng };
    let counts: number[] = channels.map(() => 0);

    async function step(data: ImageSet, indices: Int32Array, phase: DistillPhase, learningRate: number, augment?: AugmentOptions): Promise<LossParts> {
      const n = indices.length;
      const gathered = gather(data, indices);
      const labels = gathered.labels;
      const x = augment ? augmentImages(gathered.x, [n, ...data.shape], augment) : gathered.x;
      // Drawn once for the whole batch, as one thread would, then sliced: results do not depend on W.
      const factors = teacher ? noisyTeacherFactors(n, k, noise) : null;
      const sizes = shardSizes(n, channels.length);
      const px = data.shape[0] * data.shape[1] * data.shape[2];
      let start = 0;
      const replies = await Promise.all(
        sizes.map((size, i) => {
          const sx = x.slice(start * px, (start + size) * px);
          const sl = labels ? Float32Array.from(labels.subarray(start, start + size)) : null;
          const sn = factors ? factors.slice(start * k, (start + size) * k) : null;
          start += size;
          const transfer = [sx, sl, sn].flatMap((a) => (a ? [a.buffer as ArrayBuffer] : []));
          return channels[i]!.call({ type: 'grad', x: sx, xShape: [size, ...data.shape], labels: sl, phase, noise: sn }, 'grads', transfer);
        }),
      );
      // Every term is a mean over samples (the proximal term is the same in every shard), so the
      // size-weighted average of shard gradients and losses is the whole batch's.
      const coef = sizes.map((s) => s / n);
      const avg = weightedSum(replies.map((r) => r.grads), coef);
      const applied = await Promise.all(channels.map((c) => c.call({ type: 'apply', phase, grads: avg, learningRate }, 'applied')));
      counts = applied.map((a) => a.numTensors);
      return averageParts(replies.map((r) => r.parts), coef);
    }

    return {
      step,
      capture: async (frame) => {
        const { state } = await channels[0]!.call({ type: 'capture', frame }, 'state');
        return { ...state, rng: { ...state.rng, noise: noiseRng.getState() } };
      },
      restore: async (state) => {
        await Promise.all(channels.map((c) => c.call({ type: 'restore', state }, 'restored')));
        noiseRng.setState(state.rng.noise);
      },
      workerTensorCounts: () => counts.slice(),
      end: async (s) => {
        busy = false;
        const ended = await Promise.all(channels.map((c) => c.call({ type: 'end' }, 'ended')));
        writeWeights(s, ended.map((e) => e.weights));
      },
    };
  }

  return {
    workers: channels.length,
    teacher,
    backend,
    get rebuilds() {
      return rebuilds;
    },
    begin,
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      await Promise.all(channels.map((c) => c.kill()));
    },
  };
}

/**
 * Trainable weights are identical in every worker (same averaged gradients); BatchNorm's moving
 * statistics saw each worker's own shards, so they are averaged.
 */
function writeWeights(student: tf.LayersModel, all: Array<Array<{ shape: number[]; data: Float32Array; trainable: boolean }>>): void {
  const first = all[0]!;
  if (first.length !== student.weights.length) throw new EdgektError('EDGEKT_ERR_WORKER', `workers returned ${first.length} weights, the student has ${student.weights.length}`);
  const values = first.map((w, i) => (w.trainable ? w.data : weightedSum(all.map((ws) => ws[i]!.data), all.map(() => 1 / all.length))));
  tf.tidy(() => student.setWeights(values.map((v, i) => tf.tensor(v, first[i]!.shape, 'float32'))));
}

function averageParts(parts: LossParts[], coef: number[]): LossParts {
  const avg = (f: (p: LossParts) => number) => parts.reduce((a, p, i) => a + coef[i]! * f(p), 0);
  const p0 = parts[0]!;
  return {
    total: avg((p) => p.total),
    hints: p0.hints.map((_, j) => avg((p) => p.hints[j]!)),
    kd: p0.kd === null ? null : avg((p) => p.kd!),
    ce: p0.ce === null ? null : avg((p) => p.ce!),
    ...(p0.proximal !== undefined ? { proximal: avg((p) => p.proximal!) } : {}),
  };
}
