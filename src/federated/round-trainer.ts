import type { RoundConfig } from '../config/federated.js';
import type { IndexMap } from './index-map.js';
import type { WeightSet } from './weights.js';

/**
 * The seam between a device's round client (MQTT, agent/) and its local training (jobs/): the
 * client receives the config and the full global model, the trainer slices, fine-tunes and answers
 * with the device's own tensors. Pure types, so both sides import the same thing.
 */
export interface RoundTrainRequest {
  roundId: string;
  round: number;
  config: RoundConfig;
  /** The full (un-pruned) global model; the trainer slices it by its own index map. */
  global: WeightSet;
  signal: AbortSignal;
}

export interface RoundTrainResult {
  /** Trained weights, shaped as the device's pruned model (kept channels only). */
  weights: WeightSet;
  indexMap: IndexMap;
  /** Local training examples (the FedAvg weight). */
  numSamples: number;
  /** Local loss, steps, seconds... for the round report; never aggregated. */
  metrics?: Record<string, number>;
}

export type RoundTrainer = (req: RoundTrainRequest) => Promise<RoundTrainResult>;
