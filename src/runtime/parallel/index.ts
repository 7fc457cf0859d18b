import type * as tf from '@tensorflow/tfjs';
import { modelData } from './model-data.js';
import type { DataParallelTrainerOptions } from './trainer.js';

export { createDataParallelTrainer, shardSizes } from './trainer.js';
export type { DataParallelTrainer, DataParallelTrainerOptions, ParallelBatch, StepTimings } from './trainer.js';
export { LOSS_NAMES } from './protocol.js';
export type { LossName, OptimizerSpec, WeightData } from './protocol.js';
export { computeLoss, createOptimizer } from './losses.js';
export { threadCpuMs } from './cpu-time.js';
export { createChannel, weightedSum, type Channel, type WorkerErrorReply, type WorkerMessage } from './channel.js';
export { modelData, modelFromData, type ModelData } from './model-data.js';
export { siblingModule, spawnWorker } from './spawn.js';

/** Topology and current weights of an in-memory model, ready for `createDataParallelTrainer`. */
export function fromLayersModel(model: tf.LayersModel): Pick<DataParallelTrainerOptions, 'modelJson' | 'weights'> {
  return modelData(model);
}
