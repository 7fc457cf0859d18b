import { z } from 'zod';

/**
 * The JSON the coordinator store persists, as zod schemas: every JSON column is parsed on the way
 * out, so a row written by an older build or edited by hand fails loudly instead of being cast.
 */
export const jsonObject = z.record(z.string(), z.json());
export type JsonObject = z.infer<typeof jsonObject>;
export type Json = z.infer<ReturnType<typeof z.json>>;

/** An error as data, the way agents report `failed`/`rejected` (the code comes from the catalog). */
export const jobErrorSchema = z.object({
  code: z.string().min(1),
  message: z.string(),
  details: jsonObject.optional(),
});
export type JobError = z.infer<typeof jobErrorSchema>;

export const rolloutTargetSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('all') }),
  z.object({ kind: z.literal('group'), group: z.string().min(1) }),
  z.object({ kind: z.literal('profile'), profile: z.string().min(1) }),
  z.object({ kind: z.literal('devices'), deviceIds: z.array(z.string().min(1)).min(1) }),
]);

export const rolloutStagingSchema = z.discriminatedUnion('kind', [
  /** Cumulative shares of the target, e.g. [1, 10, 50, 100]. */
  z.object({ kind: z.literal('percentages'), steps: z.array(z.number().gt(0).max(100)).min(1) }),
  /** AWS IoT-style exponential rate: start at perMinute, multiply by incrementFactor each step. */
  z.object({
    kind: z.literal('rate'),
    perMinute: z.number().int().positive(),
    incrementFactor: z.number().min(1).default(1),
    maxPerMinute: z.number().int().positive().optional(),
  }),
]);

/** A staged rollout of a teacher: who, how fast, when to stop, when to give up on a device. */
export const rolloutSpecSchema = z.object({
  teacherSha256: z.string().regex(/^[0-9a-f]{64}$/),
  target: rolloutTargetSchema,
  staging: rolloutStagingSchema,
  abort: z.object({ failureShare: z.number().min(0).max(1), minFinished: z.number().int().min(1) }).optional(),
  timeouts: z.object({ inProgressMs: z.number().int().positive().optional(), stepMs: z.number().int().positive().optional() }).default({}),
  retries: z.object({ max: z.number().int().min(0), backoffMs: z.number().int().min(0).default(0) }).default({ max: 0, backoffMs: 0 }),
  maintenanceWindow: z.object({ cron: z.string().min(1), durationMs: z.number().int().positive(), timezone: z.string().optional() }).optional(),
  job: jsonObject.default({}),
});
export type RolloutSpec = z.infer<typeof rolloutSpecSchema>;
export type RolloutSpecInput = z.input<typeof rolloutSpecSchema>;

export const ROLLOUT_STATES = ['scheduled', 'running', 'paused', 'aborted', 'completed', 'canceled'] as const;
export const rolloutStateSchema = z.enum(ROLLOUT_STATES);
export type RolloutState = z.infer<typeof rolloutStateSchema>;

/** Versions of the software on a device, e.g. { agent: '0.3.1', tfjs: '4.22.0' }. */
export const versionsSchema = z.record(z.string(), z.string());
