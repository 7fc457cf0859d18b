import type { Backend } from './wasm-backend.js';

/**
 * A tiny hand-assembled WebAssembly SIMD routine that works directly on the tfjs wasm backend's
 * memory (imported, so no copies), for the inner loops JavaScript runs slowly: strided
 * multiply-accumulate over channel vectors.
 *
 *   dot(acc, x, xStride, y, yStride, count, cBytes): for every 4-float block b of the first
 *   cBytes/4 channels, acc[b] += Σ_{j<count} x[j·xStride + b] · y[j·yStride + b]
 *
 * Pointers and strides are in bytes; cBytes must be a multiple of 16. A y stride of 0 over a
 * vector of ones makes it a column sum.
 */
export type DotFn = (acc: number, x: number, xStride: number, y: number, yStride: number, count: number, cBytes: number) => void;

// prettier-ignore
const CODE = [
  0x02, 0x40, 0x03, 0x40, // block, loop (over 4-channel blocks)
  0x20, 0x07, 0x20, 0x06, 0x4f, 0x0d, 0x01, // if cb >= cBytes break
  0x20, 0x00, 0x20, 0x07, 0x6a, 0xfd, 0x00, 0x02, 0x00, 0x21, 0x0b, // s = load(acc + cb)
  0x20, 0x01, 0x20, 0x07, 0x6a, 0x21, 0x09, // px = x + cb
  0x20, 0x03, 0x20, 0x07, 0x6a, 0x21, 0x0a, // py = y + cb
  0x20, 0x05, 0x21, 0x08, // j = count
  0x02, 0x40, 0x03, 0x40, // block, loop (over j)
  0x20, 0x08, 0x45, 0x0d, 0x01, // if j == 0 break
  0x20, 0x0b, 0x20, 0x09, 0xfd, 0x00, 0x02, 0x00, 0x20, 0x0a, 0xfd, 0x00, 0x02, 0x00, // s, load px, load py
  0xfd, 0xe6, 0x01, 0xfd, 0xe4, 0x01, 0x21, 0x0b, // s = s + px*py
  0x20, 0x09, 0x20, 0x02, 0x6a, 0x21, 0x09, // px += xStride
  0x20, 0x0a, 0x20, 0x04, 0x6a, 0x21, 0x0a, // py += yStride
  0x20, 0x08, 0x41, 0x01, 0x6b, 0x21, 0x08, // j -= 1
  0x0c, 0x00, 0x0b, 0x0b, // br loop; end; end
  0x20, 0x00, 0x20, 0x07, 0x6a, 0x20, 0x0b, 0xfd, 0x0b, 0x02, 0x00, // store(acc + cb, s)
  0x20, 0x07, 0x41, 0x10, 0x6a, 0x21, 0x07, // cb += 16
  0x0c, 0x00, 0x0b, 0x0b, // br loop; end; end
  0x0b, // end function
];

function section(id: number, body: number[]): number[] {
  return [id, ...leb(body.length), ...body];
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

function name(s: string): number[] {
  return [...leb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
}

function moduleBytes(): Uint8Array {
  const locals = [0x02, 0x04, 0x7f, 0x01, 0x7b]; // 4 × i32 (cb, j, px, py), 1 × v128 (s)
  const body = [...locals, ...CODE];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x01, 0x60, 0x07, ...new Array<number>(7).fill(0x7f), 0x00]),
    ...section(2, [0x01, ...name('env'), ...name('memory'), 0x02, 0x00, 0x01]),
    ...section(3, [0x01, 0x00]),
    ...section(7, [0x01, ...name('dot'), 0x00, 0x00]),
    ...section(10, [0x01, ...leb(body.length), ...body]),
  ]);
}

interface WebAssemblyApi {
  Memory: abstract new (...args: never[]) => object;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const WA = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

const cache = new WeakMap<Backend, DotFn | null>();

/** The SIMD dot routine bound to this backend's memory, or null when SIMD or the memory is unavailable. */
export function simdDot(backend: Backend): DotFn | null {
  if (cache.has(backend)) return cache.get(backend)!;
  let fn: DotFn | null = null;
  try {
    const memory = (backend.wasm as unknown as { asm?: { memory?: unknown } }).asm?.memory;
    if (memory instanceof WA.Memory) {
      const instance = new WA.Instance(new WA.Module(moduleBytes()), { env: { memory } });
      fn = instance.exports['dot'] as DotFn;
    }
  } catch {
    fn = null;
  }
  cache.set(backend, fn);
  return fn;
}

/** Byte address of a tensor's data in the wasm memory. */
export function addressOf(backend: Backend, dataId: object): number {
  const d = backend.dataIdMap.get(dataId);
  if (!d) throw new Error('wasm-kernels: tensor data not on the wasm backend');
  return d.memoryOffset;
}
