import type * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../data/types.js';
import { distill, type DistillOptions } from './distill/index.js';
import { PIPELINE_DISTILL } from './pipeline/stages.js';

/** What a federated round asks of local training (the client-side fields of a round config). */
export interface RoundTrainOptions {
  epochs: number;
  learningRate: number;
  batchSize: number;
  /** FedProx μ: the proximal term μ/2·‖w − w_round_start‖², inside the gradient tape. 0: none. */
  mu: number;
  seed: number;
  signal?: AbortSignal;
  /** Caps the steps of the round (same compute for every condition of an experiment). */
  maxSteps?: number;
  /** Batches over which BatchNorm statistics are recomputed after training. Default 10. */
  recalibrateBatches?: number;
  /** Extra distillation settings (temperature, weights, noise, hints). */
  distill?: Omit<DistillOptions, 'epochs' | 'batchSize' | 'learningRate' | 'seed' | 'signal' | 'maxSteps' | 'proximal' | 'checkpoint'>;
}

export interface RoundTrainMetrics {
  steps: number;
  seconds: number;
  /** Mean total loss over the last epoch (proximal term included). */
  loss: number;
  /** Mean proximal term over the last epoch (0 without μ). */
  proximal: number;
}

/**
 * One round of local fine-tuning of a device's pruned student, in place, from the weights it holds
 * (the round's global slice): multi-level knowledge transfer (hints, noisy-teacher KD, hard labels;
 * the pipeline's joint schedule at T = 2) plus FedProx's proximal term anchored at those weights.
 * A fresh trainer per round: adapters and Adam start over, so a round depends only on its start.
 */
export async function fineTuneRound(teacher: tf.LayersModel | null, student: tf.LayersModel, data: ImageSet, o: RoundTrainOptions): Promise<RoundTrainMetrics> {
  const r = await distill(teacher, student, data, {
    temperature: PIPELINE_DISTILL.temperature,
    schedule: 'joint',
    lrSchedule: 'constant',
    ...o.distill,
    epochs: o.epochs,
    batchSize: o.batchSize,
    learningRate: o.learningRate,
    seed: o.seed,
    recalibrateBatches: o.recalibrateBatches ?? 10,
    ...(o.mu > 0 ? { proximal: { mu: o.mu } } : {}),
    ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const last = r.history[r.history.length - 1]?.phases;
  const phase = last?.joint ?? last?.logits ?? last?.hints;
  return { steps: r.steps, seconds: r.seconds, loss: phase?.total ?? NaN, proximal: phase?.proximal ?? 0 };
}
