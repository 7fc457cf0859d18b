import * as tf from '@tensorflow/tfjs';
import { systemClock, type Clock } from '../core/clock.js';
import { EdgektError } from '../core/errors.js';
import type { LatencyStats, LoadContext, ModelCost, PairedCost, Spread } from '../config/measurement.js';
import { createSystemLoadSampler, type LoadSampler } from './load-sampler.js';

export interface LatencyOptions {
  /** Untimed runs of each model first, so kernel setup and caches do not count. Default 5. */
  warmup?: number;
  /** Timed batch-1 runs per trial. Default 30. */
  runs?: number;
  /**
   * Trials: each gives its own percentiles, the figure is their median. Several trials spread over
   * time let one burst of background load spoil one trial, not the figure. Default 5.
   */
  trials?: number;
  clock?: Clock;
  /** Seed of the random input. */
  seed?: number;
  /** Load average and steal around each measurement. Default: os.loadavg() and /proc/stat. */
  load?: LoadSampler;
}

/** Nearest-rank percentile of an ascending array; p in [0, 100]. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** min, quartiles (nearest rank) and max of some values. */
export function spreadOf(values: readonly number[]): Spread {
  const s = [...values].sort((a, b) => a - b);
  return { min: s[0] ?? NaN, q1: percentile(s, 25), median: percentile(s, 50), q3: percentile(s, 75), max: s[s.length - 1] ?? NaN };
}

function inputShape(model: tf.LayersModel): number[] {
  if (model.inputs.length !== 1) {
    throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `latency probe needs one input, model has ${model.inputs.length}`);
  }
  const shape = model.inputs[0]!.shape.slice(1);
  if (shape.some((d) => d === null || d <= 0)) {
    throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `model input shape ${JSON.stringify(model.inputs[0]!.shape)} is not fully defined`);
  }
  return [1, ...(shape as number[])];
}

function runOnce(model: tf.LayersModel, x: tf.Tensor): void {
  const y = model.predict(x);
  const outs = Array.isArray(y) ? y : [y];
  // Reading the values back is what forces the backend to finish the work.
  for (const t of outs) t.dataSync();
  tf.dispose(outs);
}

/** Weight bytes as stored (float32) and parameter count. */
export function modelSize(model: tf.LayersModel): { params: number; modelSizeKB: number } {
  const params = model.countParams();
  return { params, modelSizeKB: (params * 4) / 1024 };
}

/** One model's latency over the trials of a run. */
export interface TrialLatency {
  latencyP50Ms: number;
  latencyP95Ms: number;
  latencyP99Ms: number;
  latency: LatencyStats;
}

/**
 * Batch-1 latency of several models in alternating trials (A, B, A, B, ...) after warm-up: each
 * model gets `runs` timed runs per trial and the figures are the medians of the per-trial
 * percentiles, so a burst of background load hits the models alike and spoils one trial, not the
 * figure. Synchronous runs, one at a time. Also returns the load around the whole run.
 */
export function interleavedTrials(models: readonly tf.LayersModel[], options: LatencyOptions = {}): { models: TrialLatency[]; load: LoadContext } {
  const warmup = options.warmup ?? 5;
  const runs = options.runs ?? 30;
  const trials = options.trials ?? 5;
  for (const [name, v] of [['runs', runs], ['trials', trials]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new EdgektError('EDGEKT_ERR_USAGE', `${name} must be a positive integer, got ${v}`);
  }
  const shape = inputShape(models[0]!);
  for (const m of models) {
    if (JSON.stringify(inputShape(m)) !== JSON.stringify(shape)) throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', 'interleaved models need the same input shape');
  }
  const clock = options.clock ?? systemClock;
  const x = tf.randomNormal(shape, 0, 1, 'float32', options.seed ?? 7);
  const end = (options.load ?? createSystemLoadSampler()).begin();
  try {
    for (const m of models) for (let i = 0; i < warmup; i++) runOnce(m, x);
    const per = models.map(() => ({ p50: [] as number[], p95: [] as number[], p99: [] as number[] }));
    for (let t = 0; t < trials; t++) {
      models.forEach((m, k) => {
        const times: number[] = [];
        for (let i = 0; i < runs; i++) {
          const t0 = clock.hrMs();
          runOnce(m, x);
          times.push(clock.hrMs() - t0);
        }
        times.sort((a, b) => a - b);
        per[k]!.p50.push(percentile(times, 50));
        per[k]!.p95.push(percentile(times, 95));
        per[k]!.p99.push(percentile(times, 99));
      });
    }
    const load = end();
    return {
      load,
      models: per.map((p) => {
        const p50 = spreadOf(p.p50);
        const p95 = spreadOf(p.p95);
        return { latencyP50Ms: p50.median, latencyP95Ms: p95.median, latencyP99Ms: spreadOf(p.p99).median, latency: { trials, runsPerTrial: runs, p50, p95 } };
      }),
    };
  } finally {
    x.dispose();
  }
}

/** Peak tensor memory of one batch-1 inference (weights and input included) and size. */
async function memoryAndSize(model: tf.LayersModel, seed: number): Promise<Pick<ModelCost, 'peakMemoryMB' | 'modelSizeKB' | 'params'>> {
  const x = tf.randomNormal(inputShape(model), 0, 1, 'float32', seed);
  try {
    // peakBytes counts every live tensor (other models too): keep only what this call allocates
    // on top, then add this model's own weights and the input.
    const before = tf.memory().numBytes;
    const info = await tf.profile(() => runOnce(model, x));
    const size = modelSize(model);
    const activations = Math.max(0, info.peakBytes - before);
    return { peakMemoryMB: (activations + size.params * 4 + x.size * 4) / 2 ** 20, ...size };
  } finally {
    x.dispose();
  }
}

/**
 * Measures a model the way budgets are written: batch-1 latency percentiles (median over trials,
 * spread kept) after warm-up on the current backend, peak tensor memory of one inference, size,
 * and the load around the measurement.
 */
export async function measureModelCost(model: tf.LayersModel, options: LatencyOptions = {}): Promise<ModelCost> {
  const run = interleavedTrials([model], options);
  return { ...run.models[0]!, ...(await memoryAndSize(model, options.seed ?? 7)), load: run.load };
}

/**
 * A candidate and a reference (the teacher, or the last accepted student) measured in alternating
 * trials of one run: both see the same load, so their ratio holds where each figure alone may not.
 */
export async function measurePair(candidate: tf.LayersModel, reference: tf.LayersModel, options: LatencyOptions = {}): Promise<PairedCost> {
  const run = interleavedTrials([candidate, reference], options);
  const seed = options.seed ?? 7;
  const [c, r] = run.models as [TrialLatency, TrialLatency];
  const cand: ModelCost = { ...c, ...(await memoryAndSize(candidate, seed)), load: run.load };
  const ref: ModelCost = { ...r, ...(await memoryAndSize(reference, seed)), load: run.load };
  return { candidate: cand, reference: ref, ratioP95: c.latencyP95Ms / r.latencyP95Ms, ratioP50: c.latencyP50Ms / r.latencyP50Ms };
}

/** The bench-side implementation of compress/'s CostProbe. */
export function createLatencyProbe(options: LatencyOptions = {}): {
  measure(model: tf.LayersModel): Promise<ModelCost>;
  compare(candidate: tf.LayersModel, reference: tf.LayersModel): Promise<PairedCost>;
} {
  const o: LatencyOptions = { ...options, load: options.load ?? createSystemLoadSampler() };
  return { measure: (model) => measureModelCost(model, o), compare: (c, r) => measurePair(c, r, o) };
}
