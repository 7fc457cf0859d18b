/**
 * Messages between runCompressJobInWorker (main thread) and its worker: structured-clone data
 * only; the student's weights travel as a transferred ArrayBuffer.
 */
import type { PipelineEvent } from '../compress/pipeline.js';
import type { CompressReport } from '../compress/report/index.js';
import type { CompressJobSpecInput } from '../config/job-spec.js';
import type { BackendChoice } from '../runtime/backend.js';
import type { CheckpointLocation } from '../store/checkpoint-location.js';

/** One pino log record, as the JSON object pino wrote. */
export type LogLine = Record<string, unknown>;

export type ToJobWorker =
  | { type: 'start'; spec: CompressJobSpecInput; checkpoints: CheckpointLocation; backend: BackendChoice; logLevel: string }
  | { type: 'abort' };

export type FromJobWorker =
  | { type: 'event'; event: PipelineEvent }
  | { type: 'log'; line: LogLine }
  | { type: 'result'; met: boolean; report: CompressReport; student: { modelJson: string; weights: Uint8Array } }
  | { type: 'error'; code: string; message: string; details: Record<string, unknown> };
