import * as tf from '@tensorflow/tfjs';
import { type Backend, alloc, convRaw, heap, release, spreadPad } from './wasm-backend.js';
import { stridedInputGrad } from './strided-input-grad.js';

export type Shape4 = [number, number, number, number];

interface Conv2DBackpropInputAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: Shape4;
}


/**
 * Filter [fh, fw, inC, outC] → spatially flipped, channel-swapped [fh, fw, outC, inC]: the filter
 * of the forward convolution that computes the input gradient.
 */
export function flipTransposeFilter(backend: Backend, filter: tf.TensorInfo): tf.TensorInfo {
  const [fh, fw, ci, co] = filter.shape as Shape4;
  const out = alloc(backend, [fh, fw, co, ci]);
  const src = heap(backend, filter);
  const dst = heap(backend, out);
  for (let ky = 0; ky < fh; ky++) {
    for (let kx = 0; kx < fw; kx++) {
      const s = ((fh - 1 - ky) * fw + (fw - 1 - kx)) * ci * co;
      const d = (ky * fw + kx) * co * ci;
      for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) dst[d + o * ci + i] = src[s + i * co + o]!;
    }
  }
  return out;
}

/**
 * Input gradient as a forward convolution of dy (zero-inserted when strided) with the flipped,
 * transposed filter, padded so the output has the input's size. Shared by depthwise (with its own
 * filter transform). Returns null when the geometry needs negative padding the caller must crop.
 */
export function inputGradPlan(info: tf.backend_util.Conv2DInfo): {
  pads: [number, number, number, number];
  spread: boolean;
} {
  const { filterHeight: fh, filterWidth: fw, inHeight: h, inWidth: w, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const efh = (fh - 1) * dh + 1;
  const efw = (fw - 1) * dw + 1;
  const top = efh - 1 - info.padInfo.top;
  const left = efw - 1 - info.padInfo.left;
  const bottom = h - ((oh - 1) * sh + 1) + efh - 1 - top;
  const right = w - ((ow - 1) * sw + 1) + efw - 1 - left;
  const pads: [number, number, number, number] = [top, right, bottom, left];
  return { pads, spread: sh > 1 || sw > 1 || pads.some((p) => p < 0) };
}

/** Runs the planned input-gradient convolution; `depthwise` selects the XNNPACK depthwise path. */
export function convForInputGrad(
  backend: Backend, dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo, depthwise: boolean,
): tf.TensorInfo {
  const plan = inputGradPlan(info);
  const dil: [number, number] = [info.dilationHeight, info.dilationWidth];
  if (!plan.spread) return convRaw(backend, dy, filter, { pads: plan.pads, strides: [1, 1], dilations: dil }, depthwise);
  const spread = spreadPad(backend, dy, [info.strideHeight, info.strideWidth], plan.pads);
  try {
    return convRaw(backend, spread, filter, { pads: [0, 0, 0, 0], strides: [1, 1], dilations: dil }, depthwise);
  } finally {
    release(backend, spread);
  }
}

export function conv2DBackpropInputKernel(
  args: { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: Conv2DBackpropInputAttrs },
  fallback: tf.KernelFunc | undefined,
): tf.TensorInfo | tf.TensorInfo[] {
  const { inputs, backend, attrs } = args;
  const dy = inputs['dy']!;
  const filter = inputs['filter']!;
  if (attrs.dataFormat === 'NCHW') {
    if (!fallback) throw new Error('wasm-kernels: Conv2DBackpropInput supports NHWC only');
    return fallback(args as unknown as Parameters<tf.KernelFunc>[0]);
  }
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape, filter.shape as Shape4, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  if (info.strideHeight > 1 || info.strideWidth > 1) {
    const dx = stridedInputGrad(backend, dy, filter, info);
    if (dx) return dx;
  }
  const wt = flipTransposeFilter(backend, filter);
  try {
    return convForInputGrad(backend, dy, wt, info, false);
  } finally {
    release(backend, wt);
  }
}
