import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/runtime/backend.js';
import { WASM_TRAINING_KERNELS, registerWasmTrainingKernels, setFilterChunkBytes, setIm2colChunkBytes } from '../src/runtime/wasm-kernels/index.js';
import { chunkRanges } from '../src/runtime/wasm-kernels/conv2d-filter-grad.js';
import { simdDot } from '../src/runtime/wasm-kernels/simd.js';
import { stridedInputGrad } from '../src/runtime/wasm-kernels/strided-input-grad.js';
import { createRng, normal } from '../src/core/random.js';
import { relErr } from './helpers/rel-err.js';

// Gradient checks of the wasm training kernels against the cpu backend.
// Relative error = max|wasm − cpu| / max(max|cpu|, 1e-6), required ≤ 1e-4.
const TOL = 1e-4;

function randn(n: number, seed: number): number[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => normal(rng));
}

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
type Shape4 = [number, number, number, number];

interface Case {
  x: Shape4;
  filter: Shape4;
  strides: [number, number];
  pad: Pad;
}

/** dx and dfilter of sum(conv(x, f) * r) with a random r, so dy = r exactly on both backends. */
async function grads(backend: string, c: Case, depthwise: boolean): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const op = (a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D =>
    depthwise
      ? tf.depthwiseConv2d(a, b, c.strides, c.pad as 'same' | 'valid')
      : tf.conv2d(a, b, c.strides, c.pad);
  return tf.tidy(() => {
    const x = tf.tensor4d(randn(c.x.reduce((p, q) => p * q), 1), c.x);
    const f = tf.tensor4d(randn(c.filter.reduce((p, q) => p * q), 2), c.filter);
    const y = op(x, f);
    const r = tf.tensor(randn(y.size, 3), y.shape);
    const [dx, df] = tf.grads((a, b) => op(a as tf.Tensor4D, b as tf.Tensor4D).mul(r).sum())([x, f]);
    return [dx!.dataSync() as Float32Array, df!.dataSync() as Float32Array];
  });
}

/** Tensor data held by the wasm backend, whichever backend is active. */
function wasmDataIds(): number {
  return tf.findBackend('wasm')!.numDataIds();
}

async function check(c: Case, depthwise: boolean): Promise<void> {
  const [cdx, cdf] = await grads('cpu', c, depthwise);
  // Backend-level leak check: kernels allocate raw TensorInfos that tf.memory() would not see.
  const before = wasmDataIds();
  const [wdx, wdf] = await grads('wasm', c, depthwise);
  expect(wasmDataIds()).toBe(before);
  expect(relErr(wdx!, cdx!)).toBeLessThanOrEqual(TOL);
  expect(relErr(wdf!, cdf!)).toBeLessThanOrEqual(TOL);
}

const CONV_CASES: Case[] = [
  { x: [1, 7, 9, 3], filter: [3, 3, 3, 5], strides: [1, 1], pad: 'same' },
  { x: [2, 7, 9, 3], filter: [3, 3, 3, 5], strides: [2, 2], pad: 'same' },
  { x: [2, 7, 9, 4], filter: [3, 3, 4, 6], strides: [2, 2], pad: 'valid' },
  { x: [3, 9, 7, 4], filter: [5, 5, 4, 6], strides: [1, 1], pad: 'same' },
  { x: [2, 8, 10, 4], filter: [5, 5, 4, 3], strides: [2, 2], pad: 'valid' },
  { x: [2, 8, 10, 4], filter: [1, 1, 4, 6], strides: [2, 2], pad: 'same' },
  { x: [1, 8, 8, 3], filter: [1, 1, 3, 4], strides: [1, 1], pad: 'valid' },
  { x: [3, 7, 9, 5], filter: [1, 1, 5, 4], strides: [1, 1], pad: 'same' },
  { x: [3, 7, 9, 4], filter: [1, 1, 4, 7], strides: [1, 1], pad: 'valid' },
  { x: [2, 9, 7, 2], filter: [3, 5, 2, 3], strides: [1, 1], pad: 'valid' },
  { x: [2, 8, 9, 2], filter: [3, 5, 2, 8], strides: [1, 1], pad: 'valid' },
  { x: [2, 8, 9, 2], filter: [5, 3, 2, 8], strides: [1, 1], pad: 'same' },
  { x: [2, 7, 9, 3], filter: [3, 3, 3, 4], strides: [2, 1], pad: 'same' },
  { x: [2, 6, 7, 3], filter: [3, 3, 3, 2], strides: [1, 2], pad: [[0, 0], [3, 0], [0, 2], [0, 0]] },
  // Stride 1, output the input's size (the im2col filter-gradient path): asymmetric 'same' pads
  // of even kernels, and explicit pads that shift the window off-centre.
  { x: [2, 7, 9, 3], filter: [2, 2, 3, 4], strides: [1, 1], pad: 'same' },
  { x: [2, 6, 5, 2], filter: [4, 4, 2, 3], strides: [1, 1], pad: 'same' },
  { x: [2, 6, 7, 3], filter: [3, 3, 3, 2], strides: [1, 1], pad: [[0, 0], [2, 0], [0, 2], [0, 0]] },
  { x: [1, 4, 3, 2], filter: [5, 5, 2, 3], strides: [1, 1], pad: 'same' },
];

const DEPTHWISE_CASES: Case[] = [
  { x: [1, 7, 9, 3], filter: [3, 3, 3, 1], strides: [1, 1], pad: 'same' },
  { x: [2, 7, 9, 3], filter: [3, 3, 3, 2], strides: [1, 1], pad: 'same' },
  { x: [2, 7, 9, 4], filter: [3, 3, 4, 1], strides: [2, 2], pad: 'same' },
  { x: [3, 9, 7, 2], filter: [3, 3, 2, 3], strides: [2, 2], pad: 'valid' },
  { x: [2, 8, 10, 3], filter: [5, 5, 3, 2], strides: [1, 1], pad: 'valid' },
  { x: [2, 8, 10, 3], filter: [5, 5, 3, 1], strides: [2, 2], pad: 'same' },
  { x: [1, 8, 8, 4], filter: [1, 1, 4, 2], strides: [2, 2], pad: 'valid' },
  { x: [2, 9, 7, 3], filter: [3, 3, 3, 2], strides: [2, 1], pad: 'same' },
];

interface PoolCase {
  x: Shape4;
  size: number;
  stride: number;
  pad: 'same' | 'valid';
}

const POOL_CASES: PoolCase[] = [
  { x: [1, 8, 8, 3], size: 2, stride: 2, pad: 'valid' },
  { x: [2, 9, 7, 5], size: 2, stride: 2, pad: 'valid' },
  { x: [2, 9, 7, 5], size: 2, stride: 2, pad: 'same' },
  { x: [2, 9, 7, 3], size: 3, stride: 2, pad: 'same' },
  { x: [3, 7, 9, 2], size: 3, stride: 1, pad: 'valid' },
  { x: [2, 9, 7, 8], size: 2, stride: 2, pad: 'valid' },
  { x: [2, 9, 7, 4], size: 2, stride: 2, pad: 'same' },
  { x: [1, 8, 8, 4], size: 3, stride: 3, pad: 'valid' },
  { x: [2, 8, 6, 8], size: 3, stride: 2, pad: 'same' },
];

async function poolGrad(backend: string, c: PoolCase): Promise<Float32Array> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    // Rounded values so that windows hold ties (as after a ReLU): the first maximum must win.
    const x = tf.tensor4d(randn(c.x.reduce((p, q) => p * q), 4).map((v) => Math.max(0, Math.round(v))), c.x);
    const op = (a: tf.Tensor4D): tf.Tensor4D => tf.maxPool(a, c.size, c.stride, c.pad);
    const r = tf.tensor(randn(op(x).size, 5), op(x).shape);
    return tf.grad((a) => op(a as tf.Tensor4D).mul(r).sum())(x).dataSync() as Float32Array;
  });
}

const label = (c: Case): string =>
  `x${c.x.join('x')} f${c.filter.join('x')} s${c.strides.join(',')} ${typeof c.pad === 'string' ? c.pad : 'explicit'}`;

describe('wasm training kernels', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('registers every kernel on the wasm backend, idempotently', () => {
    registerWasmTrainingKernels();
    for (const k of WASM_TRAINING_KERNELS) expect(tf.getKernel(k, 'wasm'), k).toBeDefined();
  });

  it('has the SIMD helper bound to the backend memory when wasm SIMD is on', async () => {
    await tf.setBackend('wasm');
    const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    expect(simdDot(tf.backend() as unknown as Parameters<typeof simdDot>[0]) !== null).toBe(simd);
  });

  it('takes the phase-split path (no zero-inserted dy) for every strided Conv2D case above', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as unknown as Parameters<typeof stridedInputGrad>[0];
    const strided = CONV_CASES.filter((c) => (c.strides[0] > 1 || c.strides[1] > 1) && typeof c.pad === 'string');
    expect(strided.length).toBeGreaterThan(4);
    for (const c of strided) {
      const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad as 'same' | 'valid');
      const dy = tf.zeros(info.outShape);
      const f = tf.zeros(c.filter);
      const dx = stridedInputGrad(backend, dy, f, info);
      tf.dispose([dy, f]);
      expect(dx, label(c)).not.toBeNull();
      expect(dx!.shape).toEqual(c.x);
      backend.disposeData(dx!.dataId);
    }
  });

  it.each(CONV_CASES.map((c) => [label(c), c] as const))('Conv2D grads match cpu: %s', async (_l, c) => {
    await check(c, false);
  });

  it.each(DEPTHWISE_CASES.map((c) => [label(c), c] as const))('DepthwiseConv2D grads match cpu: %s', async (_l, c) => {
    await check(c, true);
  });

  it.each(POOL_CASES.map((c) => [`x${c.x.join('x')} ${c.size}/${c.stride} ${c.pad}`, c] as const))(
    'MaxPool grad matches cpu: %s', async (_l, c) => {
      const ref = await poolGrad('cpu', c);
      const before = wasmDataIds();
      const got = await poolGrad('wasm', c);
      expect(wasmDataIds()).toBe(before);
      expect(relErr(got, ref)).toBeLessThanOrEqual(TOL);
    });

  it.each([[[3, 5, 4, 6]], [[3, 5, 4, 8]], [[2, 40, 30, 8]]] as [Shape4][])('Sum, Mean and Tile replacements match cpu: %j', async (shape) => {
    const xs = randn(shape.reduce((p, q) => p * q), 8);
    const run = async (backend: string): Promise<{ shape: number[]; data: Float32Array }[]> => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const x = tf.tensor4d(xs, shape);
        const outs: tf.Tensor[] = [];
        for (const axis of [[0, 1, 2], [1, 2], [0], [3], [2, 3], [0, 2], [0, 1, 2, 3]]) {
          outs.push(tf.sum(x, axis), tf.mean(x, axis), tf.sum(x, axis, true));
        }
        outs.push(tf.tile(x, [2, 1, 3, 1]), tf.tile(x, [1, 1, 1, 2]), tf.tile(x.slice([0, 0, 0, 0], [1, 1, 1, 6]), [3, 5, 4, 1]));
        outs.push(x.clone(), x.cast('float32'), x.cast('int32'));
        return outs.map((t) => ({ shape: t.shape, data: t.dataSync() as Float32Array }));
      });
    };
    const ref = await run('cpu');
    const got = await run('wasm');
    expect(got.length).toBe(ref.length);
    ref.forEach((r, i) => {
      expect(got[i]!.shape, `output ${i}`).toEqual(r.shape);
      expect(relErr(got[i]!.data, r.data), `output ${i}`).toBeLessThanOrEqual(TOL);
    });
  });

  it('splits the filter gradient into cache-sized chunks, ragged when the batch does not divide', async () => {
    const old = setFilterChunkBytes(1000);
    try {
      expect(chunkRanges(64, 250)).toEqual(Array.from({ length: 16 }, (_, k) => [4 * k, 4]));
      expect(chunkRanges(6, 250)).toEqual([[0, 3], [3, 3]]);
      expect(chunkRanges(5, 250)).toEqual([[0, 3], [3, 2]]);
      expect(chunkRanges(3, 5000)).toEqual([[0, 1], [1, 1], [2, 1]]);
      // 6 images of dy 4x5x3 floats (240 B) → 2 chunks of 3; 5 images of 6x5x2 (240 B) → 3 + 2.
      await check({ x: [6, 7, 9, 2], filter: [3, 3, 2, 3], strides: [2, 2], pad: 'same' }, false);
      await check({ x: [5, 8, 7, 3], filter: [3, 3, 3, 2], strides: [1, 1], pad: 'valid' }, false);
      // 1x1 stride 1: chunks along the n·H·W = 120 positions, 12 B each → 2 chunks of 60.
      await check({ x: [4, 6, 5, 3], filter: [1, 1, 3, 6], strides: [1, 1], pad: 'same' }, false);
      await check({ x: [4, 6, 5, 6], filter: [1, 1, 6, 3], strides: [1, 1], pad: 'same' }, false);
    } finally {
      setFilterChunkBytes(old);
    }
    const oldIm2col = setIm2colChunkBytes(2000);
    try {
      // im2col: 7 images of 5x5 positions, 3·3·2 patch rows + 2 channels, 4 B each = 2000 B → 7 chunks of 1.
      await check({ x: [7, 5, 5, 2], filter: [3, 3, 2, 4], strides: [1, 1], pad: 'same' }, false);
      setIm2colChunkBytes(4500);
      // 2 images per chunk: 2, 2, 1.
      await check({ x: [5, 5, 5, 2], filter: [3, 3, 2, 4], strides: [1, 1], pad: 'same' }, false);
    } finally {
      setIm2colChunkBytes(oldIm2col);
    }
  });

  it('gradient of a realistic layer (batch 8, 16x16x32 → 64, same) matches cpu', async () => {
    await check({ x: [8, 16, 16, 32], filter: [3, 3, 32, 64], strides: [1, 1], pad: 'same' }, false);
    await check({ x: [8, 16, 16, 32], filter: [3, 3, 32, 1], strides: [1, 1], pad: 'same' }, true);
  });
});
