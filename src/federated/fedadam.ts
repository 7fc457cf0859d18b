import { EdgektError } from '../core/errors.js';
import type { MaskedResult } from './reduce.js';
import { sameShape, zerosLike, type WeightSet, type WeightTensor } from './weights.js';

export interface FedAdamOptions {
  beta1: number;
  beta2: number;
  tau: number;
  eta: number;
}

/** Server optimizer state, carried between rounds as data (stored with the round, replayable). */
export interface FedAdamState {
  /** Rounds applied so far. */
  step: number;
  m: WeightSet;
  v: WeightSet;
}

export function initialFedAdamState(global: WeightSet): FedAdamState {
  return { step: 0, m: zerosLike(global), v: zerosLike(global) };
}

function checkState(global: WeightSet, state: FedAdamState): void {
  for (const [name, g] of Object.entries(global)) {
    for (const part of [state.m[name], state.v[name]]) {
      if (!part || !sameShape(part.shape, g.shape)) {
        throw new EdgektError('EDGEKT_ERR_INTERNAL', `FedAdam state does not match the global model at ${name}; start from initialFedAdamState`);
      }
    }
  }
}

/**
 * FedAdam (Reddi et al. 2021, Algorithm 2, no bias correction): Δ = (sample-weighted mean of the
 * holders) − x; m ← β1·m + (1−β1)·Δ; v ← β2·v + (1−β2)·Δ²; x ← x + η·m / (√v + τ).
 * Coordinates no device holds are left alone, m and v included (lazy, as sparse Adam), so a
 * channel nobody trains does not drift on stale momentum.
 */
export function fedAdamStep(global: WeightSet, mean: MaskedResult, state: FedAdamState, o: FedAdamOptions): { weights: Record<string, WeightTensor>; state: FedAdamState } {
  checkState(global, state);
  const weights: Record<string, WeightTensor> = {};
  const m: Record<string, WeightTensor> = {};
  const v: Record<string, WeightTensor> = {};
  for (const [name, g] of Object.entries(global)) {
    const x = g.values.slice();
    const mt = state.m[name]!.values.slice();
    const vt = state.v[name]!.values.slice();
    const avg = mean.weights[name]!.values;
    const held = mean.held[name]!;
    for (let i = 0; i < x.length; i++) {
      if (!held[i]) continue;
      const d = avg[i]! - g.values[i]!;
      mt[i] = o.beta1 * mt[i]! + (1 - o.beta1) * d;
      vt[i] = o.beta2 * vt[i]! + (1 - o.beta2) * d * d;
      x[i] = g.values[i]! + (o.eta * mt[i]!) / (Math.sqrt(vt[i]!) + o.tau);
    }
    weights[name] = { shape: [...g.shape], values: x };
    m[name] = { shape: [...g.shape], values: mt };
    v[name] = { shape: [...g.shape], values: vt };
  }
  return { weights, state: { step: state.step + 1, m, v } };
}
