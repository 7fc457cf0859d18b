/**
 * Messages between the data-parallel trainer (main thread) and its workers. Plain structured-clone
 * data only; gradients travel through SharedArrayBuffers, not messages.
 */
import type { BackendChoice } from '../backend.js';

export const LOSS_NAMES = ['softmax-ce', 'categorical-ce', 'mse'] as const;
export type LossName = (typeof LOSS_NAMES)[number];

export interface AdamSpec {
  kind: 'adam';
  lr: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}
export interface SgdSpec {
  kind: 'sgd';
  lr: number;
}
export type OptimizerSpec = AdamSpec | SgdSpec;

/** One weight as plain data, in `model.weights` order. */
export interface WeightData {
  name: string;
  shape: number[];
  data: Float32Array;
  trainable: boolean;
}

export interface TrainableSlot {
  name: string;
  shape: number[];
  /** Offset in floats inside a gradient buffer. */
  offset: number;
  size: number;
}

export type ToWorker =
  | {
      type: 'init';
      backend: BackendChoice;
      modelJson: object;
      weights: Array<{ shape: number[]; data: Float32Array }>;
      optimizer: OptimizerSpec;
      loss: LossName;
    }
  | { type: 'attach'; avg: SharedArrayBuffer }
  | {
      type: 'grad';
      x: Float32Array;
      xShape: number[];
      y: Float32Array | Int32Array;
      yShape: number[];
    }
  | { type: 'apply' }
  | { type: 'get-weights' }
  | { type: 'set-weights'; weights: Array<{ shape: number[]; data: Float32Array } | null> };

export type FromWorker =
  | {
      type: 'ready';
      backend: string;
      /** Trainable weights: their gradients, in `model.trainableWeights` order. */
      slots: TrainableSlot[];
      /** Non-trainable weights (BatchNorm moving statistics): their values after the forward pass. */
      stateSlots: TrainableSlot[];
      /** Where this worker writes its gradients, then its non-trainable values (slot offsets). */
      grads: SharedArrayBuffer;
    }
  | { type: 'attached' }
  | { type: 'grads'; loss: number; ms: number; cpuMs: number | null }
  | { type: 'applied'; numTensors: number; ms: number }
  | { type: 'weights'; weights: WeightData[] }
  | { type: 'weights-set' }
  | { type: 'error'; message: string; code?: string };
