import { normal, type Rng } from '../core/random.js';
import { deltaOf, toWeightsUpdate } from './delta.js';
import type { ClientUpdate } from './validate.js';
import { l2Norm, zipWeights, type WeightSet, type WeightTensor } from './weights.js';

export interface ClipResult {
  update: ClientUpdate;
  /** L2 norm of the delta before clipping. */
  norm: number;
  clipped: boolean;
}

/** Same form as `update` came in (weights or delta), with `delta` as its change. */
function withDelta(global: WeightSet, update: ClientUpdate, delta: WeightSet): ClientUpdate {
  const asDelta: ClientUpdate = { ...update, weights: delta, isDelta: true };
  return update.isDelta ? asDelta : toWeightsUpdate(global, asDelta);
}

function clippedDelta(global: WeightSet, update: ClientUpdate, maxNorm: number): { delta: Record<string, WeightTensor>; norm: number; clipped: boolean } {
  const delta = deltaOf(global, update);
  const norm = l2Norm(delta);
  if (!(norm > maxNorm)) return { delta, norm, clipped: false };
  const scale = maxNorm / norm;
  return { delta: zipWeights(delta, delta, (d) => d * scale), norm, clipped: true };
}

/**
 * Bounds one update's influence: its delta vs the global model is scaled down to L2 norm
 * `maxNorm` when larger (norm clipping as in DP-FedAvg and robust aggregation baselines).
 */
export function clipUpdate(global: WeightSet, update: ClientUpdate, maxNorm: number): ClipResult {
  const { delta, norm, clipped } = clippedDelta(global, update, maxNorm);
  return { update: clipped ? withDelta(global, update, delta) : update, norm, clipped };
}

export interface NoiseOptions {
  /** Clip bound C. */
  clip: number;
  /** Noise multiplier σ: each delta coordinate gets N(0, σ²C²). */
  sigma: number;
  /** Seeded (src/core/random.ts) so a run, and a test, can be replayed exactly. */
  rng: Rng;
}

/**
 * Client-side DP-SGD-style release: clip the delta to C, then add Gaussian noise of scale σC to
 * every coordinate, in tensor order then element order. Privacy accounting is the caller's.
 */
export function privatizeUpdate(global: WeightSet, update: ClientUpdate, options: NoiseOptions): ClientUpdate {
  const { delta } = clippedDelta(global, update, options.clip);
  const scale = options.sigma * options.clip;
  return withDelta(global, update, zipWeights(delta, delta, (d) => d + scale * normal(options.rng)));
}
