import { parseCompressJobSpec, type CompressJobSpecInput } from '../config/job-spec.js';
import { EdgektError, ERROR_CODES, throwIfAborted, type ErrorCode } from '../core/errors.js';
import type { CompressJobResult } from '../compress/job/index.js';
import type { PipelineEvent } from '../compress/pipeline.js';
import type { BackendChoice } from '../runtime/backend.js';
import { siblingModule, spawnWorker } from '../runtime/parallel/spawn.js';
import type { CheckpointLocation } from '../store/checkpoint-location.js';
import type { FromJobWorker, LogLine, ToJobWorker } from './protocol.js';

export interface CompressWorkerOptions {
  /** Where the worker keeps the job's checkpoints (it opens the store itself). */
  checkpoints: CheckpointLocation;
  /** Cancels the job at its next safe point: the promise rejects with EDGEKT_ERR_ABORTED. */
  signal?: AbortSignal;
  onEvent?: (e: PipelineEvent) => void;
  /** The job's pino records (level `logLevel`), as parsed JSON objects. */
  onLog?: (line: LogLine) => void;
  logLevel?: string;
  /** Backend the worker initialises. Default 'auto'. */
  backend?: BackendChoice;
  /** After an abort, how long to wait for the job to reach a safe point before killing the thread. Default 30 s. */
  abortGraceMs?: number;
}

function errorFrom(m: Extract<FromJobWorker, { type: 'error' }>): EdgektError {
  const code: ErrorCode = m.code in ERROR_CODES ? (m.code as ErrorCode) : 'EDGEKT_ERR_INTERNAL';
  return new EdgektError(code, m.message, m.details);
}

/**
 * runCompressJob in a worker thread, so the caller's event loop (MQTT, heartbeats, commands) stays
 * responsive while the job trains and measures. Events, log lines and the result arrive as plain
 * data; errors keep their EdgektError code.
 */
export async function runCompressJobInWorker(spec: CompressJobSpecInput, o: CompressWorkerOptions): Promise<CompressJobResult> {
  parseCompressJobSpec(spec);
  throwIfAborted(o.signal, 'before the job started');
  const worker = spawnWorker(siblingModule(import.meta.url, 'compress-worker-entry'));
  return new Promise<CompressJobResult>((resolve, reject) => {
    let settled = false;
    let grace: NodeJS.Timeout | undefined;
    const finish = (f: () => void): void => {
      if (settled) return;
      settled = true;
      o.signal?.removeEventListener('abort', onAbort);
      if (grace) clearTimeout(grace);
      void worker.terminate();
      f();
    };
    const onAbort = (): void => {
      worker.postMessage({ type: 'abort' } satisfies ToJobWorker);
      grace = setTimeout(() => finish(() => reject(new EdgektError('EDGEKT_ERR_ABORTED', 'aborted; the job did not reach a safe point in time and its thread was stopped'))), o.abortGraceMs ?? 30_000);
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: FromJobWorker) => {
      if (m.type === 'event') o.onEvent?.(m.event);
      else if (m.type === 'log') o.onLog?.(m.line);
      else if (m.type === 'result') finish(() => resolve({ met: m.met, report: m.report, student: m.student }));
      else if (m.type === 'error') finish(() => reject(errorFrom(m)));
    });
    worker.on('error', (e) => finish(() => reject(new EdgektError('EDGEKT_ERR_WORKER', `compress worker failed: ${e.message}`, {}, { cause: e }))));
    worker.on('exit', (code) => finish(() => reject(new EdgektError('EDGEKT_ERR_WORKER', `compress worker exited (code ${code}) before its result`))));
    worker.postMessage({ type: 'start', spec, checkpoints: o.checkpoints, backend: o.backend ?? 'auto', logLevel: o.logLevel ?? 'info' } satisfies ToJobWorker);
  });
}
