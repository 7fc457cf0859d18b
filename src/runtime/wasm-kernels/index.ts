import * as tf from '@tensorflow/tfjs';
import { conv2DBackpropFilterKernel, conv2DBackpropInputKernel } from './conv2d-grad.js';
import { depthwiseBackpropFilterKernel, depthwiseBackpropInputKernel } from './depthwise-grad.js';
import { maxPoolGradKernel } from './pool-grad.js';
import type { Backend } from './wasm-backend.js';

const BACKEND = 'wasm';
const MARK = Symbol.for('edgekt.wasm-kernels');

type Marked = tf.KernelFunc & { [MARK]?: true };
type Impl = (args: { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: never }) => tf.TensorInfo | tf.TensorInfo[];

function mark(fn: Impl): tf.KernelFunc {
  const k = ((args: Parameters<tf.KernelFunc>[0]) => fn(args as unknown as Parameters<Impl>[0])) as Marked;
  k[MARK] = true;
  return k;
}

function install(kernelName: string, fn: Impl): void {
  const existing = tf.getKernel(kernelName, BACKEND);
  if (existing && (existing.kernelFunc as Marked)[MARK]) return;
  if (existing) tf.unregisterKernel(kernelName, BACKEND);
  tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc: mark(fn) });
}

/**
 * Training kernels the tfjs 4.22 wasm backend lacks (Conv2DBackpropFilter, depthwise input and
 * filter gradients) plus replacements for its slow Conv2DBackpropInput and its wrong MaxPoolGrad.
 * Convolution gradients are expressed as XNNPACK forward convolutions over flipped or transposed
 * tensors, so they run at forward speed.
 * Idempotent: safe to call more than once.
 */
export function registerWasmTrainingKernels(): void {
  const original = tf.getKernel('Conv2DBackpropInput', BACKEND);
  const fallback = original && !(original.kernelFunc as Marked)[MARK] ? original.kernelFunc : undefined;
  install('Conv2DBackpropInput', (args) => conv2DBackpropInputKernel(args, fallback));
  install('Conv2DBackpropFilter', conv2DBackpropFilterKernel);
  install('DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInputKernel);
  install('DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilterKernel);
  install('MaxPoolGrad', maxPoolGradKernel);
}

/** Names of the kernels this module provides on the wasm backend (for runtime reports and tests). */
export const WASM_TRAINING_KERNELS = [
  'Conv2DBackpropInput',
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'MaxPoolGrad',
] as const;
