export { createHintAdapter, type HintAdapter } from './adapters.js';
export {
  distill,
  trainSupervised,
  createDistillFineTuner,
  type DistillFineTunerOptions,
  DISTILL_RUN_DEFAULTS,
  type DistillOptions,
  type DistillCheckpointOptions,
  type DistillProgress,
  type DistillResult,
  type DistillSchedule,
  type LrSchedule,
  scheduledLearningRate,
  type EpochSummary,
} from './distiller.js';
export {
  findStageEnds,
  stageEndOf,
  pairStageEnds,
  preActivation,
  featureModel,
  logitsSource,
  upstreamLayers,
  type StageEnd,
  type HintPair,
  type LogitsSource,
} from './hint-points.js';
export {
  hintLoss,
  cosineHintLoss,
  attentionHintLoss,
  attentionMap,
  HINT_LOSS_KINDS,
  type HintLossKind,
  kdLoss,
  crossEntropyLoss,
  noisyTeacherLogits,
  noisyTeacherFactors,
  matchSpatial,
  pickRows,
  weightedLoss,
  type LossParts,
  type LossTerms,
  type LossWeights,
  type NoisyTeacherOptions,
} from './losses.js';
export {
  createDistillTrainer,
  createNoiseRng,
  hintPairs,
  DISTILL_DEFAULTS,
  HINT_POINTS,
  type HintPoint,
  type DistillPhase,
  type DistillTrainer,
  type DistillTrainerOptions,
  type HintLayerPair,
} from './trainer.js';
export { captureDistillState, restoreDistillState, checkResumable, type DistillState, type DistillRunKey, type AdamSlots, type TensorData } from './state.js';
export { encodeDistillState, decodeDistillState, type EncodedDistillState, type DistillStateMeta } from './state-codec.js';
export { recalibrateBatchNorm, type RecalibrateOptions } from './recalibrate.js';
export { createDistillWorkers, type DistillWorkers, type DistillWorkersOptions, type ParallelRun } from './parallel.js';
