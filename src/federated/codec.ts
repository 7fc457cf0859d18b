import { formatIssues } from '../config/manifest.js';
import { UpdateHeaderSchema, type UpdateHeader } from '../config/federated.js';
import { EdgektError } from '../core/errors.js';
import { decodeFloat16, FLOAT16_MAX, toFloat16Bits } from './float16.js';
import type { IndexMap } from './index-map.js';
import type { ClientUpdate } from './validate.js';
import { sizeOf, type WeightTensor } from './weights.js';

/**
 * Binary update: `EKUP` magic, u32 LE header length, the header as UTF-8 JSON (zod-checked on the
 * way in), then each tensor's values in header order, little-endian float32 or float16. JSON for
 * the few fields that evolve, raw bytes for the millions of numbers that do not.
 */

const MAGIC = [0x45, 0x4b, 0x55, 0x50]; // "EKUP"
const PRELUDE = 8;

export interface EncodeOptions {
  roundId: string;
  encoding: 'float32' | 'float16';
  metrics?: Record<string, number>;
}

function formatError(message: string): never {
  throw new EdgektError('EDGEKT_ERR_UPDATE_FORMAT', message);
}

/**
 * Encodes an update as it is (weights or delta). Pass float16 a delta (`toDeltaUpdate`): a
 * fine-tuning step is far below the float16 resolution of the weights themselves. Refuses values
 * float16 would turn into Infinity rather than send them.
 */
export function encodeUpdate(update: ClientUpdate, options: EncodeOptions): Uint8Array {
  const names = Object.keys(update.weights);
  const header: UpdateHeader = {
    format: 'edgekt-update',
    version: 1,
    roundId: options.roundId,
    round: update.round,
    clientId: update.clientId,
    numSamples: update.numSamples,
    encoding: options.encoding,
    payload: update.isDelta ? 'delta' : 'weights',
    tensors: names.map((name) => {
      const axes = update.indexMap?.[name];
      return { name, shape: [...update.weights[name]!.shape], ...(axes ? { indices: axes.map((a) => (a ? [...a] : null)) } : {}) };
    }),
    metrics: options.metrics ?? {},
  };
  const json = new TextEncoder().encode(JSON.stringify(UpdateHeaderSchema.parse(header)));
  const bytesPer = options.encoding === 'float16' ? 2 : 4;
  const total = names.reduce((a, n) => a + update.weights[n]!.values.length * bytesPer, 0);
  const out = new Uint8Array(PRELUDE + json.length + total);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(4, json.length, true);
  out.set(json, PRELUDE);
  let at = PRELUDE + json.length;
  for (const name of names) {
    for (const v of update.weights[name]!.values) {
      if (bytesPer === 4) view.setFloat32(at, v, true);
      else {
        if (Math.abs(v) > FLOAT16_MAX) {
          throw new EdgektError('EDGEKT_ERR_UPDATE_NONFINITE', `${name}: ${v} does not fit float16 (max ${FLOAT16_MAX}); send float32`);
        }
        view.setUint16(at, toFloat16Bits(v), true);
      }
      at += bytesPer;
    }
  }
  return out;
}

export interface DecodedUpdate {
  header: UpdateHeader;
  update: ClientUpdate;
}

/** Decodes and checks the layout; the values themselves are judged later by `validateUpdate`. */
export function decodeUpdate(bytes: Uint8Array): DecodedUpdate {
  if (bytes.length < PRELUDE || MAGIC.some((b, i) => bytes[i] !== b)) formatError('not an edgekt update (bad magic)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = view.getUint32(4, true);
  if (PRELUDE + len > bytes.length) formatError(`header length ${len} exceeds the payload`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PRELUDE, PRELUDE + len)));
  } catch (e) {
    formatError(`update header is not JSON: ${String(e)}`);
  }
  const parsed = UpdateHeaderSchema.safeParse(raw);
  if (!parsed.success) formatError(`update header: ${formatIssues(parsed.error)}`);
  const header = parsed.data;
  const bytesPer = header.encoding === 'float16' ? 2 : 4;
  const expected = header.tensors.reduce((a, t) => a + sizeOf(t.shape) * bytesPer, 0);
  if (bytes.length !== PRELUDE + len + expected) formatError(`payload has ${bytes.length - PRELUDE - len} tensor bytes, header describes ${expected}`);
  const weights: Record<string, WeightTensor> = {};
  const indexMap: Record<string, Array<number[] | null>> = {};
  let at = PRELUDE + len;
  for (const t of header.tensors) {
    if (t.name in weights) formatError(`tensor ${t.name} appears twice`);
    const n = sizeOf(t.shape);
    let values: Float32Array;
    if (bytesPer === 2) {
      const bits = new Uint16Array(n);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(at + 2 * i, true);
      values = decodeFloat16(bits);
    } else {
      values = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = view.getFloat32(at + 4 * i, true);
    }
    at += n * bytesPer;
    weights[t.name] = { shape: t.shape, values };
    if (t.indices) indexMap[t.name] = t.indices;
  }
  const map: IndexMap | undefined = Object.keys(indexMap).length > 0 ? indexMap : undefined;
  const update: ClientUpdate = { clientId: header.clientId, round: header.round, numSamples: header.numSamples, weights, ...(map ? { indexMap: map } : {}), ...(header.payload === 'delta' ? { isDelta: true } : {}) };
  return { header, update };
}
