import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../../core/errors.js';

/** The last layer at one spatial resolution: where a FitNets hint is taken. */
export interface StageEnd {
  layerName: string;
  height: number;
  width: number;
  channels: number;
}

/** A teacher stage end matched with a student stage end. */
export interface HintPair {
  teacher: StageEnd;
  student: StageEnd;
}

const CONV_CLASSES = new Set(['Conv2D', 'DepthwiseConv2D', 'SeparableConv2D']);

function shape4(layer: tf.layers.Layer): [number, number, number] | null {
  const s = layer.outputShape;
  if (!Array.isArray(s) || Array.isArray(s[0]) || s.length !== 4) return null;
  const [, h, w, c] = s as Array<number | null>;
  return typeof h === 'number' && typeof w === 'number' && typeof c === 'number' ? [h, w, c] : null;
}

/**
 * Stage ends by spatial resolution, in forward order: for each resolution that holds at least one
 * convolution, the last layer (topological order) whose output has that resolution. Used when no
 * explicit hint layers are given; the lighten stage works on the same notion of stages.
 */
export function findStageEnds(model: tf.LayersModel): StageEnd[] {
  const stages = new Map<string, { end: StageEnd; hasConv: boolean }>();
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const s = shape4(layer);
    if (!s) continue;
    const key = `${s[0]}x${s[1]}`;
    const prev = stages.get(key);
    const hasConv = (prev?.hasConv ?? false) || CONV_CLASSES.has(layer.getClassName());
    if (prev) stages.delete(key); // re-insert so Map order follows the last occurrence
    stages.set(key, { end: { layerName: layer.name, height: s[0], width: s[1], channels: s[2] }, hasConv });
  }
  return [...stages.values()].filter((s) => s.hasConv).map((s) => s.end);
}

/** Whether a layer is a ReLU (an Activation('relu'), or tfjs's ReLU layer). */
function isRelu(layer: tf.layers.Layer): boolean {
  const cls = layer.getClassName();
  if (cls === 'ReLU') return true;
  if (cls !== 'Activation') return false;
  return (layer.getConfig() as { activation?: unknown }).activation === 'relu';
}

/**
 * The stage end moved before its ReLU: when `end` is a ReLU with one inbound layer of the same
 * shape, that layer (typically the BatchNorm), else `end` itself. Pre-ReLU hints keep the negative
 * responses the ReLU discards (Heo et al., "A Comprehensive Overhaul of Feature Distillation", 2019).
 */
export function preActivation(model: tf.LayersModel, end: StageEnd): StageEnd {
  const layer = model.getLayer(end.layerName);
  if (!isRelu(layer) || layer.inboundNodes.length !== 1) return end;
  const inbound = layer.inboundNodes[0]!.inboundLayers;
  if (inbound.length !== 1) return end;
  const prev = inbound[0]!;
  const s = shape4(prev);
  if (!s || s[0] !== end.height || s[1] !== end.width || s[2] !== end.channels) return end;
  return { ...end, layerName: prev.name };
}

/** Describes one named layer's 4-D output as a stage end (for explicitly chosen hint layers). */
export function stageEndOf(model: tf.LayersModel, layerName: string): StageEnd {
  let layer: tf.layers.Layer;
  try {
    layer = model.getLayer(layerName);
  } catch {
    throw new EdgektError('EDGEKT_ERR_USAGE', `hint layer "${layerName}" is not in model ${model.name}`);
  }
  const s = shape4(layer);
  if (!s) throw new EdgektError('EDGEKT_ERR_USAGE', `hint layer "${layerName}" does not output a 4-D feature map`);
  return { layerName, height: s[0], width: s[1], channels: s[2] };
}

/**
 * Pairs each student stage end with the teacher stage end of the same resolution (or, failing
 * that, the nearest by area; the hint loss then pools/resizes). Each teacher stage is used once.
 */
export function pairStageEnds(teacher: StageEnd[], student: StageEnd[]): HintPair[] {
  const used = new Set<string>();
  const pairs: HintPair[] = [];
  for (const s of student) {
    const free = teacher.filter((t) => !used.has(t.layerName));
    if (free.length === 0) break;
    const area = s.height * s.width;
    const best = free.reduce((a, b) =>
      Math.abs(Math.log((b.height * b.width) / area)) < Math.abs(Math.log((a.height * a.width) / area)) ? b : a,
    );
    used.add(best.layerName);
    pairs.push({ teacher: best, student: s });
  }
  return pairs;
}

/** Where a model's logits are: the symbolic tensor, and whether it holds probabilities (softmax). */
export interface LogitsSource {
  tensor: tf.SymbolicTensor;
  /** True when only softmax probabilities are reachable: logits are then recovered as log(p). */
  fromProbabilities: boolean;
}

/**
 * Takes logits from before a final softmax: an Activation/Softmax layer is skipped; a Dense with a
 * softmax activation yields probabilities, whose log equals the logits up to a per-row constant,
 * which KD and cross-entropy ignore.
 */
export function logitsSource(model: tf.LayersModel): LogitsSource {
  const out = model.outputs[0];
  if (!out || model.outputs.length !== 1) throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', 'distillation needs a single-output model');
  const layer = out.sourceLayer as tf.layers.Layer;
  const cls = layer.getClassName();
  const activation = (layer.getConfig() as { activation?: unknown }).activation;
  if (cls === 'Softmax' || (cls === 'Activation' && activation === 'softmax')) {
    return { tensor: layer.input as tf.SymbolicTensor, fromProbabilities: false };
  }
  return { tensor: out, fromProbabilities: activation === 'softmax' };
}

/**
 * A model sharing the original's layers (and weights) that outputs each hint layer's feature map
 * followed by the logits, so one forward pass gives every term of the loss.
 */
export function featureModel(model: tf.LayersModel, hintLayers: string[]): { model: tf.LayersModel; fromProbabilities: boolean } {
  const logits = logitsSource(model);
  const outputs = [...hintLayers.map((n) => model.getLayer(n).output as tf.SymbolicTensor), logits.tensor];
  return { model: tf.model({ inputs: model.inputs, outputs }), fromProbabilities: logits.fromProbabilities };
}

/** Names of the given layers and everything upstream of them: what a hints-only phase trains. */
export function upstreamLayers(model: tf.LayersModel, layerNames: string[]): Set<string> {
  const seen = new Set<string>();
  const stack = layerNames.map((n) => model.getLayer(n));
  while (stack.length) {
    const layer = stack.pop()!;
    if (seen.has(layer.name)) continue;
    seen.add(layer.name);
    for (const node of layer.inboundNodes) for (const l of node.inboundLayers) stack.push(l);
  }
  return seen;
}
