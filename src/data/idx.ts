import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { EdgektError } from '../core/errors.js';
import type { RawSplit } from './raw.js';

/** A parsed IDX file (http://yann.lecun.com/exdb/mnist/): unsigned-byte payload and its dimensions. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Reads a file, gunzipping it when it starts with the gzip magic (whatever its extension). */
export function readMaybeGzip(file: string): Uint8Array {
  if (!existsSync(file)) throw new EdgektError('EDGEKT_ERR_DATA_NOT_FOUND', `${file}: no such file`, { file });
  const buf = readFileSync(file);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      return gunzipSync(buf);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new EdgektError('EDGEKT_ERR_DATA_FORMAT', `${file}: truncated or corrupt gzip (${why})`, { file }, { cause: e });
    }
  }
  return buf;
}

/** Parses IDX bytes; only the unsigned-byte type (0x08) that MNIST-style datasets use is accepted. */
export function parseIdx(bytes: Uint8Array, file: string, expectDims?: number): IdxArray {
  const fail = (why: string): never => {
    throw new EdgektError('EDGEKT_ERR_DATA_FORMAT', `${file}: ${why}`, { file });
  };
  if (bytes.length < 4) fail(`too short for an IDX header (${bytes.length} bytes)`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    fail(`bad IDX magic 0x${Buffer.from(bytes.subarray(0, 4)).toString('hex')} (expected 0x000008NN)`);
  }
  const type = bytes[2]!;
  const ndims = bytes[3]!;
  if (type !== 0x08) fail(`unsupported IDX element type 0x${type.toString(16).padStart(2, '0')} (only unsigned byte 0x08)`);
  if (expectDims !== undefined && ndims !== expectDims) fail(`expected ${expectDims} IDX dimensions, found ${ndims}`);
  const headerLen = 4 + 4 * ndims;
  if (bytes.length < headerLen) fail(`truncated IDX header (${bytes.length} of ${headerLen} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let total = 1;
  for (let d = 0; d < ndims; d++) {
    const n = view.getUint32(4 + 4 * d, false);
    dims.push(n);
    total *= n;
  }
  const have = bytes.length - headerLen;
  if (have < total) fail(`truncated: ${have} data bytes, header [${dims.join('x')}] needs ${total}`);
  if (have > total) fail(`${have - total} unexpected trailing bytes after [${dims.join('x')}] data`);
  return { dims, data: bytes.subarray(headerLen, headerLen + total) };
}

/** Loads one images/labels pair as a raw split (uint8 pixels, shape [rows, cols, 1]). */
export function loadIdxPair(imagesFile: string, labelsFile: string): RawSplit {
  const images = parseIdx(readMaybeGzip(imagesFile), imagesFile, 3);
  const labels = parseIdx(readMaybeGzip(labelsFile), labelsFile, 1);
  const [n, rows, cols] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) {
    throw new EdgektError(
      'EDGEKT_ERR_DATA_FORMAT',
      `${labelsFile}: ${labels.dims[0]} labels for ${n} images in ${path.basename(imagesFile)}`,
      { file: labelsFile, images: n, labels: labels.dims[0] },
    );
  }
  if (n === 0) throw new EdgektError('EDGEKT_ERR_DATA_EMPTY', `${imagesFile}: no images`, { file: imagesFile });
  return { pixels: images.data, scale: 1 / 255, labels: Int32Array.from(labels.data), count: n, shape: [rows, cols, 1], source: imagesFile };
}

export interface IdxPair {
  prefix: string;
  images: string;
  labels: string;
}

const IMAGES_RE = /^(.*?)[-_.]?images[-_.]idx3[-_.]ubyte(\.gz)?$/i;

/** Finds `<prefix>-images-idx3-ubyte[.gz]` files and their `<prefix>-labels-idx1-ubyte[.gz]` partners. */
export function findIdxPairs(dir: string): IdxPair[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new EdgektError('EDGEKT_ERR_DATA_NOT_FOUND', `${dir}: no such directory`, { dir });
  }
  const names = readdirSync(dir).sort();
  const pairs: IdxPair[] = [];
  for (const name of names) {
    const m = IMAGES_RE.exec(name);
    if (!m) continue;
    const labelName = name.replace(/images([-_.])idx3/i, 'labels$1idx1');
    const candidates = [labelName, labelName.replace(/\.gz$/i, ''), labelName.endsWith('.gz') ? labelName : `${labelName}.gz`];
    const found = candidates.find((c) => names.includes(c));
    if (!found) {
      throw new EdgektError('EDGEKT_ERR_DATA_NOT_FOUND', `${path.join(dir, name)}: no matching labels file ${labelName}`, { dir });
    }
    pairs.push({ prefix: m[1] ?? '', images: path.join(dir, name), labels: path.join(dir, found) });
  }
  if (pairs.length === 0) {
    throw new EdgektError('EDGEKT_ERR_DATA_NOT_FOUND', `${dir}: no *-images-idx3-ubyte[.gz] files`, { dir });
  }
  return pairs;
}

/** Which role a pair plays by its prefix: `train*` → train, `t10k*`/`test*` → test. */
export function roleOf(prefix: string): 'train' | 'test' | null {
  const p = prefix.toLowerCase();
  if (p.startsWith('train')) return 'train';
  if (p.startsWith('t10k') || p.startsWith('test')) return 'test';
  return null;
}
