import { EdgektError } from '../core/errors.js';
import { createRng, shuffleInPlace } from '../core/random.js';
import type { ImageSet } from './types.js';

/**
 * A split as it sits in the source, before selection and normalisation: uint8 pixels (IDX, image
 * folders) or floats already in [0,1] (the mnist package). Kept undecoded so `limit` only pays
 * for the samples it keeps.
 */
export interface RawSplit {
  pixels: Uint8Array | Float32Array;
  /** Multiply a pixel by this to reach [0,1]: 1/255 for bytes, 1 for floats. */
  scale: number;
  labels: Int32Array;
  count: number;
  shape: [number, number, number];
  /** File or folder the split came from, for error messages. */
  source: string;
}

/** How pixels are mapped to float32 once they are in [0,1]. */
export type Normalization = 'unit' | 'raw' | { mean: number[]; std: number[] };

export interface SelectOptions {
  seed: number;
  limit?: number;
  perClassLimit?: number;
}

/** Indices kept by `limit`/`perClassLimit`, chosen in a seeded random order, returned ascending. */
export function selectIndices(labels: Int32Array, opts: SelectOptions): Int32Array {
  const n = labels.length;
  const { limit, perClassLimit } = opts;
  if (limit === undefined && perClassLimit === undefined) {
    const all = new Int32Array(n);
    for (let i = 0; i < n; i++) all[i] = i;
    return all;
  }
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  shuffleInPlace(order, createRng(opts.seed));
  const max = limit ?? n;
  const perClass = new Map<number, number>();
  const kept: number[] = [];
  for (let k = 0; k < n && kept.length < max; k++) {
    const i = order[k]!;
    const c = labels[i]!;
    const seen = perClass.get(c) ?? 0;
    if (perClassLimit !== undefined && seen >= perClassLimit) continue;
    perClass.set(c, seen + 1);
    kept.push(i);
  }
  return Int32Array.from(kept).sort();
}

/** Converts the chosen samples of a raw split to a float32 ImageSet. */
export function materialize(
  raw: RawSplit,
  indices: Int32Array,
  numClasses: number,
  classNames: string[],
  normalization: Normalization = 'unit',
): ImageSet {
  const [h, w, c] = raw.shape;
  const size = h * w * c;
  const x = new Float32Array(indices.length * size);
  const y = new Int32Array(indices.length);
  const scale = normalization === 'raw' ? raw.scale * 255 : raw.scale;
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    const src = raw.pixels.subarray(i * size, (i + 1) * size);
    const off = k * size;
    for (let j = 0; j < size; j++) x[off + j] = src[j]! * scale;
    y[k] = raw.labels[i]!;
  }
  const set: ImageSet = { x, y, count: indices.length, shape: [h, w, c], numClasses, classNames };
  if (typeof normalization === 'object') normalizeInPlace(set, normalization.mean, normalization.std);
  return set;
}

/** Per-channel (x - mean) / std on a set whose pixels are in [0,1]; one value broadcasts to all channels. */
export function normalizeInPlace(set: ImageSet, mean: number[], std: number[]): void {
  const c = set.shape[2];
  const m = channelValues(mean, c, 'mean');
  const s = channelValues(std, c, 'std');
  if (s.some((v) => !(v > 0))) throw new EdgektError('EDGEKT_ERR_USAGE', `normalisation std must be > 0, got [${std.join(', ')}]`);
  const x = set.x;
  for (let i = 0; i < x.length; i++) {
    const ch = i % c;
    x[i] = (x[i]! - m[ch]!) / s[ch]!;
  }
}

function channelValues(values: number[], channels: number, what: string): number[] {
  if (values.length === 1) return new Array<number>(channels).fill(values[0]!);
  if (values.length !== channels) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `normalisation ${what} has ${values.length} values for ${channels} channels`);
  }
  return values;
}
