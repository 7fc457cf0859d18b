import { zipWeights, type WeightSet, type WeightTensor } from './weights.js';

export interface ProximalTerm {
  /** μ/2 · ‖w − w_anchor‖². */
  value: number;
  /** μ · (w − w_anchor), per tensor: add it to the loss gradient before the optimizer step. */
  gradient: Record<string, WeightTensor>;
}

/**
 * FedProx's client-side term (Li et al. 2020): keeps local training near the model the round
 * started from, which tames client drift on non-IID data. `anchor` is the device's slice of the
 * global model (`sliceForDevice`), so it has the device's shapes; the server side is FedAvg.
 */
export function proximalTerm(weights: WeightSet, anchor: WeightSet, mu: number): ProximalTerm {
  let sq = 0;
  const gradient = zipWeights(weights, anchor, (w, a) => {
    const d = w - a;
    sq += d * d;
    return mu * d;
  });
  return { value: (mu / 2) * sq, gradient };
}
