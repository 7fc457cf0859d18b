import * as tf from '@tensorflow/tfjs';
import { type Backend, alloc, heap, release } from './wasm-backend.js';
import { type MaxGradFn, addressOf, simdRoutines } from './simd.js';

type Shape4 = [number, number, number, number];

interface MaxPoolGradAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/**
 * MaxPoolGrad over the wasm heap. Replaces tfjs 4.22's wasm kernel, which returns wrong gradients
 * (only the first row of windows is routed; checked against the cpu backend) and is slow. Routes
 * each dy to the first maximum of its window, as the cpu backend and TensorFlow do; padded
 * positions never win.
 */
export function maxPoolGradKernel(
  args: { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: MaxPoolGradAttrs },
): tf.TensorInfo {
  const { inputs, backend, attrs } = args;
  const dyInfo = inputs['dy']!;
  const input = inputs['input']!;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as Shape4, attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { effectiveFilterHeight: efh, effectiveFilterWidth: efw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const out = alloc(backend, input.shape);
  const dx = heap(backend, out);
  const xs = heap(backend, input);
  const dys = heap(backend, dyInfo);
  dx.fill(0);
  const disjoint = sh >= efh && sw >= efw;
  const simd = c % 4 === 0 && disjoint ? simdRoutines(backend) : null;
  if (simd) {
    simdMaxPoolGrad(backend, simd.maxGrad, input, dyInfo, out, info);
    return out;
  }
  if (dh === 1 && dw === 1 && disjoint && efh * efw > 1) {
    disjointWindows(xs, dys, dx, info);
    return out;
  }
  const best = new Float32Array(c);
  const at = new Int32Array(c);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let first = true;
        for (let ky = 0; ky < efh; ky += dh) {
          const iy = oy * sh - pt + ky;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < efw; kx += dw) {
            const ix = ox * sw - pl + kx;
            if (ix < 0 || ix >= w) continue;
            const off = ((b * h + iy) * w + ix) * c;
            if (first) {
              for (let k = 0; k < c; k++) {
                best[k] = xs[off + k]!;
                at[k] = off + k;
              }
              first = false;
            } else {
              for (let k = 0; k < c; k++) {
                const v = xs[off + k]!;
                if (v > best[k]!) {
                  best[k] = v;
                  at[k] = off + k;
                }
              }
            }
          }
        }
        if (first) continue;
        const dyOff = ((b * oh + oy) * ow + ox) * c;
        for (let k = 0; k < c; k++) dx[at[k]!]! += dys[dyOff + k]!;
      }
    }
  }
  return out;
}

/**
 * Windows that do not overlap (stride ≥ window, the usual 2x2/2 pooling): every input belongs to
 * at most one window, so each channel's winner is written once, without accumulation, and the
 * window taps are scanned with precomputed offsets.
 */
function disjointWindows(xs: Float32Array, dys: Float32Array, dx: Float32Array, info: tf.backend_util.Conv2DInfo): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const taps = new Int32Array(fh * fw);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let t = 0;
        for (let ky = 0; ky < fh; ky++) {
          const iy = oy * sh - pt + ky;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < fw; kx++) {
            const ix = ox * sw - pl + kx;
            if (ix >= 0 && ix < w) taps[t++] = ((b * h + iy) * w + ix) * c;
          }
        }
        if (t === 0) continue;
        const dyOff = ((b * oh + oy) * ow + ox) * c;
        for (let k = 0; k < c; k++) {
          let at = taps[0]! + k;
          let best = xs[at]!;
          for (let i = 1; i < t; i++) {
            const j = taps[i]! + k;
            const v = xs[j]!;
            if (v > best) {
              best = v;
              at = j;
            }
          }
          dx[at] = dys[dyOff + k]!;
        }
      }
    }
  }
}

/**
 * MaxPoolGrad for disjoint windows (stride ≥ window) with the SIMD routine, one call per window:
 * it writes every tap of the window (winner dy, others 0), which is right only when no input is in
 * two windows.
 */
function simdMaxPoolGrad(
  backend: Backend, maxGrad: MaxGradFn, x: tf.TensorInfo, dy: tf.TensorInfo, dxInfo: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { effectiveFilterHeight: efh, effectiveFilterWidth: efw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const maxTaps = Math.ceil(efh / dh) * Math.ceil(efw / dw);
  const scratch = alloc(backend, [maxTaps]);
  try {
    const sp = addressOf(backend, scratch.dataId);
    const xp = addressOf(backend, x.dataId);
    const delta = addressOf(backend, dxInfo.dataId) - xp;
    const yp = addressOf(backend, dy.dataId);
    for (let b = 0; b < n; b++) {
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          const taps = new Int32Array(heap(backend, scratch).buffer, sp, maxTaps);
          let t = 0;
          for (let ky = 0; ky < efh; ky += dh) {
            const iy = oy * sh - pt + ky;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < efw; kx += dw) {
              const ix = ox * sw - pl + kx;
              if (ix >= 0 && ix < w) taps[t++] = xp + ((b * h + iy) * w + ix) * c * 4;
            }
          }
          if (t > 0) maxGrad(sp, t, delta, yp + ((b * oh + oy) * ow + ox) * c * 4, c * 4);
        }
      }
    }
  } finally {
    release(backend, scratch);
  }
}
