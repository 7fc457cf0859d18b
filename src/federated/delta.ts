import { sliceForDevice } from './index-map.js';
import type { ClientUpdate } from './validate.js';
import { zipWeights, type WeightSet, type WeightTensor } from './weights.js';

/** `update − global` on the coordinates the update holds (as is when it already is a delta). */
export function deltaOf(global: WeightSet, update: ClientUpdate): Record<string, WeightTensor> {
  if (update.isDelta) return zipWeights(update.weights, update.weights, (d) => d);
  return zipWeights(update.weights, sliceForDevice(global, update.indexMap), (w, g) => w - g);
}

/** The same update carried as a delta: what float16 should encode, since deltas are small. */
export function toDeltaUpdate(global: WeightSet, update: ClientUpdate): ClientUpdate {
  return update.isDelta ? update : { ...update, weights: deltaOf(global, update), isDelta: true };
}

/** The update as weights: `slice(global) + delta` (as is when it already holds weights). */
export function toWeightsUpdate(global: WeightSet, update: ClientUpdate): ClientUpdate {
  if (!update.isDelta) return update;
  const { isDelta: _, ...rest } = update;
  return { ...rest, weights: zipWeights(update.weights, sliceForDevice(global, update.indexMap), (d, g) => d + g) };
}
