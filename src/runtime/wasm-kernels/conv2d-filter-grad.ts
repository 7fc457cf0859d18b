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

/**
 * Splits `total` units of `unitBytes` into near-equal [start, count] ranges that each fit the
 * chunk budget (a unit larger than the budget gets a range of its own).
 */
export function chunkRanges(total: number, unitBytes: number): [number, number][] {
  const target = Math.max(1, Math.floor(filterChunkBytes / unitBytes));
  const g = Math.ceil(total / target);
  const base = Math.floor(total / g);
  const extra = total - base * g;
  const out: [number, number][] = [];
  for (let k = 0, start = 0; k < g; k++) {
    const count = base + (k < extra ? 1 : 0);
    out.push([start, count]);
    start += count;
  }
  return out;
}

/**
 * Filter gradient as forward convolutions over transposed tensors, the batch becoming the channel
 * dimension: input xᵀ [inC, H, W, m] and filter dyᵀ [outH, outW, m, outC], dilated by the stride
 * and padded like the forward pass, give [inC, fh', fw', outC], cropped to the filter size
 * (fh' > fh only when the forward pass left rows unused) and transposed to [fh, fw, inC, outC].
 * The batch is split into chunks of m images so that each packed dyᵀ stays in cache; the chunks'
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
  const acc = new Float64Array(fh * fw * ci * co);
  for (const [start, m] of chunkRanges(n, oh * ow * co * 4)) {
    const xv = viewAt(backend, x, start * h * w * ci, [m, h, w, ci]);
    const dv = viewAt(backend, dy, start * oh * ow * co, [m, oh, ow, co]);
    let xt: tf.TensorInfo | undefined;
    let dyt: tf.TensorInfo | undefined;
    let ot: tf.TensorInfo | undefined;
    try {
      xt = transposeRaw(backend, xv, [3, 1, 2, 0]);
      dyt = transposeRaw(backend, dv, [1, 2, 0, 3]);
      ot = convRaw(backend, xt, dyt, { pads: [top, right, bottom, left], strides: [1, 1], dilations: [sh, sw] });
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
      release(backend, xt, dyt, ot);
      releaseView(backend, xv);
      releaseView(backend, dv);
    }
  }
  const out = alloc(backend, [fh, fw, ci, co]);
  heap(backend, out).set(acc);
  return out;
}

/**
 * 1x1 stride-1 filter gradient dW = xᵀ·dy as 1x1 convolutions: the wider of x and dy, transposed,
 * gives the "pixels" (each carrying the P = n·H·W positions as channels) and the other, as it lies,
 * is the filter XNNPACK packs, so fewer weights are packed per multiply. Chunked along P like the
 * general case.
 */
function pointwiseFilterGrad(backend: Backend, x: tf.TensorInfo, dy: tf.TensorInfo, ci: number, co: number): tf.TensorInfo {
  const p = x.shape.reduce((a, b) => a * b, 1) / ci;
  const swap = co > ci;
  const [rowsT, pixels, other, cols] = swap ? [dy, co, x, ci] : [x, ci, dy, co];
  const acc = new Float64Array(pixels * cols);
  for (const [start, m] of chunkRanges(p, cols * 4)) {
    const rv = viewAt(backend, rowsT, start * pixels, [m, pixels]);
    const fv = viewAt(backend, other, start * cols, [1, 1, m, cols]);
    let t: tf.TensorInfo | undefined;
    let o: tf.TensorInfo | undefined;
    try {
      t = transposeRaw(backend, rv, [1, 0]);
      o = convRaw(backend, reshapeView(t, [1, 1, pixels, m]), fv, { pads: [0, 0, 0, 0], strides: [1, 1], dilations: [1, 1] });
      const src = heap(backend, o);
      for (let i = 0; i < acc.length; i++) acc[i]! += src[i]!;
    } finally {
      release(backend, t, o);
      releaseView(backend, rv);
      releaseView(backend, fv);
    }
  }
  const out = alloc(backend, [1, 1, ci, co]);
  const dst = heap(backend, out);
  if (!swap) dst.set(acc);
  // acc is dWᵀ [co, ci] when swapped.
  else for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) dst[i * co + o] = acc[o * ci + i]!;
  return out;
}
