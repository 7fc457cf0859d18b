import { z } from 'zod';

/**
 * JSON messages between agents and coordinators (topics in transport/topics.ts). Every message is
 * parsed with these schemas at the edge; a message that does not parse is refused as data (a
 * `rejected` update or a log line), never a crash.
 */

const Id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/);
const Iso = z.string().datetime({ offset: true });

export const ErrorInfoSchema = z.object({ code: z.string().min(1), message: z.string() }).strict();
export type ErrorInfo = z.infer<typeof ErrorInfoSchema>;

/** Retained on `devices/{id}/status`; the Last Will publishes the offline form. */
export const StatusMessageSchema = z
  .object({
    type: z.literal('status'),
    deviceId: Id,
    state: z.enum(['online', 'offline']),
    at: Iso,
    profile: z.string().optional(),
    groups: z.array(z.string()).default([]),
    versions: z.record(z.string(), z.string()).default({}),
    capacity: z
      .object({ arch: z.string(), cpus: z.number().int().positive(), memoryMB: z.number().nonnegative(), backend: z.string().optional() })
      .strict()
      .optional(),
    /** Public key (PEM) that signs this device's students. */
    publicKey: z.string().optional(),
  })
  .strict();
export type StatusMessage = z.infer<typeof StatusMessageSchema>;

export const TelemetryMessageSchema = z
  .object({
    type: z.literal('telemetry'),
    deviceId: Id,
    at: Iso,
    cpuLoadPercent: z.number().min(0),
    loadAverage1: z.number().min(0),
    memUsedMB: z.number().min(0),
    memTotalMB: z.number().min(0),
    rssMB: z.number().min(0),
    temperatureC: z.number().nullable(),
    /** Pi: `vcgencmd get_throttled` decoded; Jetson: thermal zones over their trip points. */
    throttled: z.object({ now: z.boolean(), since: z.boolean(), flags: z.array(z.string()), source: z.string() }).strict().nullable(),
    activeJob: z.object({ jobId: Id, state: z.string() }).strict().nullable(),
    /** Why work is paused (outside the cron window, too hot, over the RSS limit), or null. */
    paused: z.string().nullable(),
  })
  .strict();
export type TelemetryMessage = z.infer<typeof TelemetryMessageSchema>;

/** On `devices/{id}/jobs`: a compress job naming a signed teacher manifest, or a command. */
export const JobMessageSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('compress'),
      jobId: Id,
      /** The signed manifest envelope of the teacher (verified before anything is acted on). */
      manifest: z.unknown(),
      /** A dataset name from the device's config. */
      dataset: Id,
      /** Compression settings: fields of CompressJobSpec other than teacher/data/profile/out. */
      settings: z.record(z.string(), z.unknown()).default({}),
      rolloutId: z.string().optional(),
    })
    .strict(),
  z.object({ type: z.literal('cancel'), jobId: Id }).strict(),
]);
export type JobMessage = z.infer<typeof JobMessageSchema>;

/** Every state a job can be in, in pipeline order; the last four are terminal (store/job-states.ts: transitions). */
export const JOB_STATES = [
  'received', 'downloading', 'verified', 'lightening', 'distilling', 'pruning', 'benchmarking', 'reporting',
  'succeeded', 'failed', 'rejected', 'canceled',
] as const;
export type JobState = (typeof JOB_STATES)[number];

/**
 * On `devices/{id}/jobs/{jobId}/update`, as the agent's job store writes it. `kind: 'state'` carries
 * a new seq; `kind: 'progress'` the current seq and a new progressSeq, so a stale progress report
 * arriving after a state change is recognisably stale. Receivers apply by (jobId, seq).
 */
export const JobUpdateMessageSchema = z.object({
  kind: z.enum(['state', 'progress']),
  jobId: Id,
  seq: z.number().int().nonnegative(),
  progressSeq: z.number().int().nonnegative(),
  state: z.enum(JOB_STATES),
  at: z.number(),
  from: z.enum(JOB_STATES).optional(),
  error: ErrorInfoSchema.optional(),
  result: z.unknown().optional(),
  progress: z.unknown().optional(),
  pausedReason: z.string().nullable().optional(),
});
export type JobUpdateMessage = z.infer<typeof JobUpdateMessageSchema>;
