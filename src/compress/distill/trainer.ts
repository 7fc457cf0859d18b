import * as tf from '@tensorflow/tfjs';
import { createRng, type SeededRng } from '../../core/random.js';
import { EdgektError } from '../../core/errors.js';
import { createHintAdapter, type HintAdapter } from './adapters.js';
import { featureModel, findStageEnds, pairStageEnds, preActivation, stageEndOf, upstreamLayers, type HintPair } from './hint-points.js';
import { attentionHintLoss, cosineHintLoss, crossEntropyLoss, hintLoss, kdLoss, noisyTeacherLogits, weightedLoss, type HintLossKind, type LossParts } from './losses.js';
import { HINT_POINT_KINDS, type HintPointKind } from '../../config/job-spec.js';

/**
 * What one training step optimises. `hints`: hint losses only, training the student's layers up to
 * the hint points plus the adapters (FitNets stage 1). `logits`: KD + hard-label CE on the whole
 * student (FitNets stage 2). `joint`: everything at once.
 */
export type DistillPhase = 'hints' | 'logits' | 'joint';

/** Explicit teacher→student hint layers, e.g. from lighten's stage mapping. */
export interface HintLayerPair {
  teacher: string;
  student: string;
}

export interface DistillTrainerOptions {
  /** 'auto' (default): stage ends by resolution, paired by resolution; 'none': no hints (plain KD). */
  hints?: 'auto' | 'none' | HintLayerPair[];
  /** Softmax temperature T of the logits KD. Default 4 (Hinton et al. use 2–20; 4 is the common choice). */
  temperature?: number;
  /** Weight of the KD term. Default 0.7. */
  kdWeight?: number;
  /** Weight of hard-label cross-entropy (dropped when labels are absent). Default 0.3. */
  ceWeight?: number;
  /** How each hint compares features (HintLossKind). Default 'mse' (FitNets). 'attention' uses no adapters. */
  hintLoss?: HintLossKind;
  /** Where a hint reads a stage's feature: after its ReLU (default) or just before it (preActivation). */
  hintPoint?: HintPoint;
  /** Per-level hint weights, or one weight for every level. Default 1 per level. */
  hintWeights?: number | number[];
  /** Noisy-teacher σ. Default 0.1; 0 disables the noise. */
  noiseSigma?: number;
  /** Noisy-teacher α: fraction of each batch that gets noisy logits. Default 0.5. */
  noiseFraction?: number;
  /** Adam learning rate. Default 1e-3. */
  learningRate?: number;
  /** Seeds the adapters' initial weights and the noise. Default 0. */
  seed?: number;
  /**
   * FedProx (Li et al. 2020): adds μ/2·‖w − w₀‖² over the student's trainable weights to the loss,
   * inside the gradient tape, w₀ being the weights when the trainer is created (the round's start).
   * Keeps local training near the global model on non-IID data. Absent or μ = 0: no term.
   */
  proximal?: { mu: number };
}

export type HintPoint = HintPointKind;
/** The job spec's list (config/job-spec.ts), so the spec and the trainer cannot disagree. */
export const HINT_POINTS: readonly HintPoint[] = HINT_POINT_KINDS;

export const DISTILL_DEFAULTS = {
  temperature: 4,
  kdWeight: 0.7,
  ceWeight: 0.3,
  hintWeight: 1,
  hintLoss: 'mse' as HintLossKind,
  noiseSigma: 0.1,
  noiseFraction: 0.5,
  learningRate: 1e-3,
  seed: 0,
} as const;

/**
 * One distillation training step on a batch, plus what it needs (frozen teacher feature model,
 * student feature model, adapters, Adam). Exported so pruning can fine-tune with knowledge transfer
 * through the same code. A null teacher means plain supervised training (hard labels only).
 */
export interface DistillTrainer {
  readonly pairs: HintPair[];
  readonly adapters: HintAdapter[];
  /** One Adam per phase: tfjs Adam keys its moments by position in the variable list, which differs between phases. */
  readonly optimizers: Partial<Record<DistillPhase, tf.Optimizer>>;
  /** The phase's Adam, created on first use; a checkpoint restore fills it before the first step. */
  optimizerFor(phase: DistillPhase): tf.Optimizer;
  /** The noisy teacher's random stream, whose state a checkpoint carries. */
  readonly noiseRng: SeededRng;
  /**
   * Runs forward, backward and an Adam update; returns each loss term. Leaks no tensors.
   * `learningRate` overrides the configured rate for this step (a schedule); Adam's moments are kept.
   */
  step(x: tf.Tensor4D, labels: tf.Tensor1D | null, phase: DistillPhase, learningRate?: number): LossParts;
  /** The variables a phase trains, in the order of computeGrads' gradients. */
  phaseVars(phase: DistillPhase): tf.Variable[];
  /**
   * The data-parallel half of `step`: forward and backward on a shard, no update. `noise`: the
   * shard's rows of the batch's noisy-teacher factors (noisyTeacherFactors), or null for none; the
   * rng is not used. Gradients are in phaseVars order and belong to the caller.
   */
  computeGrads(x: tf.Tensor4D, labels: tf.Tensor1D | null, phase: DistillPhase, noise: Float32Array | null): { parts: LossParts; grads: tf.Tensor[] };
  /** The other half: one Adam update of the phase's variables with (averaged) gradients. */
  applyGrads(phase: DistillPhase, grads: tf.Tensor[], learningRate?: number): void;
  /** Frees the adapters and the optimizer state (the models stay owned by the caller). */
  dispose(): void;
}

/** The hint levels a trainer for this teacher, student and `hints` option would use. */
export function hintPairs(teacher: tf.LayersModel | null, student: tf.LayersModel, hints: DistillTrainerOptions['hints'], point: HintPoint = 'post-relu'): HintPair[] {
  if (!teacher || hints === 'none') return [];
  const pairs = Array.isArray(hints)
    ? hints.map((h) => ({ teacher: stageEndOf(teacher, h.teacher), student: stageEndOf(student, h.student) }))
    : pairStageEnds(findStageEnds(teacher), findStageEnds(student));
  return point === 'pre-relu' ? pairs.map((p) => ({ teacher: preActivation(teacher, p.teacher), student: preActivation(student, p.student) })) : pairs;
}

function toLogits(t: tf.Tensor, fromProbabilities: boolean): tf.Tensor2D {
  return (fromProbabilities ? tf.log(tf.clipByValue(t, 1e-7, 1)) : t) as tf.Tensor2D;
}

export function createDistillTrainer(
  teacher: tf.LayersModel | null,
  student: tf.LayersModel,
  options: DistillTrainerOptions = {},
): DistillTrainer {
  const o = { ...DISTILL_DEFAULTS, ...stripUndefined(options) };
  const pairs = hintPairs(teacher, student, options.hints ?? 'auto', options.hintPoint);
  const hintWeights = Array.isArray(options.hintWeights)
    ? options.hintWeights
    : pairs.map(() => (typeof options.hintWeights === 'number' ? options.hintWeights : DISTILL_DEFAULTS.hintWeight));
  if (hintWeights.length !== pairs.length) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `got ${hintWeights.length} hint weights for ${pairs.length} hint levels`);
  }
  const adapters = pairs.map((p, i) => createHintAdapter(p.student.channels, p.teacher.channels, o.seed * 1000 + i, `hint${i}`));
  const t = teacher ? featureModel(teacher, pairs.map((p) => p.teacher.layerName)) : null;
  const s = featureModel(student, pairs.map((p) => p.student.layerName));
  const optimizers: Partial<Record<DistillPhase, tf.Optimizer>> = {};
  const noiseRng = createNoiseRng(o.seed);
  const optimizerFor = (phase: DistillPhase): tf.Optimizer => (optimizers[phase] ??= tf.train.adam(o.learningRate));

  // Attention maps compare raw features, so the adapters are left out of training (and stay as created).
  const adapterVars = o.hintLoss === 'attention' ? [] : adapters.flatMap((a) => [a.kernel, a.bias] as tf.Variable[]);
  const hintTerm = (i: number, studentFeature: tf.Tensor4D, teacherFeature: tf.Tensor4D): tf.Scalar =>
    o.hintLoss === 'attention'
      ? attentionHintLoss(studentFeature, teacherFeature)
      : (o.hintLoss === 'cosine' ? cosineHintLoss : hintLoss)(adapters[i]!.apply(studentFeature), teacherFeature);
  const studentVars = student.trainableWeights.map((w) => w.read() as tf.Variable);
  const upstream = upstreamLayers(student, pairs.map((p) => p.student.layerName));
  const mu = options.proximal?.mu ?? 0;
  if (!(mu >= 0)) throw new EdgektError('EDGEKT_ERR_USAGE', `proximal mu must be >= 0, got ${mu}`);
  // The anchor: copies of the weights at creation, freed by dispose().
  const anchors = new Map<tf.Variable, tf.Tensor>(mu > 0 ? studentVars.map((v) => [v, tf.clone(v)]) : []);
  const hintVars = [
    ...student.layers.filter((l) => upstream.has(l.name)).flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable)),
    ...adapterVars,
  ];

  const phaseVars = (phase: DistillPhase): tf.Variable[] => {
    const usesHints = phase !== 'logits' && pairs.length > 0;
    const usesLogits = phase !== 'hints' || pairs.length === 0;
    return !usesLogits ? hintVars : usesHints ? [...studentVars, ...adapterVars] : studentVars;
  };

  /** Teacher forward: frozen (inference mode), outside the gradient tape. `noise` given: these factors, not the rng's. */
  const teacherForward = (x: tf.Tensor4D, noise?: Float32Array | null): tf.Tensor[] | null =>
    t
      ? tf.tidy(() => {
          const outs = asArray(t.model.apply(x, { training: false }));
          const clean = toLogits(outs[outs.length - 1]!, t.fromProbabilities);
          const logits = noise === undefined
            ? noisyTeacherLogits(clean, { sigma: o.noiseSigma, fraction: o.noiseFraction, rng: noiseRng })
            : noise === null ? clean : tf.mul(clean, tf.tensor2d(noise, clean.shape));
          return [...outs.slice(0, -1), logits];
        })
      : null;

  type Kept = { hints: tf.Scalar[]; kd: tf.Scalar | null; ce: tf.Scalar | null; prox: tf.Scalar | null };
  /** The step's objective, for minimize or variableGrads; each term is kept in `kept` to be read back. */
  const objective = (x: tf.Tensor4D, labels: tf.Tensor1D | null, phase: DistillPhase, teacherOut: tf.Tensor[] | null, varList: tf.Variable[], kept: Kept) => (): tf.Scalar => {
    const usesHints = phase !== 'logits' && pairs.length > 0;
    const usesLogits = phase !== 'hints' || pairs.length === 0;
    const outs = asArray(s.model.apply(x, { training: true }));
    const sLogits = toLogits(outs[outs.length - 1]!, s.fromProbabilities);
    const hints = usesHints && teacherOut
      ? pairs.map((_, i) => hintTerm(i, outs[i] as tf.Tensor4D, teacherOut[i] as tf.Tensor4D))
      : [];
    const kd = usesLogits && teacherOut && o.kdWeight > 0 ? kdLoss(sLogits, teacherOut[teacherOut.length - 1] as tf.Tensor2D, o.temperature) : null;
    const ce = usesLogits && labels && (o.ceWeight > 0 || !teacherOut) ? crossEntropyLoss(sLogits, labels) : null;
    if (!hints.length && !kd && !ce) throw new EdgektError('EDGEKT_ERR_USAGE', `phase ${phase} has no loss term (no teacher and no labels?)`);
    const prox = anchors.size > 0 ? proximalLoss(varList, anchors, mu) : null;
    Object.assign(kept, { hints: hints.map((h) => tf.keep(h)), kd: kd && tf.keep(kd), ce: ce && tf.keep(ce), prox: prox && tf.keep(prox) });
    const loss = weightedLoss(kept, { hints: hintWeights, kd: o.kdWeight, ce: teacherOut ? o.ceWeight : 1 });
    return prox ? tf.add(loss, prox) : loss;
  };

  /** Reads the terms back as numbers and frees them (and the teacher outputs). */
  const readParts = (total: tf.Scalar, kept: Kept, teacherOut: tf.Tensor[] | null): LossParts => {
    const all = [total, ...kept.hints, ...(kept.kd ? [kept.kd] : []), ...(kept.ce ? [kept.ce] : []), ...(kept.prox ? [kept.prox] : [])];
    const values = tf.tidy(() => tf.stack(all).dataSync());
    tf.dispose([...all, ...(teacherOut ?? [])]);
    let i = 1;
    return {
      total: values[0]!,
      hints: kept.hints.map(() => values[i++]!),
      kd: kept.kd ? values[i++]! : null,
      ce: kept.ce ? values[i++]! : null,
      ...(kept.prox ? { proximal: values[i++]! } : {}),
    };
  };

  const withRate = (phase: DistillPhase, learningRate?: number): tf.Optimizer => {
    const optimizer = optimizerFor(phase);
    // tfjs's Adam reads its (protected) learningRate field on every update and has no setter.
    if (learningRate !== undefined) (optimizer as unknown as { learningRate: number }).learningRate = learningRate;
    return optimizer;
  };

  const step = (x: tf.Tensor4D, labels: tf.Tensor1D | null, phase: DistillPhase, learningRate?: number): LossParts => {
    const teacherOut = teacherForward(x);
    const kept: Kept = { hints: [], kd: null, ce: null, prox: null };
    const varList = phaseVars(phase);
    const total = withRate(phase, learningRate).minimize(objective(x, labels, phase, teacherOut, varList, kept), true, varList)!;
    return readParts(total, kept, teacherOut);
  };

  const computeGrads = (x: tf.Tensor4D, labels: tf.Tensor1D | null, phase: DistillPhase, noise: Float32Array | null): { parts: LossParts; grads: tf.Tensor[] } => {
    const teacherOut = teacherForward(x, noise);
    const kept: Kept = { hints: [], kd: null, ce: null, prox: null };
    const varList = phaseVars(phase);
    const { value, grads } = tf.variableGrads(objective(x, labels, phase, teacherOut, varList, kept), varList);
    return { parts: readParts(value, kept, teacherOut), grads: varList.map((v) => grads[v.name]!) };
  };

  const applyGrads = (phase: DistillPhase, grads: tf.Tensor[], learningRate?: number): void => {
    const varList = phaseVars(phase);
    if (grads.length !== varList.length) throw new EdgektError('EDGEKT_ERR_INTERNAL', `${grads.length} gradients for ${varList.length} variables`);
    withRate(phase, learningRate).applyGradients(varList.map((v, i) => ({ name: v.name, tensor: grads[i]! })));
  };

  return {
    pairs,
    adapters,
    optimizers,
    optimizerFor,
    noiseRng,
    step,
    phaseVars,
    computeGrads,
    applyGrads,
    dispose: () => {
      adapters.forEach((a) => a.dispose());
      Object.values(optimizers).forEach((opt) => opt?.dispose());
      tf.dispose([...anchors.values()]);
      anchors.clear();
    },
  };
}

/** The noisy teacher's random stream for a seed (the trainer's, or a data-parallel run's main thread). */
export function createNoiseRng(seed: number): SeededRng {
  return createRng(seed ^ 0x9e3779b9);
}

/** μ/2 · Σ‖v − anchor(v)‖² over the variables being trained that have an anchor. */
function proximalLoss(vars: readonly tf.Variable[], anchors: ReadonlyMap<tf.Variable, tf.Tensor>, mu: number): tf.Scalar {
  return tf.tidy(() => {
    let sq: tf.Scalar = tf.scalar(0);
    for (const v of vars) {
      const a = anchors.get(v);
      if (a) sq = tf.add(sq, tf.sum(tf.squaredDifference(v, a)));
    }
    return tf.mul(sq, mu / 2);
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function asArray(out: tf.Tensor | tf.Tensor[] | tf.SymbolicTensor | tf.SymbolicTensor[]): tf.Tensor[] {
  return (Array.isArray(out) ? out : [out]) as tf.Tensor[];
}
