import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/**
 * Thin, typed access to the tfjs wasm backend's own compiled functions (XNNPACK convolutions,
 * transposes) with explicit, possibly asymmetric padding, which the public ops do not expose.
 * Every tensor returned here is a backend-level TensorInfo: the caller disposes it with `release`.
 */
export type Backend = BackendWasm;

type ConvFn = (
  xId: number, batch: number, inH: number, inW: number, filterId: number, fh: number, fw: number,
  padTop: number, padRight: number, padBottom: number, padLeft: number, isSamePad: number,
  dilH: number, dilW: number, strideH: number, strideW: number, inC: number, outC: number, outId: number,
) => void;

interface Compiled {
  conv2d: ConvFn;
  depthwise: ConvFn;
}

const compiled = new WeakMap<Backend, Compiled>();
const CONV_ARGS = new Array<string>(19).fill('number');

function fns(backend: Backend): Compiled {
  let c = compiled.get(backend);
  if (!c) {
    const { cwrap } = backend.wasm as unknown as { cwrap: (name: string, ret: null, args: string[]) => ConvFn };
    c = { conv2d: cwrap('Conv2D', null, CONV_ARGS), depthwise: cwrap('DepthwiseConv2dNative', null, CONV_ARGS) };
    compiled.set(backend, c);
  }
  return c;
}

export interface RawConvParams {
  /** [top, right, bottom, left], each ≥ 0. */
  pads: [number, number, number, number];
  strides: [number, number];
  dilations: [number, number];
}

function id(backend: Backend, t: tf.TensorInfo): number {
  const d = backend.dataIdMap.get(t.dataId);
  if (!d) throw new Error('wasm-kernels: tensor data not on the wasm backend');
  return d.id;
}

/** NHWC convolution through XNNPACK; `depthwise` uses filter [fh, fw, C, M] and outputs C*M channels. */
export function convRaw(
  backend: Backend, x: tf.TensorInfo, filter: tf.TensorInfo, p: RawConvParams, depthwise = false,
): tf.TensorInfo {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const [fh, fw, fc, fo] = filter.shape as [number, number, number, number];
  if (fc !== c) throw new Error(`wasm-kernels: filter expects ${fc} input channels, got ${c}`);
  const [pt, pr, pb, pl] = p.pads;
  const [sh, sw] = p.strides;
  const [dh, dw] = p.dilations;
  const outH = Math.floor((h + pt + pb - ((fh - 1) * dh + 1)) / sh) + 1;
  const outW = Math.floor((w + pl + pr - ((fw - 1) * dw + 1)) / sw) + 1;
  const outC = depthwise ? c * fo : fo;
  const out = backend.makeOutput([n, outH, outW, outC], 'float32');
  const f = depthwise ? fns(backend).depthwise : fns(backend).conv2d;
  f(id(backend, x), n, h, w, id(backend, filter), fh, fw, pt, pr, pb, pl, 0, dh, dw, sh, sw, c, outC, id(backend, out));
  return out;
}

/** Transpose through the backend's own Transpose kernel. */
export function transposeRaw(backend: Backend, x: tf.TensorInfo, perm: number[]): tf.TensorInfo {
  const k = tf.getKernel('Transpose', 'wasm');
  if (!k) throw new Error('wasm-kernels: Transpose kernel missing');
  return k.kernelFunc({ inputs: { x }, backend, attrs: { perm } }) as tf.TensorInfo;
}

/** Sum over the innermost axis through the backend's Sum kernel. */
export function sumLastAxisRaw(backend: Backend, x: tf.TensorInfo): tf.TensorInfo {
  const k = tf.getKernel('Sum', 'wasm');
  if (!k) throw new Error('wasm-kernels: Sum kernel missing');
  return k.kernelFunc({ inputs: { x }, backend, attrs: { axis: [x.shape.length - 1], keepDims: false } }) as tf.TensorInfo;
}

/** A view of the same data with another shape (no copy; do not release it separately). */
export function reshapeView(x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  return { dataId: x.dataId, shape, dtype: x.dtype };
}

/** Live Float32Array over a tensor's wasm memory; re-take it after any allocation (the heap may grow). */
export function heap(backend: Backend, t: tf.TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(t) as Float32Array;
}

export function alloc(backend: Backend, shape: number[]): tf.TensorInfo {
  return backend.makeOutput(shape, 'float32');
}

export function release(backend: Backend, ...ts: (tf.TensorInfo | null | undefined)[]): void {
  for (const t of ts) if (t) backend.disposeData(t.dataId);
}

/**
 * Zero-insert (stride) and pad an NHWC tensor: out[n, top + y*sh, left + x*sw, c] = src[n, y, x, c].
 * Pads may be negative (crop). Used to express strided input gradients as stride-1 convolutions.
 */
export function spreadPad(
  backend: Backend, src: tf.TensorInfo, strides: [number, number], pads: [number, number, number, number],
): tf.TensorInfo {
  const [n, h, w, c] = src.shape as [number, number, number, number];
  const [sh, sw] = strides;
  const [pt, pr, pb, pl] = pads;
  const oh = (h - 1) * sh + 1 + pt + pb;
  const ow = (w - 1) * sw + 1 + pl + pr;
  const out = alloc(backend, [n, oh, ow, c]);
  const o = heap(backend, out);
  const s = heap(backend, src);
  o.fill(0);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < h; y++) {
      const oy = pt + y * sh;
      if (oy < 0 || oy >= oh) continue;
      const srcRow = (b * h + y) * w * c;
      const dstRow = (b * oh + oy) * ow * c;
      if (sw === 1 && pl >= 0 && pl + w <= ow) {
        o.set(s.subarray(srcRow, srcRow + w * c), dstRow + pl * c);
        continue;
      }
      for (let x = 0; x < w; x++) {
        const ox = pl + x * sw;
        if (ox < 0 || ox >= ow) continue;
        o.set(s.subarray(srcRow + x * c, srcRow + (x + 1) * c), dstRow + ox * c);
      }
    }
  }
  return out;
}

/** A tensor over part of another tensor's memory (offset in floats); free it with `releaseView`. */
export function viewAt(backend: Backend, base: tf.TensorInfo, offset: number, shape: number[]): tf.TensorInfo {
  const d = backend.dataIdMap.get(base.dataId);
  if (!d) throw new Error('wasm-kernels: tensor data not on the wasm backend');
  return backend.makeOutput(shape, 'float32', d.memoryOffset + offset * 4);
}

/** Forget a view without freeing the memory it borrows (the C++ side drops cached operators on it). */
export function releaseView(backend: Backend, view: tf.TensorInfo): void {
  const d = backend.dataIdMap.get(view.dataId);
  if (!d) return;
  (backend.wasm as unknown as { tfjs: { disposeData(id: number): void } }).tfjs.disposeData(d.id);
  backend.dataIdMap.delete(view.dataId);
}
