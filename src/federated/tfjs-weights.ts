import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../core/errors.js';
import { buildDependencyGraph, type GraphOptions } from '../model/dependency-graph.js';
import { indexMapFromPlans, type IndexMap, type PlanLike, type WeightSpec } from './index-map.js';
import { sameShape, type WeightSet, type WeightTensor } from './weights.js';

/**
 * The only federated/ file that touches tfjs: the bridge between a LayersModel and WeightSets,
 * kept apart so the strategies stay pure and runnable without a backend.
 */

function suffixOf(v: tf.LayerVariable): string {
  return v.originalName.split('/').pop() ?? v.originalName;
}

/** Every weight variable (trainable or not, BN statistics included), named `layer/suffix`. */
export function weightSpecsOf(model: tf.LayersModel): WeightSpec[] {
  const specs: WeightSpec[] = [];
  for (const layer of model.layers) {
    for (const v of layer.weights) {
      const suffix = suffixOf(v);
      specs.push({ name: `${layer.name}/${suffix}`, layer: layer.name, className: layer.getClassName(), suffix, shape: [...v.shape] as number[] });
    }
  }
  return specs;
}

export function weightSetFromModel(model: tf.LayersModel): Record<string, WeightTensor> {
  const out: Record<string, WeightTensor> = {};
  for (const layer of model.layers) {
    for (const v of layer.weights) {
      const t = v.read();
      out[`${layer.name}/${suffixOf(v)}`] = { shape: [...t.shape], values: Float32Array.from(t.dataSync()) };
    }
  }
  return out;
}

/** Writes a WeightSet into a model of the same architecture (a device's pruned student, typically). */
export function setModelWeights(model: tf.LayersModel, weights: WeightSet): void {
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const values = layer.weights.map((v) => {
      const name = `${layer.name}/${suffixOf(v)}`;
      const t = weights[name];
      if (!t || !sameShape(t.shape, v.shape as number[])) {
        throw new EdgektError('EDGEKT_ERR_UPDATE_SHAPE', `weight ${name}: expected shape [${v.shape.join(',')}], got ${t ? `[${t.shape.join(',')}]` : 'nothing'}`);
      }
      return tf.tensor(t.values, [...t.shape], 'float32');
    });
    try {
      layer.setWeights(values);
    } finally {
      tf.dispose(values);
    }
  }
}

/** Index map of a device pruned by `plans`, relative to the un-pruned `globalModel`. */
export function indexMapForModel(globalModel: tf.LayersModel, plans: readonly PlanLike[], options: GraphOptions = {}): IndexMap {
  return indexMapFromPlans(buildDependencyGraph(globalModel, options), weightSpecsOf(globalModel), plans);
}
