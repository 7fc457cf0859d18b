import type { Worker } from 'node:worker_threads';
import { EdgektError } from '../../core/errors.js';

/** What every worker protocol shares: a typed message, and errors travelling as data. */
export interface WorkerMessage {
  type: string;
}
export interface WorkerErrorReply {
  type: 'error';
  message: string;
  code?: string;
}

interface Pending<Out> {
  resolve: (m: Out) => void;
  reject: (e: Error) => void;
}

/** Request/response over one worker that answers every message once and in order. */
export interface Channel<In extends WorkerMessage, Out extends WorkerMessage> {
  readonly worker: Worker;
  call<T extends Out['type']>(msg: In, expect: T, transfer?: ArrayBuffer[], timeoutMs?: number): Promise<Extract<Out, { type: T }>>;
  /** Fails every pending call and terminates the worker. */
  kill(): Promise<number>;
}

/**
 * Wraps a worker in request/response calls. The worker is referenced only while a reply is
 * awaited, so a forgotten dispose cannot keep the process alive; a crash, exit or timeout fails
 * every pending call with EDGEKT_ERR_WORKER.
 */
export function createChannel<In extends WorkerMessage, Out extends WorkerMessage>(worker: Worker, index: number): Channel<In, Out> {
  const pending: Array<Pending<Out>> = [];
  let dead: Error | undefined;
  worker.unref();
  const failAll = (e: Error) => {
    dead ??= e;
    for (const p of pending.splice(0)) p.reject(e);
  };
  worker.on('message', (m: Out | WorkerErrorReply) => {
    const p = pending.shift();
    if (pending.length === 0) worker.unref();
    if (!p) return;
    if (m.type === 'error') {
      const err = m as WorkerErrorReply;
      p.reject(new EdgektError('EDGEKT_ERR_WORKER', `worker ${index}: ${err.message}`, { workerCode: err.code }));
    } else p.resolve(m as Out);
  });
  worker.on('error', (e) => failAll(new EdgektError('EDGEKT_ERR_WORKER', `worker ${index} crashed: ${e.message}`, {}, { cause: e })));
  worker.on('exit', (code) => failAll(new EdgektError('EDGEKT_ERR_WORKER', `worker ${index} exited (code ${code})`)));
  return {
    worker,
    call<T extends Out['type']>(msg: In, expect: T, transfer: ArrayBuffer[] = [], timeoutMs?: number): Promise<Extract<Out, { type: T }>> {
      if (dead) return Promise.reject(dead);
      let timer: NodeJS.Timeout | undefined;
      return new Promise<Out>((resolve, reject) => {
        if (pending.length === 0) worker.ref();
        pending.push({ resolve, reject });
        worker.postMessage(msg, transfer);
        if (timeoutMs !== undefined) {
          // A worker that does not answer is in an unknown state: fail everything and stop it.
          timer = setTimeout(() => {
            failAll(new EdgektError('EDGEKT_ERR_WORKER', `worker ${index}: no reply to ${msg.type} within ${timeoutMs} ms`));
            void worker.terminate();
          }, timeoutMs);
        }
      }).finally(() => clearTimeout(timer)).then((m) => {
        if (m.type !== expect) throw new EdgektError('EDGEKT_ERR_WORKER', `worker ${index}: expected ${expect}, got ${m.type}`);
        return m as Extract<Out, { type: T }>;
      });
    },
    kill(): Promise<number> {
      failAll(new EdgektError('EDGEKT_ERR_WORKER', 'trainer disposed'));
      return worker.terminate();
    },
  };
}

/** Shard sizes: as equal as possible, never empty; fewer shards than workers for tiny batches. */
export function shardSizes(n: number, workers: number): number[] {
  const k = Math.max(1, Math.min(workers, n));
  return Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));
}

/** Weighted sum Σ coefᵢ·partsᵢ of equally long arrays into a new array (shard gradients → batch gradient). */
export function weightedSum(parts: Float32Array[], coef: number[]): Float32Array {
  const out = new Float32Array(parts[0]?.length ?? 0);
  parts.forEach((p, i) => {
    const c = coef[i]!;
    for (let j = 0; j < out.length; j++) out[j] = out[j]! + c * p[j]!;
  });
  return out;
}
