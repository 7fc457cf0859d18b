import { z } from 'zod';
import { EdgektError } from '../core/errors.js';
import { DeviceProfileSchema } from './device-profile.js';

/** Filter importance criteria the pruner knows (compress/prune re-exports these). */
export const IMPORTANCE_KINDS = ['l1', 'l2', 'fpgm'] as const;
/**
 * What the student learns from the teacher: 'multilevel-noise' (the paper: hints at every stage end
 * through adapters + KD on noisy-teacher logits + labels), 'multilevel' (the same without the noise)
 * or 'kd' (logits KD + labels, no hints).
 */
export const TRANSFER_KINDS = ['multilevel-noise', 'multilevel', 'kd'] as const;
/** How a hint compares features (compress/distill's HintLossKind is this union). */
export const HINT_LOSSES = ['mse', 'cosine', 'attention'] as const;
/** Where a hint reads a stage's feature (compress/distill's HintPoint is this union). */
export const HINT_POINT_KINDS = ['post-relu', 'pre-relu'] as const;
export type TransferKind = (typeof TRANSFER_KINDS)[number];
export type HintLoss = (typeof HINT_LOSSES)[number];
export type HintPointKind = (typeof HINT_POINT_KINDS)[number];
/** Distillation schedules (compress/distill's DistillSchedule is this union). */
export const DISTILL_SCHEDULES = ['joint', 'fitnets'] as const;

/**
 * Defaults of every compression setting. `edgekt compress` shows them as its flag defaults and the
 * schema applies them to an MQTT job, so the two callers cannot disagree.
 */
export const JOB_SPEC_DEFAULTS = {
  seed: 0,
  width: 0.5,
  distillEpochs: 3,
  finalEpochs: 2,
  schedule: 'joint',
  temperature: 2,
  learningRate: 1e-3,
  transfer: 'multilevel-noise',
  hintLoss: 'mse',
  hintPoint: 'post-relu',
  briefSamples: 2048,
  batchSize: 64,
  step: 0.1,
  maxIterations: 30,
  extraFinals: 2,
  importance: 'l1',
  minChannels: 4,
  roundTo: 4,
  latencyAware: false,
  runs: 30,
  checkpointSeconds: 60,
  resume: false,
} as const;

const D = JOB_SPEC_DEFAULTS;
const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

/** One compression job: what `edgekt compress` takes as flags and the agent as a job message. */
export const CompressJobSpecSchema = z.strictObject({
  /** Directory of the teacher's tfjs LayersModel. */
  teacher: z.string().min(1),
  /** Dataset spec: mnist | fashion-mnist[:DIR] | idx:DIR | folder:DIR. */
  data: z.string().min(1),
  /** A built-in profile name, a path to a profile JSON file, or the profile itself. */
  profile: z.union([z.string().min(1), DeviceProfileSchema]),
  /** Where student/, report.json, report.md and report.svg are written (none when absent). */
  out: z.string().min(1).optional(),
  seed: z.number().int().default(D.seed),
  /** Lighten width multiplier. */
  width: z.number().positive().max(4).default(D.width),
  /** Convolutions kept per lightened stage: one count, or one per stage (absent = all). */
  depth: z.union([posInt, z.array(posInt).min(1).max(32)]).optional(),
  distillEpochs: posInt.default(D.distillEpochs),
  finalEpochs: posInt.default(D.finalEpochs),
  schedule: z.enum(DISTILL_SCHEDULES).default(D.schedule),
  temperature: z.number().positive().default(D.temperature),
  /** Adam's base learning rate of distillation and fine-tunes (cosine-annealed to 0 over each). */
  learningRate: z.number().positive().max(1).default(D.learningRate),
  transfer: z.enum(TRANSFER_KINDS).default(D.transfer),
  hintLoss: z.enum(HINT_LOSSES).default(D.hintLoss),
  hintPoint: z.enum(HINT_POINT_KINDS).default(D.hintPoint),
  briefSamples: posInt.default(D.briefSamples),
  batchSize: posInt.default(D.batchSize),
  /** Share of the prunable channels cut per iteration. */
  step: z.number().gt(0).lt(1).default(D.step),
  maxIterations: nonNegInt.default(D.maxIterations),
  /** More final fine-tunes while only the accuracy budget misses and each one gains. */
  extraFinals: nonNegInt.default(D.extraFinals),
  importance: z.enum(IMPORTANCE_KINDS).default(D.importance),
  minChannels: posInt.default(D.minChannels),
  roundTo: posInt.default(D.roundTo),
  latencyAware: z.boolean().default(D.latencyAware),
  skipLayers: z.array(z.string().min(1)).default([]),
  /** Timed batch-1 runs per latency measurement. */
  runs: posInt.default(D.runs),
  /** At most this many samples per source split. */
  limit: posInt.optional(),
  /** Evaluation samples used inside the pruning loop. */
  evalLimit: posInt.optional(),
  /** Train on at most this many training samples. */
  trainLimit: posInt.optional(),
  valFraction: z.number().gt(0).lt(1).optional(),
  /** Seconds between in-stage checkpoints of the distillation: what a kill can lose at most. */
  checkpointSeconds: z.number().positive().max(3600).default(D.checkpointSeconds),
  /** Data-parallel training threads for distillation and fine-tunes. Absent: the profile's `runtime.threads`. */
  workers: posInt.max(64).optional(),
  /** Continue from the checkpoints of the same run instead of starting over. */
  resume: z.boolean().default(D.resume),
});

export type CompressJobSpec = z.infer<typeof CompressJobSpecSchema>;
/** A spec as written by a caller: every defaulted field optional. */
export type CompressJobSpecInput = z.input<typeof CompressJobSpecSchema>;

/** Validates untrusted JSON; every bad field is named at once, under EDGEKT_ERR_JOB_SPEC. */
export function parseCompressJobSpec(json: unknown): CompressJobSpec {
  const r = CompressJobSpecSchema.safeParse(json);
  if (!r.success) {
    const issues = r.error.issues.map((i) => ({ path: i.path.join('.') || '(spec)', message: i.message }));
    throw new EdgektError('EDGEKT_ERR_JOB_SPEC', `bad job spec: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues });
  }
  return r.data;
}
