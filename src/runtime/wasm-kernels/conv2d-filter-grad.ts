import * as tf from '@tensorflow/tfjs';
import type { Shape4 } from './conv2d-grad.js';
import {
  type Backend, alloc, convRaw, heap, release, releaseView, reshapeView, transposeRaw, viewAt,
} from './wasm-backend.js';

interface Conv2DBackpropFilterAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: Shape4;
}

/** Bytes of dyᵀ (the filter XNNPACK packs) per convolution call: about half an L2 cache. */
let filterChunkBytes = 1 << 20;

/** Tunes the filter-gradient batch chunk (devices with a smaller L2 want less); returns the old value. */
export function setFilterChunkBytes(bytes: number): number {
  const old = filterChunkBytes;
  filterChunkBytes = Math.max(1, Math.floor(bytes));
  return old;
}

/** Largest divisor of n whose chunk of dyᵀ fits the chunk budget (at least 1). */
export function batchChunk(n: number, bytesPerImage: number): number {
  const target = Math.max(1, Math.floor(filterChunkBytes / bytesPerImage));
  for (let c = Math.min(n, target); c > 1; c--) if (n % c === 0) return c;
  return 1;
}

/**
 * Filter gradient as forward convolutions over transposed tensors, the batch becoming the channel
 * dimension: input xᵀ [inC, H, W, n] and filter dyᵀ [outH, outW, n, outC], dilated by the stride
 * and padded like the forward pass, give [inC, fh', fw', outC], cropped to the filter size
 * (fh' > fh only when the forward pass left rows unused) and transposed to [fh, fw, inC, outC].
 * The batch is split into chunks of n images so that each packed dyᵀ stays in cache; the chunks'
 * partial gradients are summed in float64.
 */
export function conv2DBackpropFilterKernel(
  args: { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: Conv2DBackpropFilterAttrs },
): tf.TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = inputs['x']!;
  const dy = inputs['dy']!;
  if (attrs.dataFormat === 'NCHW') throw new Error('wasm-kernels: Conv2DBackpropFilter supports NHWC only');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4, attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const { batchSize: n, filterHeight: fh, filterWidth: fw, inChannels: ci, outChannels: co } = info;
  const { inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const bottom = Math.max(0, fh + (oh - 1) * sh - h - top);
  const right = Math.max(0, fw + (ow - 1) * sw - w - left);
  if (fh === 1 && fw === 1 && sh === 1 && sw === 1 && top === 0 && left === 0 && oh === h && ow === w) {
    return pointwiseFilterGrad(backend, x, dy, ci, co);
  }
  const nc = batchChunk(n, oh * ow * co * 4);
  const g = n / nc;
  const xt = transposeRaw(backend, reshapeView(x, [g, nc, h, w, ci]), [0, 4, 2, 3, 1]);
  const dyt = transposeRaw(backend, reshapeView(dy, [g, nc, oh, ow, co]), [0, 2, 3, 1, 4]);
  const acc = new Float64Array(fh * fw * ci * co);
  try {
    for (let k = 0; k < g; k++) {
      const xv = viewAt(backend, xt, k * ci * h * w * nc, [ci, h, w, nc]);
      const fv = viewAt(backend, dyt, k * oh * ow * nc * co, [oh, ow, nc, co]);
      let ot: tf.TensorInfo | undefined;
      try {
        ot = convRaw(backend, xv, fv, { pads: [top, right, bottom, left], strides: [1, 1], dilations: [sh, sw] });
        const [, gh, gw] = ot.shape as Shape4;
        const src = heap(backend, ot);
        for (let ky = 0; ky < fh; ky++) {
          for (let kx = 0; kx < fw; kx++) {
            for (let i = 0; i < ci; i++) {
              const s0 = ((i * gh + ky) * gw + kx) * co;
              const d0 = ((ky * fw + kx) * ci + i) * co;
              for (let o = 0; o < co; o++) acc[d0 + o]! += src[s0 + o]!;
            }
          }
        }
      } finally {
        release(backend, ot);
        releaseView(backend, xv);
        releaseView(backend, fv);
      }
    }
  } finally {
    release(backend, xt, dyt);
  }
  const out = alloc(backend, [fh, fw, ci, co]);
  heap(backend, out).set(acc);
  return out;
}

/**
 * 1x1 stride-1 filter gradient dW = xᵀ·dy as 1x1 convolutions: the wider of x and dy, transposed,
 * gives the "pixels" (each carrying the P = n·H·W positions as channels) and the other, as it lies,
 * is the filter XNNPACK packs, so fewer weights are packed per multiply. Chunked along P like the
 * general case; a P without a usable divisor runs in one call.
 */
function pointwiseFilterGrad(backend: Backend, x: tf.TensorInfo, dy: tf.TensorInfo, ci: number, co: number): tf.TensorInfo {
  const p = x.shape.reduce((a, b) => a * b, 1) / ci;
  const swap = co > ci;
  const [rowsT, pixels, other, cols] = swap ? [dy, co, x, ci] : [x, ci, dy, co];
  let pc = batchChunk(p, cols * 4);
  if (p / pc > 64) pc = p;
  const g = p / pc;
  const t = transposeRaw(backend, reshapeView(rowsT, [g, pc, pixels]), [0, 2, 1]);
  const acc = new Float64Array(pixels * cols);
  try {
    for (let k = 0; k < g; k++) {
      const tv = viewAt(backend, t, k * pixels * pc, [1, 1, pixels, pc]);
      const fv = viewAt(backend, other, k * pc * cols, [1, 1, pc, cols]);
      let o: tf.TensorInfo | undefined;
      try {
        o = convRaw(backend, tv, fv, { pads: [0, 0, 0, 0], strides: [1, 1], dilations: [1, 1] });
        const src = heap(backend, o);
        for (let i = 0; i < acc.length; i++) acc[i]! += src[i]!;
      } finally {
        release(backend, o);
        releaseView(backend, tv);
        releaseView(backend, fv);
      }
    }
  } finally {
    release(backend, t);
  }
  const out = alloc(backend, [1, 1, ci, co]);
  const dst = heap(backend, out);
  if (!swap) dst.set(acc);
  // acc is dWᵀ [co, ci] when swapped.
  else for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) dst[i * co + o] = acc[o * ci + i]!;
  return out;
}
