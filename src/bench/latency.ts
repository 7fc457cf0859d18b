import * as tf from '@tensorflow/tfjs';
import { systemClock, type Clock } from '../core/clock.js';
import { EdgektError } from '../core/errors.js';
import type { ModelCost } from '../config/device-profile.js';

export interface LatencyOptions {
  /** Untimed runs first, so kernel setup and caches do not count. Default 5. */
  warmup?: number;
  /** Timed batch-1 runs. Default 30. */
  runs?: number;
  clock?: Clock;
  /** Seed of the random input. */
  seed?: number;
}

/** Nearest-rank percentile of an ascending array; p in [0, 100]. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
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

/**
 * Measures a model the way budgets are written: batch-1 latency percentiles after warm-up on the
 * current backend, peak tensor memory of one inference, and size. Synchronous runs, one at a time,
 * so other work on this thread does not interleave with the timing.
 */
export async function measureModelCost(model: tf.LayersModel, options: LatencyOptions = {}): Promise<ModelCost> {
  const warmup = options.warmup ?? 5;
  const runs = options.runs ?? 30;
  if (!Number.isInteger(runs) || runs < 1) throw new EdgektError('EDGEKT_ERR_USAGE', `runs must be a positive integer, got ${runs}`);
  const clock = options.clock ?? systemClock;
  const x = tf.randomNormal(inputShape(model), 0, 1, 'float32', options.seed ?? 7);
  try {
    for (let i = 0; i < warmup; i++) runOnce(model, x);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = clock.hrMs();
      runOnce(model, x);
      times.push(clock.hrMs() - t0);
    }
    times.sort((a, b) => a - b);
    // peakBytes counts every live tensor (other models too): keep only what this call allocates
    // on top, then add this model's own weights and the input.
    const before = tf.memory().numBytes;
    const info = await tf.profile(() => runOnce(model, x));
    const size = modelSize(model);
    const activations = Math.max(0, info.peakBytes - before);
    return {
      latencyP50Ms: percentile(times, 50),
      latencyP95Ms: percentile(times, 95),
      latencyP99Ms: percentile(times, 99),
      peakMemoryMB: (activations + size.params * 4 + x.size * 4) / 2 ** 20,
      ...size,
    };
  } finally {
    x.dispose();
  }
}

/** The bench-side implementation of compress/'s CostProbe. */
export function createLatencyProbe(options: LatencyOptions = {}): { measure(model: tf.LayersModel): Promise<ModelCost> } {
  return { measure: (model) => measureModelCost(model, options) };
}
