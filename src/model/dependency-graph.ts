import type * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../core/errors.js';

/**
 * How a layer touches a group's channels:
 * - `out`: it produces them (Conv2D/SeparableConv2D filters, Dense units);
 * - `channel`: it carries one parameter slice per channel and passes them through (BN, depthwise);
 * - `in`: it consumes them (next conv's input axis, Dense rows — `spatial` positions each after a
 *   Flatten, `multiplier` depthwise outputs each in a SeparableConv2D).
 */
export interface GroupMember {
  layer: string;
  className: string;
  role: 'out' | 'channel' | 'in';
  spatial: number;
  multiplier: number;
}

/** Channels that must be removed together (Torch-Pruning's dependency group). */
export interface ChannelGroup {
  id: number;
  /** Stable key: the producer layer names, sorted, joined by '+'. */
  key: string;
  size: number;
  members: GroupMember[];
  prunable: boolean;
  /** Why not prunable (model input, model output, skipped layer, unsupported layer...). */
  reasons: string[];
}

export interface DependencyGraph {
  groups: ChannelGroup[];
}

export interface GraphOptions {
  /** Producer layers never to prune (the classifier is protected anyway as a model output). */
  skipLayers?: readonly string[];
}

const PASS_THROUGH = new Set([
  'Activation', 'ReLU', 'LeakyReLU', 'ELU', 'ThresholdedReLU', 'PReLU', 'Dropout', 'SpatialDropout1D',
  'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout', 'MaxPooling2D', 'AveragePooling2D',
  'ZeroPadding2D', 'UpSampling2D', 'Cropping2D',
]);
const MERGE = new Set(['Add', 'Average', 'Maximum', 'Minimum', 'Multiply']);
const GLOBAL_POOL = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D']);

interface Provisional {
  size: number;
  members: GroupMember[];
  reasons: string[];
}

interface TensorInfo {
  gid: number;
  spatial: number;
}

/** Union-find over provisional groups, so an Add joins whole groups after the fact. */
class Groups {
  private parent: number[] = [];
  readonly items: Provisional[] = [];
  create(size: number, reason?: string): number {
    this.parent.push(this.parent.length);
    this.items.push({ size, members: [], reasons: reason ? [reason] : [] });
    return this.parent.length - 1;
  }
  find(a: number): number {
    while (this.parent[a] !== a) {
      const p = this.parent[a]!;
      this.parent[a] = this.parent[p]!;
      a = p;
    }
    return a;
  }
  union(a: number, b: number, where: string): number {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return ra;
    const A = this.items[ra]!;
    const B = this.items[rb]!;
    if (A.size !== B.size) throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `${where}: merges ${A.size} and ${B.size} channels`);
    this.parent[rb] = ra;
    A.members.push(...B.members);
    A.reasons.push(...B.reasons);
    return ra;
  }
  get(a: number): Provisional {
    return this.items[this.find(a)]!;
  }
}

function configOf(layer: tf.layers.Layer): Record<string, unknown> {
  return layer.getConfig() as Record<string, unknown>;
}

/** tfjs 4.22 leaves depthMultiplier out of getConfig(), so read it from the layer itself. */
export function depthMultiplierOf(layer: tf.layers.Layer): number {
  const m = (layer as unknown as { depthMultiplier?: unknown }).depthMultiplier;
  return typeof m === 'number' ? m : 1;
}

/**
 * Walks the model once in topological order and groups coupled channels: a producer's outputs
 * with the BN/depthwise layers they flow through, every consumer's inputs, and every branch that
 * meets at an Add. Groups touching the model's inputs or outputs, skipped layers or anything not
 * understood are kept but marked not prunable, so the plan can never change the model's interface.
 */
export function buildDependencyGraph(model: tf.LayersModel, options: GraphOptions = {}): DependencyGraph {
  const skip = new Set(options.skipLayers ?? []);
  const g = new Groups();
  const tensors = new Map<number, TensorInfo>();
  const lastDim = (shape: readonly (number | null)[]): number => shape[shape.length - 1] ?? 0;
  for (const t of model.inputs) tensors.set(t.id, { gid: g.create(lastDim(t.shape), 'model input'), spatial: 1 });

  const member = (layer: tf.layers.Layer, role: GroupMember['role'], spatial = 1, multiplier = 1): GroupMember => ({
    layer: layer.name, className: layer.getClassName(), role, spatial, multiplier,
  });

  for (const layer of model.layers) {
    const cls = layer.getClassName();
    if (cls === 'InputLayer') continue;
    if (layer.inboundNodes.length !== 1) {
      throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `layer ${layer.name} is shared (${layer.inboundNodes.length} calls); pruning needs one call per layer`);
    }
    const node = layer.inboundNodes[0]!;
    const ins = node.inputTensors.map((t) => {
      const info = tensors.get(t.id);
      if (!info) throw new EdgektError('EDGEKT_ERR_INTERNAL', `layer ${layer.name}: input tensor ${t.id} not seen before`);
      return info;
    });
    const out = node.outputTensors;
    if (out.length !== 1) throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `layer ${layer.name} has ${out.length} outputs`);
    const outT = out[0]!;
    const cfg = configOf(layer);
    const set = (info: TensorInfo): void => void tensors.set(outT.id, info);
    const first = ins[0]!;
    const blockAll = (why: string): void => {
      for (const i of ins) g.get(i.gid).reasons.push(why);
      set({ gid: g.create(lastDim(outT.shape), why), spatial: 1 });
    };
    const activation = typeof cfg.activation === 'string' ? cfg.activation : 'linear';

    if (cls === 'Conv2D' || cls === 'Dense' || cls === 'SeparableConv2D') {
      if (cls !== 'Dense' && first.spatial !== 1) {
        blockAll(`${layer.name}: convolution after a flatten`);
        continue;
      }
      const mult = cls === 'SeparableConv2D' ? depthMultiplierOf(layer) : 1;
      g.get(first.gid).members.push(member(layer, 'in', first.spatial, mult));
      const gid = g.create(lastDim(outT.shape));
      const p = g.get(gid);
      p.members.push(member(layer, 'out'));
      if (skip.has(layer.name)) p.reasons.push(`${layer.name} is skipped`);
      if (activation === 'softmax') p.reasons.push(`${layer.name} ends in softmax`);
      set({ gid, spatial: 1 });
    } else if (cls === 'DepthwiseConv2D') {
      const mult = depthMultiplierOf(layer);
      if (mult !== 1 || first.spatial !== 1) {
        blockAll(`${layer.name}: depth_multiplier ${mult}`);
        continue;
      }
      g.get(first.gid).members.push(member(layer, 'channel'));
      set(first);
    } else if (cls === 'BatchNormalization') {
      const axis = cfg.axis;
      const rank = outT.shape.length;
      if (!(axis === -1 || axis === rank - 1) || first.spatial !== 1) {
        blockAll(`${layer.name}: batch norm over axis ${String(axis)}`);
        continue;
      }
      g.get(first.gid).members.push(member(layer, 'channel'));
      set(first);
    } else if (MERGE.has(cls)) {
      if (ins.some((i) => i.spatial !== first.spatial)) {
        blockAll(`${layer.name}: merges differently flattened inputs`);
        continue;
      }
      let gid = first.gid;
      for (const i of ins.slice(1)) gid = g.union(gid, i.gid, layer.name);
      set({ gid, spatial: first.spatial });
    } else if (cls === 'Flatten') {
      const inShape = node.inputTensors[0]!.shape;
      const positions = inShape.slice(1, -1).reduce<number>((a, d) => a * (d ?? 0), 1);
      if (!(positions > 0)) {
        blockAll(`${layer.name}: flatten of an undefined shape`);
        continue;
      }
      set({ gid: first.gid, spatial: first.spatial * positions });
    } else if (GLOBAL_POOL.has(cls)) {
      set(first);
    } else if (PASS_THROUGH.has(cls) && ins.length === 1) {
      if (cls === 'Activation' && activation === 'softmax') g.get(first.gid).reasons.push(`${layer.name} is a softmax`);
      set(first);
    } else {
      blockAll(`${layer.name}: ${cls} is not understood by the pruner`);
    }
  }
  for (const t of model.outputs) {
    const info = tensors.get(t.id);
    if (info) g.get(info.gid).reasons.push('model output');
  }

  const roots = [...new Set(g.items.map((_, i) => g.find(i)))].sort((a, b) => a - b);
  const groups: ChannelGroup[] = [];
  for (const r of roots) {
    const p = g.items[r]!;
    const producers = p.members.filter((m) => m.role === 'out').map((m) => m.layer).sort();
    if (producers.length === 0 && p.reasons.length === 0) p.reasons.push('no producer');
    groups.push({
      id: groups.length,
      key: producers.join('+') || `(none:${r})`,
      size: p.size,
      members: p.members,
      prunable: p.reasons.length === 0 && p.size > 1,
      reasons: p.reasons,
    });
  }
  return { groups };
}

/**
 * The input rows a consumer keeps when its producer keeps channels `keep` of `size`: a Flatten
 * repeats each channel at every spatial position, a depthwise multiplier expands each channel into
 * `multiplier` rows. Pruning surgery and federated index maps must agree on this order.
 */
export function keptInputRows(keep: readonly number[], size: number, spatial: number, multiplier: number): number[] {
  const rows: number[] = [];
  if (multiplier > 1) {
    for (const c of keep) for (let j = 0; j < multiplier; j++) rows.push(c * multiplier + j);
    return rows;
  }
  for (let p = 0; p < spatial; p++) for (const c of keep) rows.push(p * size + c);
  return rows;
}
