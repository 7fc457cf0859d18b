import type { ClientUpdate } from './validate.js';
import type { WeightSet, WeightTensor } from './weights.js';

/**
 * BatchNorm moving statistics are not weights to average. A device's statistics describe the
 * activations of *its* pruned architecture on *its* data: pruning changes the input of every later
 * layer, and non-IID clients see different class mixes, so a (masked) mean of them fits no device
 * (measured in docs/benchmarks.md: the averaged statistics cost the medium group 30 points against
 * recalibrated ones). As in FedBN / SiloBN, aggregation reduces only the learned tensors; the
 * statistics stay as the global had them and every device recomputes its own on local data after
 * loading its slice (`loadGlobalSlice` in jobs/round-trainer.ts).
 */
export type BatchNormStatisticsRule = 'local' | 'average';

/** A BatchNorm moving mean or variance, by its WeightSet name (`layer/moving_mean`, `layer/moving_variance`). */
export function isBatchNormStatistic(name: string): boolean {
  const suffix = name.slice(name.lastIndexOf('/') + 1);
  return suffix === 'moving_mean' || suffix === 'moving_variance';
}

/** `w` without its BatchNorm statistics (what is aggregated, clipped and measured under the 'local' rule). */
export function learnedWeights(w: WeightSet): Record<string, WeightTensor> {
  return Object.fromEntries(Object.entries(w).filter(([name]) => !isBatchNormStatistic(name)));
}

/** The update restricted to its learned tensors (weights and index map alike). */
export function learnedUpdate(update: ClientUpdate): ClientUpdate {
  const { indexMap, ...rest } = update;
  return {
    ...rest,
    weights: learnedWeights(update.weights),
    ...(indexMap ? { indexMap: Object.fromEntries(Object.entries(indexMap).filter(([name]) => !isBatchNormStatistic(name))) } : {}),
  };
}
