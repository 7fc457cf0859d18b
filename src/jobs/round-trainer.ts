import type * as tf from '@tensorflow/tfjs';
import type { RoundConfig } from '../config/federated.js';
import { createRng } from '../core/random.js';
import { throwIfAborted } from '../core/errors.js';
import type { ImageSet } from '../data/types.js';
import { pruneForEnrolment, prefixStudent, type EnrolPruning } from '../compress/enrol.js';
import { recalibrateBatchNorm } from '../compress/distill/index.js';
import { fineTuneRound, type RoundTrainOptions } from '../compress/round-train.js';
import type { PrunePlan } from '../compress/prune/index.js';
import { buildDependencyGraph } from '../model/dependency-graph.js';
import {
  clipUpdate,
  composeKept,
  indexMapFromKept,
  privatizeUpdate,
  sliceForDevice,
  type IndexMap,
  type KeptChannels,
  type RoundTrainer,
  type WeightSet,
} from '../federated/index.js';
import { setModelWeights, weightSetFromModel, weightSpecsOf } from '../federated/tfjs-weights.js';

/**
 * Where federated rounds meet compression: enrolment (the base pruned to a device's budget, with
 * its index map) and the trainer the agent's round client calls each round. jobs/ because it needs
 * compress/ and federated/, which may not import each other.
 */

export interface EnrolDeviceOptions {
  /** The global base: the lightened, distilled student before pruning. */
  base: tf.LayersModel;
  /** Local data: BatchNorm statistics of the pruned student are recomputed on it. */
  data?: ImageSet;
  pruning: EnrolPruning;
  /** 'importance' (default): L1-chosen channels; 'prefix': HeteroFL's channels 0..k−1 at the same counts. */
  channels?: 'importance' | 'prefix';
}

export interface EnrolledDevice {
  student: tf.LayersModel;
  plans: PrunePlan[];
  /** Per group key: the base's channel indices the student keeps. */
  kept: Record<string, number[]>;
  indexMap: IndexMap;
}

/** Prunes the base to the device's budget and returns the student with its kept channels and index map. */
export async function enrolDevice(o: EnrolDeviceOptions): Promise<EnrolledDevice> {
  const skipLayers = o.pruning.kind === 'fraction' ? o.pruning.skipLayers ?? [] : o.pruning.loop.skipLayers ?? [];
  let enrolled = await pruneForEnrolment(o.base, o.pruning, o.channels === 'prefix' ? undefined : o.data);
  if (o.channels === 'prefix') {
    const prefix = await prefixStudent(o.base, enrolled.plans, o.data, skipLayers);
    enrolled.model.dispose();
    enrolled = prefix;
  }
  const { kept, indexMap } = indexMapOfPlans(o.base, enrolled.plans, skipLayers);
  return { student: enrolled.model, plans: enrolled.plans, kept, indexMap };
}

/** Kept channels (composed over the history, relative to the base) and the index map they imply. */
export function indexMapOfPlans(base: tf.LayersModel, plans: readonly PrunePlan[], skipLayers: readonly string[] = []): { kept: Record<string, number[]>; indexMap: IndexMap } {
  const graph = buildDependencyGraph(base, { skipLayers });
  const kept: KeptChannels = composeKept(graph, plans);
  return { kept: { ...kept } as Record<string, number[]>, indexMap: indexMapFromKept(graph, weightSpecsOf(base), kept) };
}

/**
 * A device's model from a global: its slice loaded into the device's student, then (with `data`)
 * BatchNorm statistics recomputed on local data. Aggregation leaves the statistics out (bn-stats.ts
 * in federated/), so a slice carries the base's, which fit no pruned architecture: this is the model
 * a device deploys and is evaluated with.
 */
export function loadGlobalSlice(student: tf.LayersModel, global: WeightSet, indexMap: IndexMap, data?: ImageSet, batches = 10): void {
  setModelWeights(student, sliceForDevice(global, indexMap));
  if (data && batches > 0) recalibrateBatchNorm(student, data, { batches, batchSize: 64 });
}

export interface RoundTrainerOptions {
  /** Frozen teacher of the multi-level transfer (null: hard labels only). */
  teacher: tf.LayersModel | null;
  /** The device's pruned student; each round loads the global slice into it. */
  student: tf.LayersModel;
  indexMap: IndexMap;
  /** Local labelled data. */
  data: ImageSet;
  /** Seeds every round's training (mixed with the round number) and the client-side noise. */
  seed?: number;
  /** Extra local-training settings (cap on steps, distillation weights...). */
  train?: Pick<RoundTrainOptions, 'maxSteps' | 'recalibrateBatches' | 'distill'>;
}

/** The client-side fields of a round config as local-training options. */
export function roundTrainOptions(config: RoundConfig, seed: number, signal?: AbortSignal): RoundTrainOptions {
  return { epochs: config.epochs, learningRate: config.learningRate, batchSize: config.batchSize, mu: config.mu, seed: seed * 1000 + config.round, ...(signal ? { signal } : {}) };
}

/**
 * The trainer a device's round client injects: slice the global by the device's index map, load it,
 * fine-tune locally (transfer + FedProx), then clip and noise on the device when the config asks
 * (DP-SGD style), and answer with the pruned-shaped weights.
 */
export function createRoundTrainer(o: RoundTrainerOptions): RoundTrainer {
  const seed = o.seed ?? 0;
  return async (req) => {
    throwIfAborted(req.signal, `before round ${req.round}`);
    const start = sliceForDevice(req.global, o.indexMap);
    setModelWeights(o.student, start);
    const m = await fineTuneRound(o.teacher, o.student, o.data, { ...roundTrainOptions(req.config, seed, req.signal), ...o.train });
    const weights = protect(start, weightSetFromModel(o.student), req.config, seed);
    return { weights, indexMap: o.indexMap, numSamples: o.data.count, metrics: { ...m } };
  };
}

/** Client-side clipping (and Gaussian noise with σ > 0) of the delta against the round's start. */
function protect(start: WeightSet, trained: WeightSet, config: RoundConfig, seed: number): WeightSet {
  if (config.clip === undefined) return trained;
  const update = { clientId: 'self', round: config.round, numSamples: 1, weights: trained };
  if (config.sigma > 0) return privatizeUpdate(start, update, { clip: config.clip, sigma: config.sigma, rng: createRng(seed * 7919 + config.round) }).weights;
  return clipUpdate(start, update, config.clip).update.weights;
}
