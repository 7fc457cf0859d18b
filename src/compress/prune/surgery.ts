import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../../core/errors.js';
import { buildDependencyGraph, depthMultiplierOf, keptInputRows, type DependencyGraph, type GraphOptions } from '../../model/dependency-graph.js';
import { validatePlan, type PrunePlan } from './planner.js';

interface LayerEdit {
  /** Output channels kept (producers: filters/units; BN/depthwise: their channels). */
  out?: number[];
  /** Input rows kept, already expanded for flatten positions or depthwise multipliers. */
  inKept?: number[];
  /** For SeparableConv2D: kept input channels before the multiplier expansion. */
  inChannels?: number[];
}

type JsonLayer = { class_name: string; name?: string; config: Record<string, unknown> };


function editsFor(plan: PrunePlan, graph: DependencyGraph): Map<string, LayerEdit> {
  const edits = new Map<string, LayerEdit>();
  const edit = (name: string): LayerEdit => {
    let e = edits.get(name);
    if (!e) edits.set(name, (e = {}));
    return e;
  };
  for (const gp of plan.groups) {
    const group = graph.groups.find((g) => g.key === gp.key)!;
    for (const m of group.members) {
      if (m.role === 'in') {
        const e = edit(m.layer);
        e.inKept = keptInputRows(gp.keep, gp.size, m.spatial, m.multiplier);
        e.inChannels = gp.keep;
      } else edit(m.layer).out = gp.keep;
    }
  }
  return edits;
}

function jsonLayers(topology: Record<string, unknown>): JsonLayer[] {
  const cfg = topology.config as { layers?: JsonLayer[] } | JsonLayer[] | undefined;
  const layers = Array.isArray(cfg) ? cfg : cfg?.layers;
  if (!Array.isArray(layers)) throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', 'model topology has no layer list');
  return layers;
}

/** Slices one weight variable of a layer by its role in the edit. */
function sliceWeight(cls: string, suffix: string, w: tf.Tensor, e: LayerEdit): tf.Tensor {
  const last = w.rank - 1;
  const gather = (t: tf.Tensor, idx: number[] | undefined, axis: number): tf.Tensor =>
    idx ? tf.gather(t, tf.tensor1d(idx, 'int32'), axis) : t;
  if (w.rank === 1) return gather(w, e.out, 0); // biases, BN vectors: one value per output channel
  if (cls === 'Conv2D' || cls === 'Dense') return gather(gather(w, e.inKept, last - 1), e.out, last);
  if (cls === 'DepthwiseConv2D') return gather(w, e.out, 2);
  if (cls === 'SeparableConv2D') {
    if (suffix === 'depthwise_kernel') return gather(w, e.inChannels, 2);
    return gather(gather(w, e.inKept, 2), e.out, 3);
  }
  throw new EdgektError('EDGEKT_ERR_PRUNE_PLAN', `cannot slice ${suffix} of a ${cls}`);
}

/**
 * Physically removes the planned channels: rewrites the topology (filters/units), rebuilds the
 * model from it, and copies every weight, sliced where a plan touches it. The source model is not
 * changed; the plan is validated first so a bad plan never half-mutates anything.
 */
export async function applyPlan(model: tf.LayersModel, plan: PrunePlan, options: GraphOptions = {}): Promise<tf.LayersModel> {
  const graph = buildDependencyGraph(model, options);
  validatePlan(plan, graph);
  const edits = editsFor(plan, graph);
  const topology = model.toJSON(null, false) as Record<string, unknown>;
  for (const jl of jsonLayers(topology)) {
    const name = (jl.config.name as string | undefined) ?? jl.name;
    if (name !== undefined && (jl.class_name === 'SeparableConv2D' || jl.class_name === 'DepthwiseConv2D')) {
      // Work around tfjs dropping depthMultiplier from the serialised config.
      jl.config.depth_multiplier = depthMultiplierOf(model.getLayer(name));
    }
    const e = name === undefined ? undefined : edits.get(name);
    if (!e?.out) continue;
    if ('filters' in jl.config) jl.config.filters = e.out.length;
    else if ('units' in jl.config) jl.config.units = e.out.length;
  }
  const rebuilt = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
  try {
    for (const layer of rebuilt.layers) {
      const src = model.getLayer(layer.name);
      const e = edits.get(layer.name);
      if (layer.weights.length === 0) continue;
      const values = tf.tidy(() =>
        src.weights.map((v) => {
          const t = v.read();
          if (!e) return t.clone();
          const suffix = v.originalName.split('/').pop() ?? v.originalName;
          const s = sliceWeight(src.getClassName(), suffix, t, e);
          return s === t ? t.clone() : s;
        }),
      );
      try {
        layer.setWeights(values);
      } finally {
        tf.dispose(values);
      }
    }
  } catch (err) {
    rebuilt.dispose();
    throw err instanceof EdgektError ? err : new EdgektError('EDGEKT_ERR_PRUNE_PLAN', `surgery failed: ${String(err)}`, {}, { cause: err });
  }
  return rebuilt;
}
