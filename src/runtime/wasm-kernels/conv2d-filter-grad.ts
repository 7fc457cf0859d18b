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
  return chunkRangesOf(total, unitBytes, filterChunkBytes);
}

function chunkRangesOf(total: number, unitBytes: number, budget: number): [number, number][] {
  const target = Math.max(1, Math.floor(budget / unitBytes));
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
  if (sh === 1 && sw === 1 && oh === h && ow === w) {
    return im2colFilterGrad(backend, x, dy, { n, h, w, ci, co, fh, fw, top, left });
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

/** Images per im2col chunk: patches of about this many bytes (the GEMM's streamed input). */
let im2colChunkBytes = 8 << 20;

/** Tunes the im2col chunk; returns the old value. */
export function setIm2colChunkBytes(bytes: number): number {
  const old = im2colChunkBytes;
  im2colChunkBytes = Math.max(1, Math.floor(bytes));
  return old;
}

interface Im2colGeometry {
  n: number; h: number; w: number; ci: number; co: number; fh: number; fw: number; top: number; left: number;
}

/**
 * Filter gradient of a stride-1 convolution whose output has the input's size ('same'), as one
 * long-K GEMM per chunk of images: dW[(ky,kx,i), o] = Σ_p patch[(ky,kx,i), p] · dy[p, o], run as a
 * 1x1 XNNPACK convolution whose "pixels" are the fh·fw·inC patch rows (each carrying the chunk's P
 * positions as channels) and whose filter is dy exactly as it lies in memory. The patch rows are
 * built from a channel-major copy of x by shifting whole image planes (one memcpy per plane) and
 * zeroing the rows and columns that fall in the padding. (For 1x1 kernels pointwiseFilterGrad is
 * faster: with few patch rows the GEMM is bound by streaming the packed dy.)
 */
function im2colFilterGrad(backend: Backend, x: tf.TensorInfo, dy: tf.TensorInfo, g: Im2colGeometry): tf.TensorInfo {
  const { n, h, w, ci, co, fh, fw, top, left } = g;
  const hw = h * w;
  const rowsK = fh * fw * ci;
  const acc = new Float64Array(rowsK * co);
  const perImage = hw * (rowsK + ci) * 4;
  for (const [start, m] of chunkRangesOf(n, perImage, im2colChunkBytes)) {
    const p = m * hw;
    const dv = viewAt(backend, dy, start * hw * co, [1, 1, p, co]);
    let xt: tf.TensorInfo | undefined;
    let patches: tf.TensorInfo | undefined;
    let o: tf.TensorInfo | undefined;
    try {
      xt = alloc(backend, [1, 1, ci, p]);
      patches = alloc(backend, [1, 1, rowsK, p]);
      // Views are taken after the allocations: growing the wasm heap detaches older ones.
      const src = heap(backend, x).subarray(start * hw * ci, (start + m) * hw * ci);
      const xtv = heap(backend, xt);
      transposeBlocked(src, xtv, p, ci);
      shiftPlanes(xtv, heap(backend, patches), { m, h, w, ci, fh, fw, top, left });
      o = convRaw(backend, patches, dv, { pads: [0, 0, 0, 0], strides: [1, 1], dilations: [1, 1] });
      const out = heap(backend, o);
      for (let i = 0; i < acc.length; i++) acc[i]! += out[i]!;
    } finally {
      release(backend, xt, patches, o);
      releaseView(backend, dv);
    }
  }
  const out = alloc(backend, [fh, fw, ci, co]);
  heap(backend, out).set(acc);
  return out;
}

/** dst[c·rows + r] = src[r·cols + c], in 8x8 blocks so both sides stay in cache. */
export function transposeBlocked(src: Float32Array, dst: Float32Array, rows: number, cols: number): void {
  const b = 8;
  for (let r0 = 0; r0 < rows; r0 += b) {
    const r1 = Math.min(rows, r0 + b);
    for (let c0 = 0; c0 < cols; c0 += b) {
      const c1 = Math.min(cols, c0 + b);
      for (let r = r0; r < r1; r++) {
        const s = r * cols;
        for (let c = c0; c < c1; c++) dst[c * rows + r] = src[s + c]!;
      }
    }
  }
}

/**
 * Patch rows from channel-major x ([ci][m][h][w]): row (ky,kx,i) holds, at output position
 * (img, oy, ox), x[img, oy+ky-top, ox+kx-left, i], or 0 in the padding.
 */
function shiftPlanes(
  xt: Float32Array, dst: Float32Array, g: { m: number; h: number; w: number; ci: number; fh: number; fw: number; top: number; left: number },
): void {
  const { m, h, w, ci, fh, fw, top, left } = g;
  const hw = h * w;
  const p = m * hw;
  for (let ky = 0; ky < fh; ky++) {
    const dyy = ky - top;
    // Output rows whose input row is outside the image: [0, y0) and [y1, h).
    const y0 = Math.min(h, Math.max(0, -dyy));
    const y1 = Math.max(y0, Math.min(h, h - dyy));
    for (let kx = 0; kx < fw; kx++) {
      const dxx = kx - left;
      const x0 = Math.min(w, Math.max(0, -dxx));
      const x1 = Math.max(x0, Math.min(w, w - dxx));
      const d = dyy * w + dxx;
      const q0 = Math.max(0, -d);
      const q1 = Math.min(hw, hw - d);
      for (let i = 0; i < ci; i++) {
        const rowBase = ((ky * fw + kx) * ci + i) * p;
        for (let img = 0; img < m; img++) {
          const s = i * p + img * hw;
          const t = rowBase + img * hw;
          if (q1 > q0) dst.set(xt.subarray(s + q0 + d, s + q1 + d), t + q0);
          dst.fill(0, t, t + Math.max(q0, y0 * w));
          dst.fill(0, t + Math.min(q1, y1 * w), t + hw);
          if (x0 > 0 || x1 < w) {
            for (let oy = y0; oy < y1; oy++) {
              const r = t + oy * w;
              for (let ox = 0; ox < x0; ox++) dst[r + ox] = 0;
              for (let ox = x1; ox < w; ox++) dst[r + ox] = 0;
            }
          }
        }
      }
    }
  }
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
