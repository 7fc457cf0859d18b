import type { CompressJobSpec } from '../config/job-spec.js';
import type { CompressReport } from '../compress/report/index.js';
import type { PipelineEvent } from '../compress/pipeline.js';
import type { ModelBytes } from '../store/checkpoint-store.js';
import type { CheckpointLocation } from '../jobs/index.js';

export interface CompressJobResult {
  met: boolean;
  report: CompressReport;
  student: ModelBytes;
}

export interface RunnerOptions {
  checkpoints: CheckpointLocation;
  signal?: AbortSignal;
  onEvent?: (e: PipelineEvent) => void;
  onLog?: (line: unknown) => void;
}

/**
 * How the agent runs a compress job: in a worker thread (runCompressJobInWorker) in production, so
 * MQTT, heartbeats and commands stay live; the fleet benchmark's simulated agents swap in a runner
 * that only speaks the protocol.
 */
export type CompressJobRunner = (spec: CompressJobSpec, o: RunnerOptions) => Promise<CompressJobResult>;
