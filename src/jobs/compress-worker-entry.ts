/**
 * The worker side of runCompressJobInWorker: its own tfjs engine and backend, its own checkpoint
 * store opened from the location, the job run to the end or to an abort, everything posted back.
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import pino from 'pino';
import { runCompressJob } from '../compress/job/index.js';
import { parseCompressJobSpec } from '../config/job-spec.js';
import { toEdgektError } from '../core/errors.js';
import { initBackend } from '../runtime/backend.js';
import { openCheckpointStore } from '../store/checkpoint-location.js';
import { jobProbe } from './probe.js';
import type { FromJobWorker, LogLine, ToJobWorker } from './protocol.js';

const port = parentPort;
if (!port) throw new Error('compress-worker-entry must run in a worker thread');
const controller = new AbortController();

function post(msg: FromJobWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

async function start(m: Extract<ToJobWorker, { type: 'start' }>): Promise<void> {
  try {
    tf.env().set('PROD', true);
    await initBackend(m.backend);
    const spec = parseCompressJobSpec(m.spec);
    const logger = pino({ level: m.logLevel }, { write: (s: string) => post({ type: 'log', line: JSON.parse(s) as LogLine }) });
    const r = await runCompressJob(spec, {
      checkpoints: openCheckpointStore(m.checkpoints),
      probe: jobProbe(spec),
      signal: controller.signal,
      logger,
      onEvent: (event) => post({ type: 'event', event }),
    });
    const w = r.student.weights;
    const weights = w.byteOffset === 0 && w.byteLength === w.buffer.byteLength ? w : w.slice();
    post({ type: 'result', met: r.met, report: r.report, student: { modelJson: r.student.modelJson, weights } }, [weights.buffer as ArrayBuffer]);
  } catch (e) {
    const err = toEdgektError(e);
    try {
      post({ type: 'error', code: err.code, message: err.message, details: { ...err.details } });
    } catch {
      post({ type: 'error', code: err.code, message: err.message, details: {} });
    }
  }
}

port.on('message', (m: ToJobWorker) => {
  if (m.type === 'abort') controller.abort();
  else if (m.type === 'start') void start(m).finally(() => port.close());
});
