import * as tf from '@tensorflow/tfjs';
import { graphFromModel } from '../model/index.js';
import { interleavedTrials, percentile, type LatencyOptions } from './latency.js';
import type { LoadContext } from '../config/measurement.js';

/**
 * Student latency against architecture: batch-1 latency of several models (the teacher first) in
 * one interleaved run, each beside its compute bound — MACs ÷ the backend's best forward
 * throughput measured on the teacher over a few batch sizes (the biggest model amortises per-op
 * overhead best). A student far above its bound is overhead-bound: fewer ops (layers) buy
 * latency, fewer MACs do not.
 */

export interface ArchModel {
  name: string;
  model: tf.LayersModel;
}

export interface ArchRow {
  name: string;
  params: number;
  macs: number;
  /** Layers that run an op at inference (the input layer excluded). */
  ops: number;
  latencyP50Ms: number;
  /** Teacher p50 ÷ this model's p50, same run. */
  speedup: number;
  /** MACs ÷ measured throughput. */
  boundMs: number;
  /** p50 ÷ bound: 1 = compute-bound; large = per-op overhead dominates. */
  overBound: number;
}

export interface ArchBenchResult {
  /** The teacher's best multiply-accumulates per millisecond over the batch sizes tried. */
  macsPerMs: number;
  /** The batch size that reached it. */
  throughputBatch: number;
  rows: ArchRow[];
  load: LoadContext;
}

/** MACs per ms of a model's forward pass at `batch` (median of `repeats` timed calls after one warm-up). */
export function forwardThroughput(model: tf.LayersModel, macsPerSample: number, batch = 64, repeats = 5): number {
  const shape = [batch, ...(model.inputs[0]!.shape.slice(1) as number[])];
  const x = tf.randomNormal(shape, 0, 1, 'float32', 11);
  try {
    const once = (): number => {
      const t0 = performance.now();
      const y = model.predict(x) as tf.Tensor;
      y.dataSync();
      y.dispose();
      return performance.now() - t0;
    };
    once();
    const times = Array.from({ length: repeats }, once).sort((a, b) => a - b);
    return (macsPerSample * batch) / percentile(times, 50);
  } finally {
    x.dispose();
  }
}

/** The best of forwardThroughput over batch sizes: the backend's compute rate once per-op overhead is amortised. */
export function bestForwardThroughput(model: tf.LayersModel, macsPerSample: number, batches: readonly number[] = [1, 4, 16, 64]): { macsPerMs: number; batch: number } {
  const repeats = (b: number): number => Math.max(5, Math.ceil(64 / b));
  const rates = batches.map((b) => ({ b, r: forwardThroughput(model, macsPerSample, b, repeats(b)) }));
  const best = rates.reduce((a, x) => (x.r > a.r ? x : a));
  return { macsPerMs: best.r, batch: best.b };
}

export function archBench(models: readonly ArchModel[], options: LatencyOptions & { throughputBatches?: readonly number[] } = {}): ArchBenchResult {
  if (models.length === 0) throw new TypeError('archBench needs at least the teacher');
  const graphs = models.map((m) => graphFromModel(m.model));
  const { macsPerMs, batch } = bestForwardThroughput(models[0]!.model, graphs[0]!.totalMacs, options.throughputBatches);
  const run = interleavedTrials(models.map((m) => m.model), options);
  const t0 = run.models[0]!.latencyP50Ms;
  const rows = models.map((m, i): ArchRow => {
    const g = graphs[i]!;
    const p50 = run.models[i]!.latencyP50Ms;
    const boundMs = g.totalMacs / macsPerMs;
    return {
      name: m.name, params: g.totalParams, macs: g.totalMacs, ops: m.model.layers.filter((l) => l.getClassName() !== 'InputLayer').length,
      latencyP50Ms: p50, speedup: t0 / p50, boundMs, overBound: p50 / boundMs,
    };
  });
  return { macsPerMs, throughputBatch: batch, rows, load: run.load };
}
