import * as tf from '@tensorflow/tfjs';
import { type Backend, alloc, heap, release } from './wasm-backend.js';
import { type DotFn, addressOf, simdDot } from './simd.js';

interface ReduceAttrs {
  axis: number | number[];
  keepDims: boolean;
}

type KernelArgs<A> = { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: A };

/**
 * [outer, reduced, inner] view of a reduction over one contiguous run of axes (e.g. [0,1,2] for
 * bias and batch-norm gradients, [1,2] for global average pooling), or null for other patterns.
 */
function plan(shape: number[], axis: number | number[]): { outer: number; red: number; inner: number; axes: number[] } | null {
  const axes = [...new Set(tf.util.parseAxisParam(axis, shape))].sort((a, b) => a - b);
  if (axes.length === 0) return null;
  for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[i - 1]! + 1) return null;
  const first = axes[0]!;
  const last = axes[axes.length - 1]!;
  const prod = (from: number, to: number): number => shape.slice(from, to).reduce((p, q) => p * q, 1);
  const inner = prod(last + 1, shape.length);
  // Innermost reductions are already fast in the wasm backend's own kernel.
  if (inner < 4) return null;
  return { outer: prod(0, first), red: prod(first, last + 1), inner, axes };
}

function reduceOuter(backend: Backend, x: tf.TensorInfo, attrs: ReduceAttrs, mean: boolean): tf.TensorInfo | null {
  if (x.dtype !== 'float32') return null;
  const p = plan(x.shape, attrs.axis);
  if (!p) return null;
  const { outer, red, inner, axes } = p;
  const outShape = attrs.keepDims
    ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : x.shape.filter((_, i) => !axes.includes(i));
  const acc = new Float64Array(inner);
  const out = alloc(backend, outShape);
  const dot = inner % 4 === 0 ? simdDot(backend) : null;
  if (dot) {
    simdColumnSums(backend, dot, x, out, p, mean ? 1 / red : 1);
    return out;
  }
  const src = heap(backend, x);
  const dst = heap(backend, out);
  const scale = mean ? 1 / red : 1;
  for (let o = 0; o < outer; o++) {
    acc.fill(0);
    let base = o * red * inner;
    for (let r = 0; r < red; r++, base += inner) {
      for (let i = 0; i < inner; i++) acc[i]! += src[base + i]!;
    }
    const d = o * inner;
    for (let i = 0; i < inner; i++) dst[d + i] = acc[i]! * scale;
  }
  return out;
}

/** Rows summed in float32 by the SIMD routine before each float64 accumulation. */
const ROW_BLOCK = 1024;

function simdColumnSums(
  backend: Backend, dot: DotFn, x: tf.TensorInfo, out: tf.TensorInfo,
  p: { outer: number; red: number; inner: number }, scale: number,
): void {
  const { outer, red, inner } = p;
  const ones = alloc(backend, [inner]);
  const scratch = alloc(backend, [inner]);
  try {
    heap(backend, ones).fill(1);
    const op = addressOf(backend, ones.dataId);
    const sp = addressOf(backend, scratch.dataId);
    const xp = addressOf(backend, x.dataId);
    const acc = new Float64Array(inner);
    for (let o = 0; o < outer; o++) {
      acc.fill(0);
      for (let r0 = 0; r0 < red; r0 += ROW_BLOCK) {
        const rows = Math.min(ROW_BLOCK, red - r0);
        const part = heap(backend, scratch);
        part.fill(0);
        dot(sp, xp + (o * red + r0) * inner * 4, inner * 4, op, 0, rows, inner * 4);
        for (let i = 0; i < inner; i++) acc[i]! += part[i]!;
      }
      const dst = heap(backend, out);
      for (let i = 0; i < inner; i++) dst[o * inner + i] = acc[i]! * scale;
    }
  } finally {
    release(backend, ones, scratch);
  }
}

/**
 * Sum/Mean over leading or middle axes without the transpose the wasm backend's kernels make
 * (they move reduced axes innermost first, a full copy of e.g. every bias gradient's dy).
 */
export function makeReduceKernel(mean: boolean, original: tf.KernelFunc | undefined) {
  return (args: KernelArgs<ReduceAttrs>): tf.TensorInfo | tf.TensorInfo[] => {
    const fast = reduceOuter(args.backend, args.inputs['x']!, args.attrs, mean);
    if (fast) return fast;
    if (!original) throw new Error(`wasm-kernels: no fallback for ${mean ? 'Mean' : 'Sum'}`);
    return original(args as unknown as Parameters<tf.KernelFunc>[0]);
  };
}

/** Tile by copying contiguous rows (and doubling copies for repeats), instead of per-element indexing. */
export function makeTileKernel(original: tf.KernelFunc | undefined) {
  return (args: KernelArgs<{ reps: number[] }>): tf.TensorInfo | tf.TensorInfo[] => {
    const { backend, inputs, attrs } = args;
    const x = inputs['x']!;
    const reps = attrs.reps;
    if (x.dtype !== 'float32' || x.shape.length === 0 || reps.length !== x.shape.length || x.shape.includes(0)) {
      if (!original) throw new Error('wasm-kernels: no fallback for Tile');
      return original(args as unknown as Parameters<tf.KernelFunc>[0]);
    }
    const shape = x.shape;
    const rank = shape.length;
    const outShape = shape.map((d, i) => d * reps[i]!);
    const out = alloc(backend, outShape);
    const src = heap(backend, x);
    const dst = heap(backend, out);
    // Build from the innermost axis outwards: after step k, each block of the output's trailing
    // (rank - k) dims is complete for every source index of the leading k dims.
    // Start: copy source rows, repeated along the last axis.
    const last = shape[rank - 1]!;
    const rowsIn = src.length / last;
    const outLast = last * reps[rank - 1]!;
    // Stage buffer layout: [source leading index][tiled trailing block], blocks grow as we go.
    let block = outLast;
    let stage = new Float32Array(rowsIn * block);
    for (let r = 0; r < rowsIn; r++) {
      const row = src.subarray(r * last, (r + 1) * last);
      const base = r * block;
      stage.set(row, base);
      for (let filled = last; filled < block; filled *= 2) {
        stage.copyWithin(base + filled, base, base + Math.min(filled, block - filled));
      }
    }
    let groups = rowsIn;
    for (let axis = rank - 2; axis >= 0; axis--) {
      const d = shape[axis]!;
      const rep = reps[axis]!;
      groups /= d;
      const next = new Float32Array(groups * d * rep * block);
      const nb = d * rep * block;
      for (let g = 0; g < groups; g++) {
        const chunk = stage.subarray(g * d * block, (g + 1) * d * block);
        const base = g * nb;
        next.set(chunk, base);
        for (let filled = d * block; filled < nb; filled *= 2) {
          next.copyWithin(base + filled, base, base + Math.min(filled, nb - filled));
        }
      }
      stage = next;
      block = nb;
    }
    dst.set(stage);
    return out;
  };
}
