import { z } from 'zod';
import { EdgektError } from '../core/errors.js';
import { formatIssues, Sha256HexSchema } from './manifest.js';
import { ErrorInfoSchema } from './messages.js';

/**
 * Federated rounds on the wire: the round config the coordinator publishes on
 * `rounds/{roundId}/config` and the header of a binary client update. Both are parsed here, at
 * the edge, so strategies only ever see checked values.
 */

const Id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/);

export const FEDERATED_STRATEGIES = ['fedavg', 'fedprox', 'fedadam', 'trimmed-mean', 'median'] as const;
export type FederatedStrategyName = (typeof FEDERATED_STRATEGIES)[number];

export const FedAdamSettingsSchema = z
  .object({
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.99),
    /** Adaptivity floor of the denominator (Reddi et al. find 1e-3 robust). */
    tau: z.number().positive().default(1e-3),
    /** Server learning rate. */
    eta: z.number().positive().default(1e-2),
  })
  .strict();
export type FedAdamSettings = z.infer<typeof FedAdamSettingsSchema>;

export const RoundSelectionSchema = z
  .object({
    /** Fraction of eligible online devices invited. */
    fraction: z.number().gt(0).max(1).default(1),
    /** The round waits for (and needs) at least this many updates. */
    minCount: z.number().int().positive().default(1),
    /** Only devices whose profile is listed take part; empty = any profile. */
    profiles: z.array(z.string().min(1)).default([]),
    /** Only devices whose last telemetry shows no active job and no paused work (which covers their own allowed window). */
    idleOnly: z.boolean().default(true),
    /** Fleet-wide allowed window: a cron expression (minute level) the coordinator's clock must match to start a round. */
    window: z.string().min(1).optional(),
  })
  .strict();
const SELECTION_DEFAULT = { fraction: 1, minCount: 1, profiles: [], idleOnly: true };

/** The clipping, noise and robust-aggregation rules a round config and a run spec share. */
const ROUND_RULES = {
  /** FedProx proximal weight μ (client side); 0 = plain FedAvg local training. */
  mu: z.number().nonnegative().default(0),
  /** L2 bound of an update's delta vs the global model; clipped by the client and again by the server. */
  clip: z.number().positive().optional(),
  /** DP-SGD-style noise multiplier: client adds N(0, σ²·clip²) per coordinate; needs `clip`. */
  sigma: z.number().nonnegative().default(0),
  /** Trimmed mean: fraction cut from each side per coordinate. */
  trimBeta: z.number().min(0).lt(0.5).default(0.1),
  /** Trimmed mean: cut β of the holders' sample weight instead of β of their count, and average by weight. */
  trimWeighted: z.boolean().default(false),
  /** Coordinates held by fewer devices keep the global value (robust strategies). */
  minHolders: z.number().int().positive().default(1),
  fedAdam: FedAdamSettingsSchema.optional(),
};
const sigmaNeedsClip = (c: { sigma: number; clip?: number | undefined }): boolean => c.sigma === 0 || c.clip !== undefined;
const SIGMA_NEEDS_CLIP = { message: 'sigma > 0 needs clip', path: ['sigma'] };

export const RoundConfigSchema = z
  .object({
    type: z.literal('round-config'),
    roundId: Id,
    /** Monotonic round number: updates for any other number are stale. */
    round: z.number().int().nonnegative(),
    strategy: z.enum(FEDERATED_STRATEGIES),
    epochs: z.number().int().positive(),
    learningRate: z.number().positive(),
    batchSize: z.number().int().positive(),
    ...ROUND_RULES,
    /** Updates arriving after this instant are not aggregated. */
    deadline: z.string().datetime({ offset: true }),
    selection: RoundSelectionSchema.default(SELECTION_DEFAULT),
    encoding: z.enum(['float32', 'float16']).default('float32'),
    /** The federated run this round belongs to. */
    runId: Id.optional(),
    /** sha256 of the round's global weights file (also the signed manifest's only file). */
    globalSha256: Sha256HexSchema.optional(),
    /** sha256 of the run's base model (the lightened student before pruning). */
    baseSha256: Sha256HexSchema.optional(),
    /** The teacher bundle clients distil against, when the run names one. */
    teacherSha256: Sha256HexSchema.optional(),
    /** Seed of the client-side DP noise (mixed with the device id). */
    seed: z.number().int().nonnegative().default(0),
  })
  .strict()
  .refine(sigmaNeedsClip, SIGMA_NEEDS_CLIP);
export type RoundConfig = z.infer<typeof RoundConfigSchema>;

/** Parses a round config or throws EDGEKT_ERR_MALFORMED naming every issue. */
export function parseRoundConfig(value: unknown): RoundConfig {
  const r = RoundConfigSchema.safeParse(value);
  if (!r.success) throw new EdgektError('EDGEKT_ERR_MALFORMED', `round config: ${formatIssues(r.error)}`);
  return r.data;
}

const Axis = z.array(z.number().int().nonnegative()).nullable();

export const UpdateTensorHeaderSchema = z
  .object({
    name: z.string().min(1),
    shape: z.array(z.number().int().nonnegative()).max(8),
    /** Global indices kept per axis (the device's index map entry); absent = the tensor is whole. */
    indices: z.array(Axis).optional(),
  })
  .strict();

/** Header of a binary update: magic, u32 length, this JSON, then each tensor's bytes in order. */
export const UpdateHeaderSchema = z
  .object({
    format: z.literal('edgekt-update'),
    version: z.literal(1),
    roundId: Id,
    round: z.number().int().nonnegative(),
    clientId: Id,
    numSamples: z.number().int().positive(),
    encoding: z.enum(['float32', 'float16']),
    /** `delta`: values are weights − the round's global slice (small, so float16 keeps them). */
    payload: z.enum(['weights', 'delta']).default('weights'),
    tensors: z.array(UpdateTensorHeaderSchema).min(1),
    /** Local metrics (loss, accuracy, seconds) for the round report; never aggregated. */
    metrics: z.record(z.string(), z.number()).default({}),
  })
  .strict();
export type UpdateHeader = z.infer<typeof UpdateHeaderSchema>;

/**
 * A federated run (`edgekt fleet federated start --config FILE`): R rounds of the same client
 * settings; each round's RoundConfig is derived from it (round number, deadline, global sha).
 */
export const FederatedRunSpecSchema = z
  .object({
    rounds: z.number().int().positive().max(10_000),
    strategy: z.enum(FEDERATED_STRATEGIES).default('fedavg'),
    epochs: z.number().int().positive().default(1),
    learningRate: z.number().positive().default(0.01),
    batchSize: z.number().int().positive().default(32),
    ...ROUND_RULES,
    /** Seconds from a round's start to its deadline. */
    deadlineSeconds: z.number().positive().max(7 * 24 * 3600).default(600),
    selection: RoundSelectionSchema.default(SELECTION_DEFAULT),
    encoding: z.enum(['float32', 'float16']).default('float32'),
    /** Attempts per round number: a round short of minCount valid updates is run again, then the run fails. */
    maxAttempts: z.number().int().positive().max(100).default(2),
    teacherSha256: Sha256HexSchema.optional(),
    seed: z.number().int().nonnegative().default(0),
  })
  .strict()
  .refine(sigmaNeedsClip, SIGMA_NEEDS_CLIP);
export type FederatedRunSpec = z.infer<typeof FederatedRunSpecSchema>;

export const FEDERATED_RUN_STATES = ['running', 'completed', 'failed', 'aborted'] as const;
export type FederatedRunState = (typeof FEDERATED_RUN_STATES)[number];
export const ROUND_STATES = ['open', 'completed', 'failed', 'aborted'] as const;
export type RoundState = (typeof ROUND_STATES)[number];

/** On `devices/{id}/jobs`: take part in a round. The manifest (kind `weights`) names the global file and carries the RoundConfig in `meta.round`, all under the fleet key. */
export const RoundInviteSchema = z.object({ type: z.literal('round-invite'), roundId: Id, manifest: z.unknown() }).strict();
export type RoundInvite = z.infer<typeof RoundInviteSchema>;

/** What a device signs about its update, in its manifest's `meta.update`. */
export const UpdateSummarySchema = z
  .object({
    roundId: Id,
    round: z.number().int().nonnegative(),
    numSamples: z.number().int().positive(),
    encoding: z.enum(['float32', 'float16']),
    payload: z.enum(['weights', 'delta']),
    metrics: z.record(z.string(), z.number()).default({}),
  })
  .strict();
export type UpdateSummary = z.infer<typeof UpdateSummarySchema>;

/**
 * Name and target of the manifest a device signs over its update: named after the round (whose id
 * carries the run's), targeting the sending device itself plus the coordinators (as a student
 * does). The coordinator refuses an update whose manifest names another round or device, so a
 * device-signed manifest from one round or for one device cannot stand in for another report.
 */
export function updateManifestIdentity(roundId: string, deviceId: string): { name: string; target: { devices: string[]; groups: string[] } } {
  return { name: roundId, target: { devices: [deviceId], groups: ['coordinators'] } };
}

/** On `rounds/{roundId}/updates/{deviceId}` (QoS 1): an update to pull over `devices/{id}/serve`, or a failed participation. */
export const RoundReportSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('round-update'), roundId: Id, deviceId: Id, round: z.number().int().nonnegative(), manifest: z.unknown() }).strict(),
  z.object({ type: z.literal('round-failed'), roundId: Id, deviceId: Id, round: z.number().int().nonnegative(), error: ErrorInfoSchema }).strict(),
]);
export type RoundReport = z.infer<typeof RoundReportSchema>;

/** Retained on `rounds/{roundId}/result` once a round closes. */
export const RoundResultSchema = z
  .object({
    type: z.literal('round-result'),
    roundId: Id,
    runId: Id,
    round: z.number().int().nonnegative(),
    state: z.enum(ROUND_STATES),
    included: z.array(Id),
    refused: z.array(z.object({ deviceId: Id, codes: z.array(z.string()) }).strict()),
    late: z.array(Id),
    failed: z.array(z.object({ deviceId: Id, code: z.string() }).strict()),
    dropped: z.array(Id),
    globalSha256: Sha256HexSchema.nullable(),
    metrics: z.record(z.string(), z.number()),
    error: ErrorInfoSchema.optional(),
  })
  .strict();
export type RoundResult = z.infer<typeof RoundResultSchema>;


// The trainer seam a device's round client calls (RoundTrainer) is in federated/round-trainer.ts.
