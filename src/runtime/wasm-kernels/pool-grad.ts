import * as tf from '@tensorflow/tfjs';
import { type Backend, alloc, heap } from './wasm-backend.js';

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
