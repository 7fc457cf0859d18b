import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { PNG } from 'pngjs';
import * as jpeg from 'jpeg-js';
import type { ImageSet } from '../../src/data/types.js';

export function tmpDir(prefix = 'edgekt-data-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** IDX bytes (unsigned-byte type) for the given dims and payload. */
export function idxBytes(dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

/**
 * n images of h×w where every pixel of image i equals (i * 7 + label) % 256 and label i % classes:
 * tests can recompute any sample's value from its label and position.
 */
export function syntheticIdx(n: number, h: number, w: number, classes: number, offset = 0): { images: Uint8Array; labels: Uint8Array } {
  const images = new Uint8Array(n * h * w);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = (i + offset) % classes;
    images.fill(((i + offset) * 7) % 256, i * h * w, (i + 1) * h * w);
  }
  return { images, labels };
}

export function writeIdxPair(dir: string, prefix: string, n: number, opts: { h?: number; w?: number; classes?: number; gz?: boolean; offset?: number } = {}): void {
  const { h = 4, w = 5, classes = 3, gz = false, offset = 0 } = opts;
  const { images, labels } = syntheticIdx(n, h, w, classes, offset);
  const ext = gz ? '.gz' : '';
  const enc = (b: Buffer): Buffer => (gz ? gzipSync(b) : b);
  writeFileSync(path.join(dir, `${prefix}-images-idx3-ubyte${ext}`), enc(idxBytes([n, h, w], images)));
  writeFileSync(path.join(dir, `${prefix}-labels-idx1-ubyte${ext}`), enc(idxBytes([n], labels)));
}

/** RGBA buffer of w×h filled with one colour. */
function solid(w: number, h: number, rgb: [number, number, number]): Buffer {
  const data = Buffer.alloc(w * h * 4);
  for (let p = 0; p < w * h; p++) data.set([rgb[0], rgb[1], rgb[2], 255], p * 4);
  return data;
}

export function pngFile(file: string, w: number, h: number, rgb: [number, number, number]): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const png = new PNG({ width: w, height: h });
  solid(w, h, rgb).copy(png.data);
  writeFileSync(file, PNG.sync.write(png));
}

export function jpegFile(file: string, w: number, h: number, rgb: [number, number, number]): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, jpeg.encode({ width: w, height: h, data: solid(w, h, rgb) }, 95).data);
}

/** Tiny 8×8×1 three-class images whose class shows in every third pixel: trainable in a few cpu steps. */
export function tinyImages(count: number): ImageSet {
  const x = new Float32Array(count * 64);
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    y[i] = i % 3;
    for (let p = 0; p < 64; p++) x[i * 64 + p] = ((p * 7 + i * 13) % 17) / 17 + (p % 3 === y[i] ? 0.5 : 0);
  }
  return { x, y, count, shape: [8, 8, 1], numClasses: 3, classNames: ['a', 'b', 'c'] };
}
