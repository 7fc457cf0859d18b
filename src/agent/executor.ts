import { mkdir, readFile, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { MqttClient } from 'mqtt';
import type { DeviceProfile } from '../config/device-profile.js';
import { z } from 'zod';
import { EnvelopeSchema, ManifestSchema } from '../config/manifest.js';
import type { Manifest } from '../config/manifest.js';
import { EdgektError, toEdgektError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { Db } from '../store/sqlite.js';
import type { Job, JobStore } from '../store/jobs.js';
import type { JobState } from '../store/job-states.js';
import type { VersionStore } from '../store/versions.js';
import { pullManifestFile } from './pull.js';
import { signManifest } from '../transport/signing.js';
import { manifestForDir } from '../transport/manifest-dir.js';
import { inspectModelDir } from '../model/io.js';
import { parseCompressJobSpec, type CompressJobSpec } from '../config/job-spec.js';
import type { CompressJobResult, CompressJobRunner } from './runner.js';
import type { PipelineEvent } from '../compress/pipeline.js';

/** What the job row keeps of a compress message, parsed back with zod (persisted JSON is not cast). */
const StoredSpecSchema = z.object({ settings: z.record(z.string(), z.unknown()).default({}), datasetSpec: z.string() }).passthrough();

export interface ExecutorDeps {
  deviceId: string;
  profile: DeviceProfile;
  stateDir: string;
  db: Db;
  dbFile: string;
  jobs: JobStore;
  versions: VersionStore;
  client: MqttClient;
  deviceKey: KeyObject;
  minFreeDiskBytes: number;
  window: number;
  run: CompressJobRunner;
  clock: Clock;
  logger: Logger;
  /** Called when a student is ready to serve (sha256 → file). */
  publishArtifact(files: Array<{ sha256: string; file: string; size: number }>): void;
}

const PIPELINE_STATE: Record<string, JobState> = { lighten: 'lightening', distill: 'distilling', prune: 'pruning' };
const ORDER: JobState[] = ['received', 'downloading', 'verified', 'lightening', 'distilling', 'pruning', 'benchmarking', 'reporting'];

export const jobDir = (stateDir: string, jobId: string): string => path.join(stateDir, 'jobs', jobId);

/** Why a failure is a refusal of the input (rejected) rather than a failure of the work. */
const REFUSALS = new Set([
  'EDGEKT_ERR_MALFORMED', 'EDGEKT_ERR_UNSIGNED', 'EDGEKT_ERR_UNKNOWN_KEY', 'EDGEKT_ERR_SIGNATURE', 'EDGEKT_ERR_EXPIRED',
  'EDGEKT_ERR_REPLAY', 'EDGEKT_ERR_MANIFEST_VERSION', 'EDGEKT_ERR_WRONG_TARGET', 'EDGEKT_ERR_HASH', 'EDGEKT_ERR_TOO_LARGE',
  'EDGEKT_ERR_DISK_FULL', 'EDGEKT_ERR_DATASET_UNKNOWN', 'EDGEKT_ERR_JOB_SPEC', 'EDGEKT_ERR_MODEL_FORMAT',
  'EDGEKT_ERR_MODEL_UNSUPPORTED', 'EDGEKT_ERR_MODEL_TOO_LARGE', 'EDGEKT_ERR_MODEL_WEIGHTS', 'EDGEKT_ERR_DATA_NOT_FOUND',
  'EDGEKT_ERR_DATA_FORMAT', 'EDGEKT_ERR_DATA_EMPTY', 'EDGEKT_ERR_DATA_SPEC', 'EDGEKT_ERR_DATA_IMAGE',
]);
export const isRefusal = (code: string): boolean => REFUSALS.has(code);

/**
 * Drives one job from wherever its row says it is to a terminal state: download (resumable from
 * the block ledger), verify the teacher, compress in the worker (resuming from checkpoints), then
 * sign and report the student. Every transition goes through the job store, which writes the
 * update to the outbox in the same transaction.
 */
export function createExecutor(d: ExecutorDeps) {
  /** Progress is best effort: a failed write is logged, never thrown into the worker's event stream. */
  const note = (jobId: string, progress: unknown, force = false): void => {
    try {
      d.jobs.progress(jobId, progress, { force });
    } catch (e) {
      d.logger.warn({ jobId, err: e instanceof Error ? e.message : String(e) }, 'progress not recorded');
    }
  };

  const advance = (jobId: string, to: JobState): Job => {
    const job = d.jobs.get(jobId)!;
    if (ORDER.indexOf(to) <= ORDER.indexOf(job.state)) return job;
    if (job.state === 'distilling' && to === 'benchmarking') return d.jobs.transition(jobId, to);
    let cur = job;
    // Walk the forward edges (e.g. verified → lightening → distilling when a resumed run skips ahead).
    while (ORDER.indexOf(cur.state) < ORDER.indexOf(to)) cur = d.jobs.transition(jobId, ORDER[ORDER.indexOf(cur.state) + 1]!);
    return cur;
  };

  async function download(job: Job, manifest: Manifest, signal: AbortSignal): Promise<string> {
    const dir = path.join(jobDir(d.stateDir, job.jobId), 'teacher');
    await mkdir(dir, { recursive: true });
    const need = manifest.files.reduce((a, f) => a + f.size, 0);
    const fs = await statfs(d.stateDir);
    const free = Number(fs.bavail) * Number(fs.bsize);
    if (free - need < d.minFreeDiskBytes) {
      throw new EdgektError('EDGEKT_ERR_DISK_FULL', `${need} bytes needed, ${free} free, ${d.minFreeDiskBytes} to keep`, { need, free });
    }
    const totalBlocks = manifest.files.reduce((a, f) => a + Math.ceil(f.size / f.blockSize), 0);
    let before = 0;
    for (const f of manifest.files) {
      const blocks = Math.ceil(f.size / f.blockSize);
      const onProgress = (p: { received: number; total: number }): void => {
        const received = before + p.received;
        note(job.jobId, { stage: 'download', done: received, total: totalBlocks, blocks: { received, total: totalBlocks } }, received === totalBlocks);
      };
      await pullManifestFile(f, path.join(dir, f.path), {
        client: d.client, db: d.db, deviceId: d.deviceId, ledgerKey: `${job.jobId}:${f.path}`, responseLevel: job.jobId, window: d.window, signal, onProgress,
      });
      before += blocks;
    }
    return dir;
  }

  async function compress(job: Job, spec: CompressJobSpec, signal: AbortSignal): Promise<CompressJobResult> {
    return d.run(spec, {
      checkpoints: { kind: 'sqlite', file: d.dbFile, runId: job.jobId },
      signal,
      onEvent: (e) => {
        try {
          onPipelineEvent(e);
        } catch (err) {
          d.logger.error({ jobId: job.jobId, err: err instanceof Error ? err.message : String(err) }, 'pipeline event not applied');
        }
      },
      onLog: (line) => d.logger.debug({ jobId: job.jobId, worker: line }, 'worker'),
    });
    function onPipelineEvent(e: PipelineEvent): void {
        if (e.type === 'stage-start' && PIPELINE_STATE[e.stage]) advance(job.jobId, PIPELINE_STATE[e.stage]!);
        else if (e.type === 'stage-done' && e.stage === 'prune') advance(job.jobId, 'benchmarking');
        // A saved checkpoint is sent whatever the rate limit: it tells the coordinator what a kill would lose.
        else if (e.type === 'progress') note(job.jobId, { stage: e.progress.stage, done: e.progress.done, total: e.progress.total, ...(e.progress.detail ? { detail: e.progress.detail } : {}) }, e.progress.detail === 'checkpoint saved');
        else if (e.type === 'iteration') note(job.jobId, { stage: 'prune', done: e.record.iteration, total: 0, detail: `${e.record.figures.params} params, p95 ${e.record.figures.latencyP95Ms.toFixed(2)} ms` });
    }
  }

  async function report(job: Job, result: CompressJobResult): Promise<void> {
    const outDir = path.join(jobDir(d.stateDir, job.jobId), 'student');
    await mkdir(outDir, { recursive: true });
    await writeFile(path.join(outDir, 'model.json'), result.student.modelJson);
    await writeFile(path.join(outDir, 'weights.bin'), result.student.weights);
    await writeFile(path.join(outDir, 'report.json'), JSON.stringify(result.report));
    const manifest = await manifestForDir(outDir, {
      kind: 'student', name: `${d.deviceId}.${job.jobId}`, version: 1, target: { groups: ['coordinators'] },
      expiresInSeconds: 365 * 24 * 3600, now: d.clock.now(),
    });
    const envelope = signManifest(manifest, d.deviceKey);
    d.publishArtifact(manifest.files.map((f) => ({ sha256: f.sha256, file: path.join(outDir, f.path), size: f.size })));
    const summary = { met: result.met, report: result.report, student: envelope };
    if (result.met) d.jobs.transition(job.jobId, 'succeeded', { result: summary });
    else {
      d.jobs.transition(job.jobId, 'failed', {
        error: { code: 'EDGEKT_ERR_BUDGET_UNREACHABLE', message: `no model met every budget (${result.report.stopReason}); the closest is attached` },
        result: summary,
      });
    }
  }

  /** Runs a job to its end, or until `signal` aborts (cancel, pause, shutdown: the caller decides what that means). */
  async function drive(jobId: string, signal: AbortSignal): Promise<void> {
    let job = d.jobs.get(jobId);
    if (!job) return;
    const stored = StoredSpecSchema.parse(job.spec);
    const manifest = ManifestSchema.parse(EnvelopeSchema.parse(job.manifest).manifest);
    try {
      const teacherDir = path.join(jobDir(d.stateDir, jobId), 'teacher');
      if (job.state === 'received') job = d.jobs.transition(jobId, 'downloading');
      if (job.state === 'downloading') {
        await download(job, manifest, signal);
        await inspectModelDir(teacherDir); // the loader's refusals (format, size, weights) before any work
        job = d.jobs.transition(jobId, 'verified');
      }
      const spec = parseCompressJobSpec({ ...stored.settings, teacher: teacherDir, data: stored.datasetSpec, profile: d.profile, resume: true });
      if (job.state !== 'reporting') {
        const result = await compress(job, spec, signal);
        advance(jobId, 'reporting');
        await report(d.jobs.get(jobId)!, result);
      } else {
        // Killed while reporting: the worker's checkpoints make a resumed run return at once.
        await report(job, await compress(job, spec, signal));
      }
    } catch (e) {
      const err = toEdgektError(e);
      // An abort (cancel, pause, stop) surfaces as whatever the interrupted step threw (a pull says TRANSFER): the caller decides.
      if (err.code === 'EDGEKT_ERR_ABORTED' || signal.aborted) throw err;
      const now = d.jobs.get(jobId)!;
      const to = isRefusal(err.code) && (now.state === 'received' || now.state === 'downloading' || now.state === 'verified') ? 'rejected' : 'failed';
      d.logger.warn({ jobId, code: err.code, state: now.state }, `job ${to}: ${err.message}`);
      d.jobs.transition(jobId, to, { error: { code: err.code, message: err.message } });
    }
  }

  async function restoreArtifacts(): Promise<void> {
    for (const job of d.jobs.list({ limit: 1000 })) {
      const r = job.result as { student?: { manifest?: Manifest } } | null;
      const files = r?.student?.manifest?.files;
      if (!files) continue;
      const outDir = path.join(jobDir(d.stateDir, job.jobId), 'student');
      try {
        await readFile(path.join(outDir, 'model.json'));
        d.publishArtifact(files.map((f) => ({ sha256: f.sha256, file: path.join(outDir, f.path), size: f.size })));
      } catch {
        // the student's files are gone (state dir pruned): nothing to serve
      }
    }
  }

  return { drive, restoreArtifacts };
}
