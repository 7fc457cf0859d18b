import { z } from 'zod';
import { EdgektError } from '../core/errors.js';
import { formatIssues } from './manifest.js';

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
  })
  .strict();

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
    /** FedProx proximal weight μ (client side); 0 = plain FedAvg local training. */
    mu: z.number().nonnegative().default(0),
    /** L2 bound of an update's delta vs the global model; clipped by the client and again by the server. */
    clip: z.number().positive().optional(),
    /** DP-SGD-style noise multiplier: client adds N(0, σ²·clip²) per coordinate; needs `clip`. */
    sigma: z.number().nonnegative().default(0),
    /** Trimmed mean: fraction cut from each side per coordinate. */
    trimBeta: z.number().min(0).lt(0.5).default(0.1),
    /** Coordinates held by fewer devices keep the global value (robust strategies). */
    minHolders: z.number().int().positive().default(1),
    fedAdam: FedAdamSettingsSchema.optional(),
    /** Updates arriving after this instant are not aggregated. */
    deadline: z.string().datetime({ offset: true }),
    selection: RoundSelectionSchema.default({ fraction: 1, minCount: 1, profiles: [] }),
    encoding: z.enum(['float32', 'float16']).default('float32'),
  })
  .strict()
  .refine((c) => c.sigma === 0 || c.clip !== undefined, { message: 'sigma > 0 needs clip', path: ['sigma'] });
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
