export { runCompressJobInWorker, type CompressWorkerOptions } from './compress-worker.js';
export { jobProbe } from './probe.js';
export type { LogLine } from './protocol.js';
export { openCheckpointStore, CheckpointLocationSchema, type CheckpointLocation } from '../store/checkpoint-location.js';
