import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import { EdgektError } from '../core/errors.js';
import type { JobUpdateMessage } from '../config/messages.js';
import { JOB_STATES, TERMINAL_STATES, canTransition, type JobState } from './job-states.js';
import { createOutbox, type Outbox } from './outbox.js';
import type { Db } from './sqlite.js';

export interface JobError {
  code: string;
  message: string;
}

export interface Job {
  jobId: string;
  state: JobState;
  /** Bumped by one on every state change; `${jobId}:${seq}` keys that change's outbox message. */
  seq: number;
  /** Bumped by every progress / pause message, never reset: receivers order updates by (seq, progressSeq). */
  progressSeq: number;
  spec: unknown;
  manifest: unknown;
  error: JobError | null;
  progress: unknown;
  result: unknown;
  /** Why the job is paused (cron window, temperature, RSS limit), or null. A flag, not a state. */
  pausedReason: string | null;
  createdAt: number;
  updatedAt: number;
}

/** The JSON payload of `devices/{id}/jobs/{jobId}/update` (config/messages.ts owns the schema). */
export type { JobUpdateMessage };

export interface TransitionDetail {
  /** Required for `failed` and `rejected`: the stable code the coordinator keys on. */
  error?: JobError;
  /** For example the student manifest on `succeeded`. */
  result?: unknown;
}

export interface JobStoreOptions {
  clock: Clock;
  /** Topic of a job's update messages (transport/ owns topic names; store/ may not import it). */
  updateTopic: (jobId: string) => string;
  /** At most one progress message per job per interval; the row itself is always updated. Default 2000. */
  progressIntervalMs?: number;
  keepDelivered?: number;
  /** Told after every committed write that enqueued a message (the agent kicks its outbox pump). */
  onEnqueue?: () => void;
}

export interface JobStore {
  /** Idempotent: a redelivered jobId creates nothing and enqueues nothing. */
  receive(jobId: string, spec: unknown, manifest: unknown): { created: boolean; job: Job };
  /**
   * Validates against JOB_TRANSITIONS, bumps seq and enqueues the update, all in one transaction.
   * A paused job may still change state (the worker pauses between stages); a terminal state clears the pause.
   */
  transition(jobId: string, to: JobState, detail?: TransitionDetail): Job;
  /** `force` sends now whatever the rate limit (a stage's last figure, e.g. all blocks received). */
  progress(jobId: string, progress: unknown, options?: { force?: boolean }): Job;
  pause(jobId: string, reason: string): Job;
  resume(jobId: string): Job;
  get(jobId: string): Job | null;
  /** Non-terminal jobs, oldest first: what the agent resumes after a restart. */
  listActive(): Job[];
  /** Newest first. */
  list(options?: { limit?: number }): Job[];
  /** The outbox this store enqueues into (same connection, so the same transactions). */
  readonly outbox: Outbox;
}

const json = z.string().transform((s, ctx): unknown => {
  try {
    return JSON.parse(s) as unknown;
  } catch {
    ctx.addIssue({ code: 'custom', message: 'not JSON' });
    return z.NEVER;
  }
});
const JobErrorSchema = z.object({ code: z.string(), message: z.string() });

const RowSchema = z.object({
  job_id: z.string(),
  state: z.enum(JOB_STATES),
  seq: z.number().int(),
  progress_seq: z.number().int(),
  spec: json,
  manifest: json,
  error: json.pipe(JobErrorSchema).nullable(),
  progress: json.nullable(),
  result: json.nullable(),
  paused_reason: z.string().nullable(),
  progress_sent_at: z.number().nullable(),
  created_at: z.number(),
  updated_at: z.number(),
});

type JobRow = Job & { progressSentAt: number | null };

function toJob(raw: unknown): JobRow {
  const r = RowSchema.safeParse(raw);
  if (!r.success) throw new EdgektError('EDGEKT_ERR_STORE', `job row fails its schema: ${r.error.message}`);
  const d = r.data;
  return {
    jobId: d.job_id,
    state: d.state,
    seq: d.seq,
    progressSeq: d.progress_seq,
    spec: d.spec,
    manifest: d.manifest,
    error: d.error,
    progress: d.progress,
    result: d.result,
    pausedReason: d.paused_reason,
    createdAt: d.created_at,
    updatedAt: d.updated_at,
    progressSentAt: d.progress_sent_at,
  };
}

function publicJob({ progressSentAt: _, ...job }: JobRow): Job {
  return job;
}

function toJson(value: unknown, what: string): string {
  const s = JSON.stringify(value);
  if (s === undefined) throw new EdgektError('EDGEKT_ERR_STORE', `${what} is not JSON-serialisable`);
  return s;
}

/**
 * The agent's jobs, durable across crashes and power loss. Every state change and its report to the
 * coordinator are written in one SQLite transaction, so after any crash the outbox holds exactly one
 * state message per seq (the sigkill test checks it).
 */
export function createJobStore(db: Db, options: JobStoreOptions): JobStore {
  const { clock } = options;
  const interval = options.progressIntervalMs ?? 2000;
  const outbox = createOutbox(db, { clock, keepDelivered: options.keepDelivered });
  const selectOne = db.prepare('SELECT * FROM jobs WHERE job_id = ?');
  const insert = db.prepare(
    `INSERT INTO jobs (job_id, state, seq, spec, manifest, created_at, updated_at)
     VALUES (?, 'received', 1, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING`,
  );
  const setState = db.prepare(
    'UPDATE jobs SET state = ?, seq = seq + 1, error = ?, result = ?, paused_reason = ?, updated_at = ? WHERE job_id = ? AND seq = ?',
  );
  const setProgress = db.prepare('UPDATE jobs SET progress = ?, updated_at = ? WHERE job_id = ?');
  const bumpProgress = db.prepare(
    'UPDATE jobs SET progress_seq = progress_seq + 1, progress_sent_at = ?, paused_reason = ?, updated_at = ? WHERE job_id = ?',
  );
  const activeStmt = db.prepare(
    `SELECT * FROM jobs WHERE state NOT IN (${[...TERMINAL_STATES].map(() => '?').join(', ')}) ORDER BY created_at, job_id`,
  );
  const listStmt = db.prepare('SELECT * FROM jobs ORDER BY created_at DESC, job_id DESC LIMIT ?');

  const load = (jobId: string): JobRow | null => {
    const raw = selectOne.get(jobId);
    return raw === undefined ? null : toJob(raw);
  };
  const mustLoad = (jobId: string): JobRow => {
    const job = load(jobId);
    if (!job) throw new EdgektError('EDGEKT_ERR_JOB_UNKNOWN', `no job ${jobId}`, { jobId });
    return job;
  };
  const enqueue = (msg: JobUpdateMessage, key: string): void => {
    outbox.enqueue({ topic: options.updateTopic(msg.jobId), payload: JSON.stringify(msg), qos: 1, retain: false, key });
  };
  const stateMessage = (job: Job, from?: JobState): JobUpdateMessage => ({
    kind: 'state',
    jobId: job.jobId,
    seq: job.seq,
    progressSeq: job.progressSeq,
    state: job.state,
    at: job.updatedAt,
    ...(from ? { from } : {}),
    ...(job.error ? { error: job.error } : {}),
    ...(job.result !== null ? { result: job.result } : {}),
  });

  // Bumps progressSeq and enqueues a progress message carrying the current seq.
  const sendProgress = (jobId: string, pausedReason: string | null): JobRow => {
    bumpProgress.run(clock.now(), pausedReason, clock.now(), jobId);
    const job = mustLoad(jobId);
    const msg: JobUpdateMessage = {
      kind: 'progress',
      jobId,
      seq: job.seq,
      progressSeq: job.progressSeq,
      state: job.state,
      at: job.updatedAt,
      progress: job.progress,
      pausedReason: job.pausedReason,
    };
    enqueue(msg, `${jobId}:${job.seq}:p${job.progressSeq}`);
    return job;
  };
  const mustBeActive = (job: JobRow, what: string): void => {
    if (TERMINAL_STATES.has(job.state)) {
      throw new EdgektError('EDGEKT_ERR_JOB_STATE', `cannot ${what} job ${job.jobId}: it is ${job.state}`, { jobId: job.jobId, state: job.state });
    }
  };

  const receive = db.transaction((jobId: string, spec: unknown, manifest: unknown) => {
    const now = clock.now();
    const created = insert.run(jobId, toJson(spec, 'spec'), toJson(manifest, 'manifest'), now, now).changes > 0;
    const job = mustLoad(jobId);
    if (created) enqueue(stateMessage(job), `${jobId}:${job.seq}`);
    return { created, job: publicJob(job) };
  });

  const transition = db.transaction((jobId: string, to: JobState, detail: TransitionDetail) => {
    const job = mustLoad(jobId);
    if (!canTransition(job.state, to)) {
      throw new EdgektError('EDGEKT_ERR_JOB_STATE', `job ${jobId}: ${job.state} → ${to} is not allowed`, { jobId, from: job.state, to });
    }
    if ((to === 'failed' || to === 'rejected') && !detail.error) {
      throw new EdgektError('EDGEKT_ERR_JOB_STATE', `job ${jobId}: ${to} needs an error code`, { jobId, to });
    }
    const error = detail.error ? JobErrorSchema.parse(detail.error) : null;
    const paused = TERMINAL_STATES.has(to) ? null : job.pausedReason;
    const result = detail.result === undefined ? null : toJson(detail.result, 'result');
    setState.run(to, error ? JSON.stringify(error) : null, result, paused, clock.now(), jobId, job.seq);
    const next = mustLoad(jobId);
    enqueue(stateMessage(next, job.state), `${jobId}:${next.seq}`);
    return publicJob(next);
  });

  const progress = db.transaction((jobId: string, value: unknown, force: boolean) => {
    const job = mustLoad(jobId);
    mustBeActive(job, 'report progress of');
    setProgress.run(toJson(value, 'progress'), clock.now(), jobId);
    const due = force || job.progressSentAt === null || clock.now() - job.progressSentAt >= interval;
    return publicJob(due ? sendProgress(jobId, job.pausedReason) : mustLoad(jobId));
  });

  const setPaused = db.transaction((jobId: string, reason: string | null) => {
    const job = mustLoad(jobId);
    mustBeActive(job, reason === null ? 'resume' : 'pause');
    if (job.pausedReason === reason) return publicJob(job);
    return publicJob(sendProgress(jobId, reason));
  });

  // Outside any transaction of ours: the write is committed when the listener hears of it.
  const notify = <T>(result: T): T => {
    if (db.inTransaction) return result;
    options.onEnqueue?.();
    return result;
  };
  // Every transaction reads, then writes: IMMEDIATE takes the write lock first, so a writer on another
  // connection (the job's worker saving checkpoints) makes it wait (busy_timeout) instead of failing
  // with SQLITE_BUSY on the read-to-write upgrade.
  return {
    outbox,
    receive: (jobId, spec, manifest) => notify(receive.immediate(jobId, spec, manifest)),
    transition: (jobId, to, detail = {}) => notify(transition.immediate(jobId, to, detail)),
    progress: (jobId, value, o) => notify(progress.immediate(jobId, value, o?.force ?? false)),
    pause: (jobId, reason) => notify(setPaused.immediate(jobId, reason)),
    resume: (jobId) => notify(setPaused.immediate(jobId, null)),
    get: (jobId) => {
      const job = load(jobId);
      return job ? publicJob(job) : null;
    },
    listActive: () => activeStmt.all(...TERMINAL_STATES).map((r) => publicJob(toJob(r))),
    list: ({ limit = 100 } = {}) => listStmt.all(Math.max(1, Math.floor(limit))).map((r) => publicJob(toJob(r))),
  };
}
