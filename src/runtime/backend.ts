import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../core/errors.js';
import { installFastBatchNorm } from './fast-batch-norm.js';
import { installFusedDepthwise } from './fused-depthwise.js';
import { registerWasmTrainingKernels } from './wasm-kernels/index.js';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type BackendName = Exclude<BackendChoice, 'auto'>;

export interface BackendInfo {
  backend: BackendName;
  /** Why this backend was chosen, including why better ones were skipped. */
  reason: string;
  tfjsVersion: string;
  simd: boolean | null;
  threads: number;
}

export function parseBackendChoice(value: string | undefined): BackendChoice {
  const v = (value ?? 'auto').toLowerCase();
  if ((BACKEND_CHOICES as readonly string[]).includes(v)) return v as BackendChoice;
  throw new EdgektError('EDGEKT_ERR_USAGE', `unknown backend "${value}"; expected one of ${BACKEND_CHOICES.join(', ')}`);
}

const require = createRequire(import.meta.url);
let current: BackendInfo | undefined;

async function tryTensorflow(): Promise<string | null> {
  try {
    // Registers the 'tensorflow' backend as a side effect; fails where libtensorflow is absent.
    await import('@tensorflow/tfjs-node' as string);
    if (!(await tf.setBackend('tensorflow'))) return 'tfjs-node loaded but the backend did not initialise';
    return null;
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return `@tensorflow/tfjs-node unavailable (${msg})`;
  }
}

async function tryWasm(): Promise<string | null> {
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep;
    wasm.setWasmPaths(dir);
    // tfjs creates its pthread workers from blob URLs, which Node refuses: use the single-threaded
    // build and get parallelism from worker_threads data-parallel training instead.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    if (!(await tf.setBackend('wasm'))) return 'wasm backend did not initialise';
    await tf.ready();
    registerWasmTrainingKernels();
    return null;
  } catch (e) {
    return `wasm unavailable (${e instanceof Error ? e.message : String(e)})`;
  }
}

async function describe(backend: BackendName, reason: string): Promise<BackendInfo> {
  let simd: boolean | null = null;
  if (backend === 'wasm') simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  return { backend, reason, tfjsVersion: tf.version.tfjs, simd, threads: 1 };
}

/**
 * Selects and initialises the tfjs backend. `auto` prefers libtensorflow (tfjs-node), then wasm
 * (XNNPACK, with edgekt's training kernels), then the pure-JS cpu backend.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  if (current && (choice === 'auto' || choice === current.backend)) return current;
  // Production mode: no debug checks, and no "install tfjs-node" banner on stderr when the cpu
  // backend is used (edgekt says which backend it chose, and why, in `edgekt runtime`).
  tf.enableProdMode();
  const skipped: string[] = [];
  const order: BackendName[] = choice === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [choice];
  for (const name of order) {
    let failure: string | null;
    if (name === 'tensorflow') failure = await tryTensorflow();
    else if (name === 'wasm') failure = await tryWasm();
    else failure = (await tf.setBackend('cpu')) ? null : 'cpu backend did not initialise';
    if (failure === null) {
      // Every backend trains BatchNorm faster through one fused op (fast-batch-norm.ts) and runs
      // depthwise layers as one fused kernel at inference (fused-depthwise.ts).
      installFastBatchNorm();
      installFusedDepthwise();
      const reason =
        choice === 'auto'
          ? skipped.length ? `auto: ${skipped.join('; ')}` : 'auto: first choice available'
          : `requested ${choice}`;
      current = await describe(name, reason);
      return current;
    }
    if (choice !== 'auto') throw new EdgektError('EDGEKT_ERR_BACKEND', `backend ${choice} unavailable: ${failure}`);
    skipped.push(failure);
  }
  throw new EdgektError('EDGEKT_ERR_BACKEND', `no backend available: ${skipped.join('; ')}`);
}

export function currentBackend(): BackendInfo | undefined {
  return current;
}
