/**
 * Messages between data-parallel distillation (main thread) and its workers. Each worker holds a
 * frozen teacher replica (sent once), a student replica (rebuilt only when the architecture
 * changes) and a DistillTrainer (adapters, Adam) made fresh for every run. Plain data only.
 */
import type { BackendChoice } from '../../runtime/backend.js';
import type { ModelData } from '../../runtime/parallel/model-data.js';
import type { LossParts } from './losses.js';
import type { DistillState } from './state.js';
import type { DistillPhase, DistillTrainerOptions } from './trainer.js';

export type DistillFrame = Pick<DistillState, 'run' | 'position' | 'history' | 'epochSums'>;

export type ToDistillWorker =
  | { type: 'init'; backend: BackendChoice; teacher: ModelData | null }
  | { type: 'begin'; student: { json: string; weights: ModelData['weights'] }; options: DistillTrainerOptions }
  | { type: 'grad'; x: Float32Array; xShape: number[]; labels: Float32Array | null; phase: DistillPhase; noise: Float32Array | null }
  | { type: 'apply'; phase: DistillPhase; grads: Float32Array; learningRate: number }
  | { type: 'capture'; frame: DistillFrame }
  | { type: 'restore'; state: DistillState }
  | { type: 'end' };

export type FromDistillWorker =
  | { type: 'ready'; backend: string }
  | { type: 'begun'; rebuilt: boolean }
  | { type: 'grads'; parts: LossParts; grads: Float32Array }
  | { type: 'applied'; numTensors: number }
  | { type: 'state'; state: DistillState }
  | { type: 'restored' }
  /** Every student weight in `model.weights` order; the trainer is freed, the replica kept. */
  | { type: 'ended'; weights: Array<{ shape: number[]; data: Float32Array; trainable: boolean }>; numTensors: number };
