import * as tf from '@tensorflow/tfjs';
import { buildGraph, graphFromModel, softmaxTail } from './graph.js';
import type { NormalizedTopology } from './model-json.js';

/**
 * The same topology without its final softmax: a trailing Softmax / Activation('softmax') layer is
 * removed, a Dense with fused softmax becomes linear. Weight names are unchanged, so the original
 * weights load into it. Returns the input unchanged when there is no softmax.
 */
export function stripSoftmax(topo: NormalizedTopology): { topology: NormalizedTopology; hadSoftmax: boolean } {
  const tail = softmaxTail(buildGraph(topo));
  if (!tail) return { topology: topo, hadSoftmax: false };
  const cfg = topo.keras.config as { layers: Array<Record<string, unknown>>; output_layers?: unknown[] };
  if (tail.fused) {
    const patch = (c: Record<string, unknown>) => (c.name === tail.layer ? { ...c, activation: 'linear' } : c);
    const layers = topo.layers.map((l) => ({ ...l, config: patch(l.config) }));
    const kerasLayers = cfg.layers.map((l) => ({ ...l, config: patch(l.config as Record<string, unknown>) }));
    return { topology: { ...topo, layers, keras: { ...topo.keras, config: { ...cfg, layers: kerasLayers } } }, hadSoftmax: true };
  }
  const removed = topo.layers.find((l) => l.name === tail.layer)!;
  const newOut = removed.inbound[0]!;
  const layers = topo.layers.filter((l) => l.name !== tail.layer);
  const kerasLayers = cfg.layers.filter((l) => (l.name ?? (l.config as Record<string, unknown>).name) !== tail.layer);
  const config = topo.kind === 'functional' ? { ...cfg, layers: kerasLayers, output_layers: [[newOut, 0, 0]] } : { ...cfg, layers: kerasLayers };
  return { topology: { ...topo, layers, outputs: [newOut], keras: { ...topo.keras, config } }, hadSoftmax: true };
}

export interface LogitsModel {
  model: tf.LayersModel;
  hadSoftmax: boolean;
  /**
   * True when `model` is a view over the original's layers (training it trains the original).
   * Never dispose a shared view: that disposes the original's weights; dispose the original.
   * When false, `model` is an independent copy (fused Dense softmax) the caller must dispose.
   */
  sharesWeights: boolean;
}

/**
 * A model that outputs logits (pre-softmax) for distillation: KL with temperature needs them.
 * A separate softmax layer is skipped by a view sharing the weights; a Dense with fused softmax
 * forces a copy with a linear Dense (the teacher is frozen, so a copy is fine there).
 */
export async function logitsModel(model: tf.LayersModel): Promise<LogitsModel> {
  const graph = graphFromModel(model);
  const tail = softmaxTail(graph);
  if (!tail) return { model, hadSoftmax: false, sharesWeights: true };
  if (!tail.fused) {
    const inner = model.getLayer(tail.layer).input as tf.SymbolicTensor;
    return { model: tf.model({ inputs: model.inputs, outputs: inner, name: `${model.name}_logits` }), hadSoftmax: true, sharesWeights: true };
  }
  const { topology } = stripSoftmax(graph.topology);
  const copy = (await tf.models.modelFromJSON({ modelTopology: topology.keras as tf.io.ModelJSON['modelTopology'] })) as tf.LayersModel;
  copy.setWeights(model.getWeights());
  return { model: copy, hadSoftmax: true, sharesWeights: false };
}

/**
 * A view over `model` with several outputs: the named layers' outputs (hint points), then the
 * model's final output. Shares weights (see LogitsModel.sharesWeights about disposal).
 */
export function featureModel(model: tf.LayersModel, layerNames: string[], finalOutput: tf.SymbolicTensor = model.outputs[0]!): tf.LayersModel {
  const outs = layerNames.map((n) => model.getLayer(n).output as tf.SymbolicTensor);
  return tf.model({ inputs: model.inputs, outputs: [...outs, finalOutput], name: `${model.name}_features` });
}
