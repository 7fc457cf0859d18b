import { EdgektError } from '../core/errors.js';
import { layerFacts, type LayerClass, type LayerConfig, type Shape, type WeightShape } from './layer-specs.js';
import { normalizeTopology, type NormalizedTopology } from './model-json.js';

export interface GraphNode {
  name: string;
  className: LayerClass;
  /** The layer's Keras (snake_case) config, as in model.json. */
  config: LayerConfig;
  /** Producers of this node's inputs, in argument order. */
  inbound: string[];
  /** Consumers of this node's output. */
  outbound: string[];
  /** Per-sample shapes (batch axis removed). */
  inputShapes: Shape[];
  outputShape: Shape;
  weights: WeightShape[];
  params: number;
  trainableParams: number;
  /** Multiply-accumulates per sample; conv and dense layers only. */
  macs: number;
  /** Float32 elements of this node's output for one sample (what activation memory scales with). */
  activationElements: number;
}

/** Layers sharing one spatial resolution; the hint is where FitNets-style feature losses attach. */
export interface Stage {
  index: number;
  /** [height, width] of every member's output. */
  resolution: [number, number];
  layers: string[];
  /** Last layer (topological order, Dropout skipped) whose output has this resolution. */
  hint: string;
  /** Channels of the hint output. */
  channels: number;
  /** Conv-like layers (Conv2D / DepthwiseConv2D / SeparableConv2D) in this stage, in order. */
  convs: string[];
}

export interface LayerGraph {
  kind: 'sequential' | 'functional';
  name: string;
  /** Topological order (the order of model.json). */
  nodes: GraphNode[];
  input: string;
  output: string;
  inputShape: Shape;
  outputShape: Shape;
  totalParams: number;
  trainableParams: number;
  totalMacs: number;
  /** Largest single activation (elements per sample). */
  peakActivationElements: number;
  stages: Stage[];
  topology: NormalizedTopology;
}

export const CONV_CLASSES: readonly LayerClass[] = ['Conv2D', 'DepthwiseConv2D', 'SeparableConv2D'];

export function getNode(graph: LayerGraph, name: string): GraphNode {
  const n = graph.nodes.find((x) => x.name === name);
  if (!n) throw new EdgektError('EDGEKT_ERR_INTERNAL', `no layer named ${name}`);
  return n;
}

function inputShapeOf(name: string, config: LayerConfig): Shape {
  const bis = config.batch_input_shape;
  if (!Array.isArray(bis) || bis.length < 2) {
    throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', `input ${name} declares no batch_input_shape`, { layer: name });
  }
  const dims = bis.slice(1);
  if (!dims.every((d) => Number.isInteger(d) && (d as number) > 0)) {
    throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `input ${name} must declare every non-batch dimension, got [${bis.map(String).join(', ')}]`, { layer: name });
  }
  return dims as number[];
}

function buildStages(nodes: GraphNode[]): Stage[] {
  const byRes = new Map<string, GraphNode[]>();
  for (const n of nodes) {
    if (n.outputShape.length !== 3) continue;
    const key = `${n.outputShape[0]}x${n.outputShape[1]}`;
    const list = byRes.get(key) ?? [];
    list.push(n);
    byRes.set(key, list);
  }
  const stages: Stage[] = [];
  for (const members of byRes.values()) {
    const convs = members.filter((n) => CONV_CLASSES.includes(n.className)).map((n) => n.name);
    if (convs.length === 0) continue; // only the input (or a pooled tensor) lives here: nothing to hint
    const candidates = members.filter((n) => n.className !== 'Dropout' && n.className !== 'InputLayer');
    const hint = candidates[candidates.length - 1]!;
    stages.push({
      index: stages.length,
      resolution: [hint.outputShape[0]!, hint.outputShape[1]!],
      layers: members.map((n) => n.name),
      hint: hint.name,
      channels: hint.outputShape[2]!,
      convs,
    });
  }
  return stages;
}

/**
 * Builds the layer graph from a topology alone (no tensors): shapes, weights, parameters, MACs and
 * stages, so a teacher can be checked and priced before it is allocated and the student derived
 * from it. Throws MODEL_FORMAT / MODEL_UNSUPPORTED.
 */
export function buildGraph(topology: NormalizedTopology | Record<string, unknown>): LayerGraph {
  const topo = 'layers' in topology && 'keras' in topology ? (topology as NormalizedTopology) : normalizeTopology(topology);
  const nodes: GraphNode[] = [];
  const index = new Map<string, GraphNode>();
  for (const l of topo.layers) {
    const inputShapes = l.className === 'InputLayer' ? [inputShapeOf(l.name, l.config)] : l.inbound.map((n) => index.get(n)!.outputShape);
    const facts = layerFacts(l.className, l.name, l.config, inputShapes);
    const count = (ws: WeightShape[]) => ws.reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0);
    const node: GraphNode = {
      name: l.name, className: l.className, config: l.config, inbound: [...l.inbound], outbound: [],
      inputShapes: l.className === 'InputLayer' ? [] : inputShapes,
      outputShape: facts.outputShape, weights: facts.weights,
      params: count(facts.weights), trainableParams: count(facts.weights.filter((w) => w.trainable)),
      macs: facts.macs, activationElements: facts.outputShape.reduce((a, b) => a * b, 1),
    };
    for (const src of l.inbound) index.get(src)!.outbound.push(l.name);
    nodes.push(node);
    index.set(l.name, node);
  }
  const input = index.get(topo.inputs[0]!)!;
  const output = index.get(topo.outputs[0]!)!;
  return {
    kind: topo.kind, name: topo.name, nodes, input: input.name, output: output.name,
    inputShape: input.outputShape, outputShape: output.outputShape,
    totalParams: nodes.reduce((a, n) => a + n.params, 0),
    trainableParams: nodes.reduce((a, n) => a + n.trainableParams, 0),
    totalMacs: nodes.reduce((a, n) => a + n.macs, 0),
    peakActivationElements: nodes.reduce((a, n) => Math.max(a, n.activationElements), 0),
    stages: buildStages(nodes),
    topology: topo,
  };
}

/** Graph of a live tfjs model (e.g. after pruning surgery), through its own serialization. */
export function graphFromModel(model: { toJSON: (unused?: null, returnString?: boolean) => unknown }): LayerGraph {
  return buildGraph(model.toJSON(null, false) as Record<string, unknown>);
}

/** Where the softmax sits, if the model ends in one; the logits are that layer's input (or pre-activation). */
export function softmaxTail(graph: LayerGraph): { layer: string; fused: boolean } | null {
  const out = getNode(graph, graph.output);
  if (out.className === 'Softmax' || (out.className === 'Activation' && out.config.activation === 'softmax')) {
    return { layer: out.name, fused: false };
  }
  if (out.className === 'Dense' && out.config.activation === 'softmax') return { layer: out.name, fused: true };
  return null;
}
