import { EdgektError } from '../core/errors.js';
import { buildGraph, type LayerGraph } from './graph.js';
import { normalizeTopology } from './model-json.js';
import { parseModelJson, type ModelJson, type WeightEntry } from './model-json.js';

/** Refusal thresholds; checked on the config before any tensor or weight byte is touched. */
export interface ModelLimits {
  /** Total parameters (trainable + BN statistics). */
  maxParams: number;
  /** Bytes of the largest single float32 activation for one sample. */
  maxActivationBytes: number;
  /** Bytes of model.json itself. */
  maxModelJsonBytes: number;
}

export const DEFAULT_MODEL_LIMITS: ModelLimits = {
  maxParams: 50_000_000,
  maxActivationBytes: 256 * 2 ** 20,
  maxModelJsonBytes: 32 * 2 ** 20,
};

export interface WeightLayout {
  /** Manifest entry with its full name, in file order. */
  entry: WeightEntry;
  /** Manifest group and byte offset inside that group's concatenated shards. */
  group: number;
  offset: number;
  bytes: number;
  elements: number;
}

/** Everything known about a model before allocation: parsed JSON, graph, and where each weight lives. */
export interface ModelInspection {
  json: ModelJson;
  graph: LayerGraph;
  weights: WeightLayout[];
  /** Expected byte total of each manifest group (sum of its shards' sizes). */
  groupBytes: number[];
  /** Shard paths of each group, relative to the model directory. */
  groupPaths: string[][];
  totalWeightBytes: number;
}

const BYTES: Record<string, number> = { float32: 4, uint8: 1, uint16: 2, float16: 2 };

function weightsError(message: string, details: Record<string, unknown> = {}): EdgektError {
  return new EdgektError('EDGEKT_ERR_MODEL_WEIGHTS', message, details);
}

function checkShardPath(p: string): void {
  if (p.startsWith('/') || p.includes('\\') || p.split('/').some((s) => s === '..') || p.includes('\0')) {
    throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', `weight path ${JSON.stringify(p)} must stay inside the model directory`);
  }
}

/**
 * Validates a parsed `model.json` without allocating: schema, supported layers, shapes, parameter
 * and activation limits, and that the manifest lists exactly the weights the topology needs.
 */
export function inspectModelJson(value: unknown, limits: Partial<ModelLimits> = {}): ModelInspection {
  const lim = { ...DEFAULT_MODEL_LIMITS, ...limits };
  const json = parseModelJson(value);
  const graph = buildGraph(normalizeTopology(json.modelTopology));
  if (graph.totalParams > lim.maxParams) {
    throw new EdgektError('EDGEKT_ERR_MODEL_TOO_LARGE', `model has ${graph.totalParams} parameters (limit ${lim.maxParams})`, { params: graph.totalParams, limit: lim.maxParams });
  }
  const peakBytes = graph.peakActivationElements * 4;
  if (peakBytes > lim.maxActivationBytes) {
    const worst = graph.nodes.reduce((a, n) => (n.activationElements > a.activationElements ? n : a));
    throw new EdgektError('EDGEKT_ERR_MODEL_TOO_LARGE', `layer ${worst.name} output [${worst.outputShape.join(', ')}] needs ${peakBytes} bytes per sample (limit ${lim.maxActivationBytes})`, { layer: worst.name, bytes: peakBytes });
  }
  const expected = new Map(graph.nodes.flatMap((n) => n.weights.map((w) => [w.name, w.shape] as const)));
  const weights: WeightLayout[] = [];
  const groupBytes: number[] = [];
  const groupPaths: string[][] = [];
  json.weightsManifest.forEach((g, gi) => {
    g.paths.forEach(checkShardPath);
    let offset = 0;
    for (const raw of g.weights) {
      const entry = { ...raw, name: raw.name.replace(/:0$/, '') };
      const q = entry.quantization?.dtype;
      if (entry.group === 'optimizer' && !q && (entry.dtype === 'float32' || entry.dtype === 'int32')) {
        offset += entry.shape.reduce((a, b) => a * b, 1) * 4; // saved with includeOptimizer: skipped, not needed
        continue;
      }
      if (entry.dtype !== 'float32') throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `weight ${entry.name} has dtype ${entry.dtype} (only float32)`);
      if (q && (entry.quantization?.scale === undefined || entry.quantization.min === undefined) && q !== 'float16') {
        throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', `weight ${entry.name}: ${q} quantization without scale/min`);
      }
      const elements = entry.shape.reduce((a, b) => a * b, 1);
      const bytes = elements * BYTES[q ?? 'float32']!;
      const want = expected.get(entry.name);
      if (want === undefined) throw weightsError(`manifest weight ${entry.name} belongs to no layer of the topology`, { weight: entry.name });
      if (want.join(',') !== entry.shape.join(',')) {
        throw weightsError(`weight ${entry.name} has shape [${entry.shape.join(', ')}], topology needs [${want.join(', ')}]`, { weight: entry.name });
      }
      expected.delete(entry.name);
      weights.push({ entry, group: gi, offset, bytes, elements });
      offset += bytes;
    }
    groupBytes.push(offset);
    groupPaths.push(g.paths);
  });
  if (expected.size > 0) throw weightsError(`manifest lacks weights: ${[...expected.keys()].slice(0, 5).join(', ')}`, { missing: [...expected.keys()] });
  return { json, graph, weights, groupBytes, groupPaths, totalWeightBytes: groupBytes.reduce((a, b) => a + b, 0) };
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/**
 * Decodes (and dequantizes) every weight into one float32 buffer in manifest order, refusing
 * non-finite values: the bytes are checked here, before tfjs turns them into tensors.
 * `groups[i]` is the concatenation of group i's shards.
 */
export function decodeWeightBytes(inspection: ModelInspection, groups: Uint8Array[]): Float32Array {
  inspection.groupBytes.forEach((n, i) => {
    const got = groups[i]?.byteLength ?? 0;
    if (got !== n) throw weightsError(`weight group ${i} (${inspection.groupPaths[i]?.join(', ')}) has ${got} bytes, manifest needs ${n}`, { group: i, bytes: got, expected: n });
  });
  const total = inspection.weights.reduce((a, w) => a + w.elements, 0);
  const out = new Float32Array(total);
  let at = 0;
  for (const w of inspection.weights) {
    const src = groups[w.group]!;
    const q = w.entry.quantization;
    if (!q) {
      // Plain float32 (little-endian, as tfjs writes it): copy to an aligned buffer, then scan.
      const vals = new Float32Array(src.slice(w.offset, w.offset + w.bytes).buffer);
      for (let i = 0; i < vals.length; i++) {
        if (!Number.isFinite(vals[i]!)) {
          throw weightsError(`weight ${w.entry.name} has a non-finite value (${vals[i]}) at element ${i}`, { weight: w.entry.name, index: i });
        }
      }
      out.set(vals, at);
      at += vals.length;
      continue;
    }
    const view = new DataView(src.buffer, src.byteOffset + w.offset, w.bytes);
    const scale = q.scale ?? 1;
    const min = q.min ?? 0;
    for (let i = 0; i < w.elements; i++) {
      const v =
        q.dtype === 'uint8' ? view.getUint8(i) * scale + min
        : q.dtype === 'uint16' ? view.getUint16(i * 2, true) * scale + min
        : halfToFloat(view.getUint16(i * 2, true));
      if (!Number.isFinite(v)) {
        throw weightsError(`weight ${w.entry.name} has a non-finite value (${v}) at element ${i}`, { weight: w.entry.name, index: i });
      }
      out[at++] = v;
    }
  }
  return out;
}
