import * as tf from '@tensorflow/tfjs';
import { conv2DBackpropInputKernel } from './conv2d-grad.js';
import { conv2DBackpropFilterKernel } from './conv2d-filter-grad.js';
import { depthwiseBackpropFilterKernel, depthwiseBackpropInputKernel } from './depthwise-grad.js';
import { maxPoolGradKernel } from './pool-grad.js';
import { makeReduceKernel, makeTileKernel } from './reduce.js';
import { makeCastKernel, makeIdentityKernel } from './share.js';
import type { Backend } from './wasm-backend.js';

export { setFilterChunkBytes, setIm2colChunkBytes } from './conv2d-filter-grad.js';

const BACKEND = 'wasm';
const MARK = Symbol.for('edgekt.wasm-kernels');

type Marked = tf.KernelFunc & { [MARK]?: true };
type Impl = (args: { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: never }) => tf.TensorInfo | tf.TensorInfo[];
/** Builds our kernel given the backend's original one (undefined when the backend lacks it). */
type Factory = (original: tf.KernelFunc | undefined) => Impl;

const KERNELS: Record<string, Factory> = {
  Conv2DBackpropInput: (original) => (args) => conv2DBackpropInputKernel(args, original),
  Conv2DBackpropFilter: () => conv2DBackpropFilterKernel,
  DepthwiseConv2dNativeBackpropInput: () => depthwiseBackpropInputKernel,
  DepthwiseConv2dNativeBackpropFilter: () => depthwiseBackpropFilterKernel,
  MaxPoolGrad: () => maxPoolGradKernel,
  Sum: (original) => makeReduceKernel(false, original),
  Mean: (original) => makeReduceKernel(true, original),
  Tile: (original) => makeTileKernel(original),
  Identity: (original) => makeIdentityKernel(original),
  Cast: (original) => makeCastKernel(original),
};

/** Names of the kernels this module provides on the wasm backend (for runtime reports and tests). */
export const WASM_TRAINING_KERNELS = Object.keys(KERNELS);

function install(kernelName: string, factory: Factory): void {
  const existing = tf.getKernel(kernelName, BACKEND);
  if (existing && (existing.kernelFunc as Marked)[MARK]) return;
  const fn = factory(existing?.kernelFunc);
  const k = ((args: Parameters<tf.KernelFunc>[0]) => fn(args as unknown as Parameters<Impl>[0])) as Marked;
  k[MARK] = true;
  if (existing) tf.unregisterKernel(kernelName, BACKEND);
  tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc: k });
}

/**
 * Training kernels the tfjs 4.22 wasm backend lacks (Conv2DBackpropFilter, depthwise input and
 * filter gradients), plus replacements for kernels that are slow (Conv2DBackpropInput; Sum, Mean
 * and Tile over leading axes, used by every bias and batch-norm gradient; copying Identity and
 * same-dtype Cast) or wrong (MaxPoolGrad).
 * Convolution gradients are expressed as XNNPACK forward convolutions over flipped or transposed
 * tensors, so they run at forward speed. Idempotent: safe to call more than once.
 */
export function registerWasmTrainingKernels(): void {
  for (const [name, factory] of Object.entries(KERNELS)) install(name, factory);
}
