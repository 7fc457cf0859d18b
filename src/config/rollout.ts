import { z } from 'zod';
import cron from 'node-cron';

const cronExpr = z.string().refine((s) => cron.validate(s), 'not a valid cron expression');

/** Which devices a rollout addresses. */
export const RolloutTargetSchema = z.union([
  z.object({ all: z.literal(true) }).strict(),
  z.object({ group: z.string().min(1) }).strict(),
  z.object({ profile: z.string().min(1) }).strict(),
  z.object({ devices: z.array(z.string().min(1)).min(1) }).strict(),
]);
export type RolloutTarget = z.infer<typeof RolloutTargetSchema>;

/**
 * Staging, after AWS IoT Jobs and hawkBit: cumulative percentages (each step waits for the previous
 * one to finish), or a dispatch rate per minute that grows by `incrementFactor` every minute up to
 * `maxPerMinute`.
 */
export const StagingSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('percentages'),
      steps: z.array(z.number().gt(0).max(100)).min(1).refine((s) => s.every((v, i) => i === 0 || v > s[i - 1]!), 'steps must increase')
        .refine((s) => s[s.length - 1] === 100, 'the last step must be 100'),
    })
    .strict(),
  z
    .object({
      kind: z.literal('rate'),
      perMinute: z.number().int().positive(),
      incrementFactor: z.number().min(1).max(5).default(1),
      maxPerMinute: z.number().int().positive().max(100_000).default(1000),
    })
    .strict(),
]);
export type Staging = z.infer<typeof StagingSchema>;

export const RolloutSpecSchema = z
  .object({
    /** sha256 of the signed teacher manifest published with `fleet publish-teacher`. */
    artifact: z.string().regex(/^[0-9a-f]{64}$/),
    target: RolloutTargetSchema,
    /** Name of the dataset each device trains on (from its own config). */
    dataset: z.string().min(1),
    /** Compression settings (CompressJobSpec fields) sent with every job. */
    settings: z.record(z.string(), z.unknown()).default({}),
    staging: StagingSchema.default({ kind: 'rate', perMinute: 1000, incrementFactor: 1, maxPerMinute: 1000 }),
    abort: z
      .object({
        /** Abort once failures reach this share of finished executions… */
        failureThresholdPercent: z.number().gt(0).max(100),
        /** …after at least this many have finished. */
        minFinished: z.number().int().positive(),
      })
      .strict()
      .optional(),
    timeouts: z
      .object({
        /** An execution with no update for this long is timed out (and retried if retries remain). */
        inProgressSeconds: z.number().positive().default(3600),
        /** A percentage step that has not finished in this long times out its stragglers. */
        stepSeconds: z.number().positive().optional(),
      })
      .strict()
      .default({ inProgressSeconds: 3600 }),
    retries: z.number().int().min(0).max(10).default(0),
    /** Dispatch only in the minutes this cron expression matches (coordinator's clock). */
    maintenanceWindow: cronExpr.optional(),
  })
  .strict();
export type RolloutSpec = z.infer<typeof RolloutSpecSchema>;
