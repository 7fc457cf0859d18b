import { z } from 'zod';
import cron from 'node-cron';

const jsonObject = z.record(z.string(), z.json());

/** Which devices a rollout addresses. */
export const rolloutTargetSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('all') }).strict(),
  z.object({ kind: z.literal('group'), group: z.string().min(1) }).strict(),
  z.object({ kind: z.literal('profile'), profile: z.string().min(1) }).strict(),
  z.object({ kind: z.literal('devices'), deviceIds: z.array(z.string().min(1)).min(1) }).strict(),
]);
export type RolloutTarget = z.infer<typeof rolloutTargetSchema>;

/**
 * Staging, after AWS IoT Jobs and hawkBit: cumulative percentages of the target (each step waits
 * for the previous one to finish), or a dispatch rate per minute multiplied by `incrementFactor`
 * every minute, up to `maxPerMinute`.
 */
export const rolloutStagingSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('percentages'),
      steps: z
        .array(z.number().gt(0).max(100))
        .min(1)
        .refine((s) => s.every((v, i) => i === 0 || v > s[i - 1]!), 'steps must increase')
        .refine((s) => s[s.length - 1] === 100, 'the last step must be 100'),
    })
    .strict(),
  z
    .object({
      kind: z.literal('rate'),
      perMinute: z.number().int().positive(),
      incrementFactor: z.number().min(1).max(10).default(1),
      maxPerMinute: z.number().int().positive().optional(),
    })
    .strict(),
]);
export type RolloutStaging = z.infer<typeof rolloutStagingSchema>;

/** A staged rollout of a teacher: who, how fast, when to stop, when to give up on a device. */
export const rolloutSpecSchema = z
  .object({
    /** The teacher bundle published with `fleet publish-teacher`. */
    teacherSha256: z.string().regex(/^[0-9a-f]{64}$/),
    target: rolloutTargetSchema,
    staging: rolloutStagingSchema.default({ kind: 'rate', perMinute: 1000, incrementFactor: 1 }),
    /** Abort once failures reach `failureShare` of finished executions, after at least `minFinished`. */
    abort: z.object({ failureShare: z.number().gt(0).max(1), minFinished: z.number().int().min(1) }).strict().optional(),
    timeouts: z
      .object({
        /** No update for this long: the execution times out (and is retried while retries remain). */
        inProgressMs: z.number().int().positive().optional(),
        /** A percentage step not finished this long after its last dispatch times out its stragglers. */
        stepMs: z.number().int().positive().optional(),
      })
      .strict()
      .default({}),
    retries: z.object({ max: z.number().int().min(0).max(10), backoffMs: z.number().int().min(0).default(0) }).strict().default({ max: 0, backoffMs: 0 }),
    /** Dispatch only while a window is open: it opens at each cron match and lasts durationMs. */
    maintenanceWindow: z
      .object({ cron: z.string().refine((s) => cron.validate(s), 'not a valid cron expression'), durationMs: z.number().int().positive(), timezone: z.string().optional() })
      .strict()
      .optional(),
    /** What each device is asked to do: `dataset` (a name in its config) and `settings` (CompressJobSpec fields). */
    job: jsonObject.default({}),
  })
  .strict();
export type RolloutSpec = z.infer<typeof rolloutSpecSchema>;
export type RolloutSpecInput = z.input<typeof rolloutSpecSchema>;

export const ROLLOUT_STATES = ['scheduled', 'running', 'paused', 'aborted', 'completed', 'canceled'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];
