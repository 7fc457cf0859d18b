import type * as tf from '@tensorflow/tfjs';
import type { DataParallelTrainerOptions } from './trainer.js';

export { createDataParallelTrainer, shardSizes } from './trainer.js';
export type { DataParallelTrainer, DataParallelTrainerOptions, ParallelBatch, StepTimings } from './trainer.js';
export { LOSS_NAMES } from './protocol.js';
export type { LossName, OptimizerSpec, WeightData } from './protocol.js';
export { computeLoss, createOptimizer } from './losses.js';
export { threadCpuMs } from './cpu-time.js';

/** Topology and current weights of an in-memory model, ready for `createDataParallelTrainer`. */
export function fromLayersModel(model: tf.LayersModel): Pick<DataParallelTrainerOptions, 'modelJson' | 'weights'> {
  return {
    modelJson: model.toJSON(null, false) as object,
    weights: model.weights.map((w) => {
      const t = w.read();
      return { shape: t.shape.slice(), data: (t.dataSync() as Float32Array).slice() };
    }),
  };
}
