import { mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { EdgektError, isEdgektError } from '../core/errors.js';
import { graphFromModel, type LayerGraph } from './graph.js';
import { stripSoftmax } from './logits.js';
import { decodeWeightBytes, inspectModelJson, type ModelInspection, type ModelLimits } from './validate.js';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

export interface LoadModelOptions {
  limits?: Partial<ModelLimits>;
  /** Build the model without its final softmax (distillation needs logits); see stripSoftmax. */
  logits?: boolean;
}

export interface LoadedModel {
  model: tf.LayersModel;
  /** Graph of the model as built (without the softmax when `logits` was asked). */
  graph: LayerGraph;
  /** True when a softmax was removed because `logits` was asked. */
  strippedSoftmax: boolean;
  weightBytes: number;
}

function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', `model.json is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Validates a model directory (model.json, shard sizes) without reading weights or allocating. */
export async function inspectModelDir(dir: string, limits: Partial<ModelLimits> = {}): Promise<ModelInspection> {
  const file = path.join(dir, MODEL_JSON);
  const max = limits.maxModelJsonBytes ?? 32 * 2 ** 20;
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', `no ${MODEL_JSON} in ${dir}`, { dir });
  }
  if (size > max) throw new EdgektError('EDGEKT_ERR_MODEL_TOO_LARGE', `${MODEL_JSON} is ${size} bytes (limit ${max})`);
  const inspection = inspectModelJson(parseJsonText(await readFile(file, 'utf8')), limits);
  for (let g = 0; g < inspection.groupPaths.length; g++) {
    let bytes = 0;
    for (const p of inspection.groupPaths[g]!) {
      try {
        bytes += (await stat(path.join(dir, p))).size;
      } catch {
        throw new EdgektError('EDGEKT_ERR_MODEL_WEIGHTS', `weight file ${p} is missing`, { path: p });
      }
    }
    if (bytes !== inspection.groupBytes[g]) {
      throw new EdgektError('EDGEKT_ERR_MODEL_WEIGHTS', `weight files ${inspection.groupPaths[g]!.join(', ')} hold ${bytes} bytes, manifest needs ${inspection.groupBytes[g]}`, { bytes, expected: inspection.groupBytes[g] });
    }
  }
  return inspection;
}

async function readExactly(file: string, bytes: number): Promise<Uint8Array> {
  const fh = await open(file, 'r');
  try {
    const buf = new Uint8Array(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    if (bytesRead !== bytes) throw new EdgektError('EDGEKT_ERR_MODEL_WEIGHTS', `weight file ${file} changed while reading`);
    return buf;
  } finally {
    await fh.close();
  }
}

/**
 * Builds the tfjs model from validated JSON and decoded weights. Only here are tensors created;
 * every refusal happened before.
 */
export async function buildFromInspection(inspection: ModelInspection, weights: Float32Array, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const stripped = options.logits ? stripSoftmax(inspection.graph.topology) : { topology: inspection.graph.topology, hadSoftmax: false };
  const weightSpecs: tf.io.WeightsManifestEntry[] = inspection.weights.map((w) => ({ name: w.entry.name, shape: w.entry.shape, dtype: 'float32' }));
  const handler = tf.io.fromMemory({
    modelTopology: stripped.topology.keras as tf.io.ModelArtifacts['modelTopology'],
    weightSpecs,
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer,
    format: 'layers-model',
  });
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(handler, { strict: true });
  } catch (e) {
    if (isEdgektError(e)) throw e;
    throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `tfjs could not build the model: ${e instanceof Error ? e.message : String(e)}`, {}, { cause: e });
  }
  return { model, graph: graphFromModel(model), strippedSoftmax: stripped.hadSoftmax, weightBytes: inspection.totalWeightBytes };
}

/** Loads from in-memory files (e.g. a teacher received in chunks): model.json text and shards by path. */
export async function loadModelFromBuffers(modelJson: string | Uint8Array, files: Record<string, Uint8Array>, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const text = typeof modelJson === 'string' ? modelJson : new TextDecoder().decode(modelJson);
  const inspection = inspectModelJson(parseJsonText(text), options.limits);
  const groups = inspection.groupPaths.map((paths, g) => {
    const parts = paths.map((p) => {
      const f = files[p] ?? files[p.replace(/^\.\//, '')];
      if (!f) throw new EdgektError('EDGEKT_ERR_MODEL_WEIGHTS', `weight file ${p} is missing`, { path: p });
      return f;
    });
    const total = parts.reduce((a, p) => a + p.byteLength, 0);
    if (total !== inspection.groupBytes[g]) {
      throw new EdgektError('EDGEKT_ERR_MODEL_WEIGHTS', `weight group ${g} holds ${total} bytes, manifest needs ${inspection.groupBytes[g]}`);
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  });
  return buildFromInspection(inspection, decodeWeightBytes(inspection, groups), options);
}

/**
 * Loads a tfjs LayersModel directory (model.json + shards) written by tfjs or tensorflowjs_converter.
 * Refuses with MODEL_FORMAT / MODEL_UNSUPPORTED / MODEL_TOO_LARGE / MODEL_WEIGHTS before allocating.
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const inspection = await inspectModelDir(dir, options.limits);
  const groups: Uint8Array[] = [];
  for (let g = 0; g < inspection.groupPaths.length; g++) {
    const out = new Uint8Array(inspection.groupBytes[g]!);
    let at = 0;
    for (const p of inspection.groupPaths[g]!) {
      const file = path.join(dir, p);
      const part = await readExactly(file, (await stat(file)).size);
      out.set(part, at);
      at += part.byteLength;
    }
    groups.push(out);
  }
  return buildFromInspection(inspection, decodeWeightBytes(inspection, groups), options);
}

export interface SerializedModel {
  /** model.json text, in the format tfjs `model.save('file://…')` writes. */
  modelJson: string;
  /** The single weights.bin shard. */
  weights: Uint8Array;
}

/** Serializes a model to the standard tfjs layers format (one shard), in memory. */
/**
 * tfjs 4.22's SeparableConv2D.getConfig() omits depthMultiplier, so a saved model with a multiplier
 * above 1 would reload with the wrong kernel shape: write it back from the live layers.
 */
function restoreDepthMultipliers(model: tf.LayersModel, topology: unknown): unknown {
  const root = topology as { model_config?: { config?: { layers?: unknown } }; config?: { layers?: unknown } } | undefined;
  const layers = root?.model_config?.config?.layers ?? root?.config?.layers;
  if (!Array.isArray(layers)) return topology;
  for (const entry of layers as Array<{ class_name?: string; config?: Record<string, unknown> }>) {
    if (entry.class_name !== 'SeparableConv2D' && entry.class_name !== 'DepthwiseConv2D') continue;
    const cfg = entry.config;
    if (!cfg || cfg.depth_multiplier !== undefined || typeof cfg.name !== 'string') continue;
    const m = (model.getLayer(cfg.name) as unknown as { depthMultiplier?: unknown }).depthMultiplier;
    if (typeof m === 'number') cfg.depth_multiplier = m;
  }
  return topology;
}

export async function serializeModel(model: tf.LayersModel): Promise<SerializedModel> {
  let result: SerializedModel | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      const buf = data === undefined ? new ArrayBuffer(0) : Array.isArray(data) ? tf.io.CompositeArrayBuffer.join(data) : data;
      const json: tf.io.ModelJSON = {
        modelTopology: restoreDepthMultipliers(model, artifacts.modelTopology) as tf.io.ModelJSON['modelTopology'],
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      result = { modelJson: JSON.stringify(json), weights: new Uint8Array(buf) };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: buf.byteLength } };
    }),
  );
  if (!result) throw new EdgektError('EDGEKT_ERR_INTERNAL', 'tfjs save handler was not called');
  return result;
}

export interface SavedModelInfo {
  dir: string;
  modelJsonBytes: number;
  weightBytes: number;
}

/** Writes model.json + weights.bin into `dir` (created), each via a temp file and rename. */
export async function saveModel(model: tf.LayersModel, dir: string): Promise<SavedModelInfo> {
  return writeModelBytes(await serializeModel(model), dir);
}

/** Writes serialized model bytes as a tfjs model directory (what saveModel writes). */
export async function writeModelBytes(s: SerializedModel, dir: string): Promise<SavedModelInfo> {
  await mkdir(dir, { recursive: true });
  const tmpW = path.join(dir, `.${WEIGHTS_BIN}.${process.pid}.tmp`);
  const tmpJ = path.join(dir, `.${MODEL_JSON}.${process.pid}.tmp`);
  await writeFile(tmpW, s.weights);
  await writeFile(tmpJ, s.modelJson);
  await rename(tmpW, path.join(dir, WEIGHTS_BIN));
  await rename(tmpJ, path.join(dir, MODEL_JSON));
  return { dir, modelJsonBytes: Buffer.byteLength(s.modelJson), weightBytes: s.weights.byteLength };
}
