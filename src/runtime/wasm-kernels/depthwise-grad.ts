import * as tf from '@tensorflow/tfjs';
import { convForInputGrad } from './conv2d-grad.js';
import { type Backend, alloc, heap, release, reshapeView, sumLastAxisRaw } from './wasm-backend.js';
import { type DotFn, addressOf, simdDot } from './simd.js';

type Shape4 = [number, number, number, number];

interface DepthwiseBackpropAttrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function info(xShape: Shape4, filterShape: Shape4, attrs: DepthwiseBackpropAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape, filterShape, attrs.strides, attrs.dilations ?? 1, attrs.pad, attrs.dimRoundingMode, true, 'channelsLast');
}

/**
 * Input gradient of a depthwise convolution: a depthwise forward convolution of dy (C·M channels)
 * with the spatially flipped filter viewed as [fh, fw, C·M, 1]; with a channel multiplier M > 1
 * the M contributions of each input channel are then summed.
 */
export function depthwiseBackpropInputKernel(
  args: { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: DepthwiseBackpropAttrs & { inputShape: Shape4 } },
): tf.TensorInfo {
  const { inputs, backend, attrs } = args;
  const dy = inputs['dy']!;
  const filter = inputs['filter']!;
  const ci = info(attrs.inputShape, filter.shape as Shape4, attrs);
  const [fh, fw, c, m] = filter.shape as Shape4;
  const flipped = alloc(backend, [fh, fw, c * m, 1]);
  const src = heap(backend, filter);
  const dst = heap(backend, flipped);
  const cm = c * m;
  for (let ky = 0; ky < fh; ky++) {
    for (let kx = 0; kx < fw; kx++) {
      const s = ((fh - 1 - ky) * fw + (fw - 1 - kx)) * cm;
      dst.set(src.subarray(s, s + cm), (ky * fw + kx) * cm);
    }
  }
  let z: tf.TensorInfo | undefined;
  try {
    z = convForInputGrad(backend, dy, flipped, ci, true);
    if (m === 1) {
      const out = z;
      z = undefined;
      return out;
    }
    const [n, h, w] = z.shape as Shape4;
    return sumLastAxisRaw(backend, reshapeView(z, [n, h, w, c, m]));
  } finally {
    release(backend, flipped, z);
  }
}

/**
 * Filter gradient of a depthwise convolution: dW[ky,kx,c,m] = Σ_{n,oy,ox} x[n, oy·s−pt+ky, ox·s−pl+kx, c]
 * · dy[n,oy,ox,c·M+m], accumulated in float64 straight over the wasm heap (channels innermost).
 */
export function depthwiseBackpropFilterKernel(
  args: { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: DepthwiseBackpropAttrs & { filterShape: Shape4 } },
): tf.TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = inputs['x']!;
  const dyInfo = inputs['dy']!;
  const ci = info(x.shape as Shape4, attrs.filterShape, attrs);
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = ci;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = ci;
  const { dilationHeight: dh, dilationWidth: dw } = ci;
  const m = ci.outChannels / c;
  const cm = c * m;
  const pt = ci.padInfo.top;
  const pl = ci.padInfo.left;
  const acc = new Float64Array(fh * fw * cm);
  const dot = m === 1 && c % 4 === 0 ? simdDot(backend) : null;
  if (dot) {
    simdFilterGrad(backend, dot, x, dyInfo, ci, acc);
    const out = alloc(backend, attrs.filterShape);
    heap(backend, out).set(acc);
    return out;
  }
  const xs = heap(backend, x);
  const dys = heap(backend, dyInfo);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ky = 0; ky < fh; ky++) {
        const iy = oy * sh - pt + ky * dh;
        if (iy < 0 || iy >= h) continue;
        for (let ox = 0; ox < ow; ox++) {
          const dyOff = ((b * oh + oy) * ow + ox) * cm;
          for (let kx = 0; kx < fw; kx++) {
            const ix = ox * sw - pl + kx * dw;
            if (ix < 0 || ix >= w) continue;
            const xOff = ((b * h + iy) * w + ix) * c;
            const aOff = (ky * fw + kx) * cm;
            if (m === 1) {
              for (let k = 0; k < c; k++) acc[aOff + k]! += xs[xOff + k]! * dys[dyOff + k]!;
            } else {
              for (let k = 0; k < c; k++) {
                const xv = xs[xOff + k]!;
                for (let j = 0; j < m; j++) acc[aOff + k * m + j]! += xv * dys[dyOff + k * m + j]!;
              }
            }
          }
        }
      }
    }
  }
  const out = alloc(backend, attrs.filterShape);
  heap(backend, out).set(acc);
  return out;
}

/**
 * Depthwise filter gradient (multiplier 1) with the SIMD dot routine: for each image, row and tap,
 * one strided multiply-accumulate over the valid output columns into a float32 per-image scratch,
 * which is added into the float64 total after each image.
 */
function simdFilterGrad(
  backend: Backend, dot: DotFn, x: tf.TensorInfo, dy: tf.TensorInfo, ci: tf.backend_util.Conv2DInfo, acc: Float64Array,
): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = ci;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = ci;
  const { dilationHeight: dh, dilationWidth: dw } = ci;
  const pt = ci.padInfo.top;
  const pl = ci.padInfo.left;
  const scratch = alloc(backend, [fh * fw * c]);
  try {
    const sp = addressOf(backend, scratch.dataId);
    const xp = addressOf(backend, x.dataId);
    const yp = addressOf(backend, dy.dataId);
    const lo: number[] = [];
    const count: number[] = [];
    for (let kx = 0; kx < fw; kx++) {
      const first = Math.max(0, Math.ceil((pl - kx * dw) / sw));
      const last = Math.min(ow - 1, Math.floor((w - 1 + pl - kx * dw) / sw));
      lo.push(first);
      count.push(Math.max(0, last - first + 1));
    }
    for (let b = 0; b < n; b++) {
      heap(backend, scratch).fill(0);
      for (let oy = 0; oy < oh; oy++) {
        for (let ky = 0; ky < fh; ky++) {
          const iy = oy * sh - pt + ky * dh;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < fw; kx++) {
            if (count[kx] === 0) continue;
            const ox = lo[kx]!;
            const ix = ox * sw - pl + kx * dw;
            dot(
              sp + (ky * fw + kx) * c * 4,
              xp + ((b * h + iy) * w + ix) * c * 4, sw * c * 4,
              yp + ((b * oh + oy) * ow + ox) * c * 4, c * 4,
              count[kx]!, c * 4,
            );
          }
        }
      }
      const part = heap(backend, scratch);
      for (let i = 0; i < part.length; i++) acc[i]! += part[i]!;
    }
  } finally {
    release(backend, scratch);
  }
}
