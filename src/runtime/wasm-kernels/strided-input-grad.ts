import * as tf from '@tensorflow/tfjs';
import { type Backend, alloc, convRaw, heap, release } from './wasm-backend.js';

type Shape4 = [number, number, number, number];

/** One output phase along an axis: residue r of (i + pad) mod stride. */
interface Phase {
  r: number;
  /** Filter taps with this residue: k = r + stride·j, j < taps. */
  taps: number;
  /** First and count of q, the phase's output index: i = stride·q + r − pad. */
  first: number;
  count: number;
  padBefore: number;
  padAfter: number;
}

function phases(size: number, outSize: number, filter: number, stride: number, pad: number): Phase[] | null {
  const out: Phase[] = [];
  for (let r = 0; r < stride; r++) {
    const taps = Math.max(0, Math.ceil((filter - r) / stride));
    const first = Math.ceil((pad - r) / stride);
    const last = Math.floor((size - 1 + pad - r) / stride);
    const count = Math.max(0, last - first + 1);
    const padBefore = taps - 1 - first;
    const padAfter = count + taps - 1 - outSize - padBefore;
    if (taps > 0 && count > 0 && (padBefore < 0 || padAfter < 0)) return null;
    out.push({ r, taps, first, count, padBefore, padAfter });
  }
  return out;
}

/**
 * Input gradient of a strided convolution without the zero-inserted dy (which wastes stride²−1
 * of every multiply): dx splits into stride² phases, each a stride-1 forward convolution of dy
 * with the flipped, channel-swapped sub-filter of the taps that reach it, scattered back into dx.
 * Returns null when a phase would need negative padding. (Depthwise convolutions are so cheap
 * that the scatter would cost more than the zeros save; they keep the zero-inserted form.)
 */
export function stridedInputGrad(
  backend: Backend, dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo | null {
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  const py = phases(h, oh, fh, sh, info.padInfo.top);
  const px = phases(w, ow, fw, sw, info.padInfo.left);
  if (!py || !px) return null;
  const [, , fc, fo] = filter.shape as Shape4;
  const dx = alloc(backend, [n, h, w, c]);
  heap(backend, dx).fill(0);
  try {
    for (const y of py) {
      for (const x of px) {
        if (y.taps === 0 || x.taps === 0 || y.count === 0 || x.count === 0) continue;
        const sub = subFilter(backend, filter, y, x, sh, sw, [y.taps, x.taps, fo, fc]);
        let part: tf.TensorInfo | undefined;
        try {
          part = convRaw(backend, dy, sub, {
            pads: [y.padBefore, x.padAfter, y.padAfter, x.padBefore], strides: [1, 1], dilations: [1, 1],
          });
          scatter(heap(backend, part), heap(backend, dx), info, y, x);
        } finally {
          release(backend, sub, part);
        }
      }
    }
  } catch (e) {
    release(backend, dx);
    throw e;
  }
  return dx;
}

/** Sub-filter of the taps (ry + sh·j, rx + sw·i), flipped: [fh, fw, inC, outC] → [ty, tx, outC, inC]. */
function subFilter(
  backend: Backend, filter: tf.TensorInfo, y: Phase, x: Phase, sh: number, sw: number, shape: Shape4,
): tf.TensorInfo {
  const [, fw, a, b] = filter.shape as Shape4;
  const out = alloc(backend, shape);
  const src = heap(backend, filter);
  const dst = heap(backend, out);
  for (let u = 0; u < y.taps; u++) {
    const ky = y.r + sh * (y.taps - 1 - u);
    for (let v = 0; v < x.taps; v++) {
      const kx = x.r + sw * (x.taps - 1 - v);
      const s = (ky * fw + kx) * a * b;
      const d = (u * x.taps + v) * a * b;
      for (let i = 0; i < a; i++) for (let o = 0; o < b; o++) dst[d + o * a + i] = src[s + i * b + o]!;
    }
  }
  return out;
}

/** dx[b, sh·q + ry − pt, sw·p + rx − pl, :] = part[b, q − first, p − first, :]. */
function scatter(part: Float32Array, dx: Float32Array, info: tf.backend_util.Conv2DInfo, y: Phase, x: Phase): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, strideHeight: sh, strideWidth: sw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  for (let b = 0; b < n; b++) {
    for (let q = 0; q < y.count; q++) {
      const iy = sh * (q + y.first) + y.r - pt;
      const rowSrc = (b * y.count + q) * x.count * c;
      const rowDst = (b * h + iy) * w * c;
      for (let p = 0; p < x.count; p++) {
        const ix = sw * (p + x.first) + x.r - pl;
        const s = rowSrc + p * c;
        dx.set(part.subarray(s, s + c), rowDst + ix * c);
      }
    }
  }
}
