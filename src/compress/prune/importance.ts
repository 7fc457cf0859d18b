import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../../core/errors.js';
import { IMPORTANCE_KINDS } from '../../config/job-spec.js';
import type { ChannelGroup, DependencyGraph } from '../../model/dependency-graph.js';

export { IMPORTANCE_KINDS };
export type ImportanceKind = (typeof IMPORTANCE_KINDS)[number];

/** Kernel holding one column per output channel, as [fanIn, out]. */
function producerKernel(layer: tf.layers.Layer): tf.Tensor2D {
  const suffix = layer.getClassName() === 'SeparableConv2D' ? 'pointwise_kernel' : 'kernel';
  const w = layer.weights.find((v) => v.originalName.endsWith(`/${suffix}`) || v.originalName === suffix);
  if (!w) throw new EdgektError('EDGEKT_ERR_PRUNE_PLAN', `layer ${layer.name} has no ${suffix}`);
  const k = w.read();
  const out = k.shape[k.shape.length - 1]!;
  return k.reshape([-1, out]);
}

/**
 * Raw per-filter importance of one producer layer: L1 or L2 norm of each filter, or FPGM (sum of
 * Euclidean distances to the layer's other filters: filters near the geometric median are the
 * most replaceable, He et al. 2019).
 */
export function filterImportance(layer: tf.layers.Layer, kind: ImportanceKind): Float32Array {
  return tf.tidy(() => {
    const k = producerKernel(layer);
    let scores: tf.Tensor;
    if (kind === 'l1') scores = k.abs().sum(0);
    else if (kind === 'l2') scores = k.square().sum(0).sqrt();
    else {
      const f = k.transpose(); // [out, fanIn]
      const sq = f.square().sum(1, true); // [out, 1]
      const d2 = sq.add(sq.transpose()).sub(f.matMul(f, false, true).mul(2)).relu();
      scores = d2.sqrt().sum(1);
    }
    return scores.dataSync() as Float32Array;
  });
}

/** Scales a layer's scores to mean 1 so layers of different width and fan-in rank together. */
export function normalizePerLayer(scores: Float32Array): Float32Array {
  let sum = 0;
  for (const s of scores) sum += s;
  const mean = sum / Math.max(1, scores.length);
  return mean > 0 ? scores.map((s) => s / mean) : scores.map(() => 0);
}

export interface GroupImportance {
  groupId: number;
  key: string;
  /** One score per channel: the mean of the producers' per-layer-normalised scores. */
  scores: Float32Array;
}

/** Importance of every prunable group's channels. */
export function groupImportance(model: tf.LayersModel, graph: DependencyGraph, kind: ImportanceKind = 'l1'): GroupImportance[] {
  const out: GroupImportance[] = [];
  for (const group of graph.groups) {
    if (!group.prunable) continue;
    out.push({ groupId: group.id, key: group.key, scores: scoreGroup(model, group, kind) });
  }
  return out;
}

function scoreGroup(model: tf.LayersModel, group: ChannelGroup, kind: ImportanceKind): Float32Array {
  const acc = new Float32Array(group.size);
  const producers = group.members.filter((m) => m.role === 'out');
  for (const p of producers) {
    const s = normalizePerLayer(filterImportance(model.getLayer(p.layer), kind));
    if (s.length !== group.size) {
      throw new EdgektError('EDGEKT_ERR_PRUNE_PLAN', `layer ${p.layer} has ${s.length} filters, group ${group.key} has ${group.size}`);
    }
    for (let c = 0; c < s.length; c++) acc[c]! += s[c]! / producers.length;
  }
  return acc;
}
