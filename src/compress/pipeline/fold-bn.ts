import * as tf from '@tensorflow/tfjs';
import { depthMultiplierOf } from '../../model/dependency-graph.js';

const PRODUCERS = new Set(['Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'Dense']);
const FUSABLE_ACTIVATIONS = new Set(['relu', 'relu6']);

type JsonLayer = { class_name: string; name?: string; config: Record<string, unknown>; inbound_nodes?: unknown };

interface Fold {
  producer: string;
  bn: string;
  /** Activation layer whose function moves into the producer (tfjs fuses conv/matmul + relu). */
  act: string | null;
  activation: string | null;
}

function onlyConsumer(layer: tf.layers.Layer): tf.layers.Layer | null {
  const out = layer.outboundNodes;
  return out.length === 1 ? out[0]!.outboundLayer : null;
}

function findFolds(model: tf.LayersModel): Fold[] {
  const outputs = new Set(model.outputLayers.map((l) => l.name));
  const folds: Fold[] = [];
  for (const p of model.layers) {
    const cls = p.getClassName();
    const cfg = p.getConfig() as Record<string, unknown>;
    if (!PRODUCERS.has(cls) || (cfg.activation ?? 'linear') !== 'linear' || outputs.has(p.name)) continue;
    if (cls === 'DepthwiseConv2D' && depthMultiplierOf(p) !== 1) continue;
    const bn = onlyConsumer(p);
    if (!bn || bn.getClassName() !== 'BatchNormalization' || outputs.has(bn.name)) continue;
    const axis = (bn.getConfig() as Record<string, unknown>).axis;
    if (!(axis === -1 || axis === p.outputShape.length - 1)) continue;
    const a = onlyConsumer(bn);
    const aCfg = a ? (a.getConfig() as Record<string, unknown>) : {};
    const fusable = a && !outputs.has(a.name) && a.getClassName() === 'Activation' && FUSABLE_ACTIVATIONS.has(String(aCfg.activation));
    folds.push({ producer: p.name, bn: bn.name, act: fusable ? a.name : null, activation: fusable ? String(aCfg.activation) : null });
  }
  return folds;
}

/** Activations f with f(g(x)) = g(x) for the activation g that feeds them (ReLU after ReLU or ReLU6, ReLU6 after ReLU6). */
function idempotentAfter(outer: string, inner: string): boolean {
  return (outer === 'relu' && (inner === 'relu' || inner === 'relu6')) || (outer === 'relu6' && inner === 'relu6');
}

/**
 * Activation layers that repeat the activation already applied by their only input (after folding, a
 * conv with a fused ReLU followed by another ReLU: what `lighten --depth` leaves when it drops the
 * conv before a stage's last ReLU). They compute the identity; each still costs an op at batch 1.
 * Returns removed layer → the layer whose output replaces it.
 */
function findRedundantActivations(model: tf.LayersModel, folds: readonly Fold[], folded: ReadonlyMap<string, string>): Map<string, string> {
  const outputs = new Set(model.outputLayers.map((l) => l.name));
  const activationOf = new Map<string, string>(); // producer → its activation once folded
  for (const f of folds) if (f.activation) activationOf.set(f.producer, f.activation);
  const redundant = new Map<string, string>();
  for (const l of model.layers) {
    if (l.getClassName() !== 'Activation' || outputs.has(l.name) || folded.has(l.name)) continue;
    const inbound = l.inboundNodes[0]?.inboundLayers ?? [];
    if (inbound.length !== 1) continue;
    const src = inbound[0]!.name;
    // The layer now producing the input: a fold's producer, or what replaced an earlier redundant activation.
    const producer = redundant.get(src) ?? folded.get(src) ?? src;
    const inner = activationOf.get(producer) ?? String((model.getLayer(producer).getConfig() as Record<string, unknown>).activation ?? 'linear');
    if (idempotentAfter(String((l.getConfig() as Record<string, unknown>).activation), inner)) redundant.set(l.name, producer);
  }
  return redundant;
}

function weightBySuffix(layer: tf.layers.Layer, suffix: string): tf.Tensor | null {
  const v = layer.weights.find((w) => w.originalName.split('/').pop() === suffix);
  return v ? v.read() : null;
}

/** Folded kernel and bias of one producer: W·s on the output axis, (b − mean)·s + beta. */
function foldedWeights(p: tf.layers.Layer, bn: tf.layers.Layer): tf.Tensor[] {
  return tf.tidy(() => {
    const eps = Number((bn.getConfig() as Record<string, unknown>).epsilon ?? 1e-3);
    const mean = weightBySuffix(bn, 'moving_mean')!;
    const variance = weightBySuffix(bn, 'moving_variance')!;
    const gamma = weightBySuffix(bn, 'gamma') ?? tf.onesLike(mean);
    const beta = weightBySuffix(bn, 'beta') ?? tf.zerosLike(mean);
    const s = gamma.div(variance.add(eps).sqrt());
    const cls = p.getClassName();
    const bias = weightBySuffix(p, 'bias') ?? tf.zerosLike(mean);
    const newBias = bias.sub(mean).mul(s).add(beta);
    if (cls === 'DepthwiseConv2D') {
      const k = weightBySuffix(p, 'depthwise_kernel')!;
      return [k.mul(s.reshape([1, 1, -1, 1])), newBias];
    }
    if (cls === 'SeparableConv2D') {
      const dw = weightBySuffix(p, 'depthwise_kernel')!;
      const pw = weightBySuffix(p, 'pointwise_kernel')!;
      return [dw.clone(), pw.mul(s), newBias];
    }
    const k = weightBySuffix(p, 'kernel')!;
    return [k.mul(s), newBias];
  });
}

/**
 * Deployment form of a trained model: every BatchNormalization right after a conv/dense layer is
 * folded into that layer's kernel and bias, and a following ReLU moves into the layer (tfjs runs
 * conv + bias + ReLU as one fused kernel). Same function (up to float rounding), fewer ops, which
 * is what batch-1 latency of a small student is dominated by. An Activation that repeats the
 * activation its input already applies (ReLU after a fused ReLU) is removed too. Returns a new model.
 */
export async function foldBatchNorm(model: tf.LayersModel): Promise<tf.LayersModel> {
  const folds = findFolds(model);
  const removed = new Map<string, string>(); // removed layer → the layer now producing its output
  const byProducer = new Map(folds.map((f) => [f.producer, f]));
  for (const f of folds) {
    removed.set(f.bn, f.producer);
    if (f.act) removed.set(f.act, f.producer);
  }
  for (const [act, producer] of findRedundantActivations(model, folds, removed)) removed.set(act, producer);
  const topology = model.toJSON(null, false) as { class_name: string; config: { layers: JsonLayer[]; output_layers?: unknown } | JsonLayer[] };
  const cfg = topology.config;
  const layers = Array.isArray(cfg) ? cfg : cfg.layers;
  const kept = layers.filter((l) => !removed.has(String(l.config.name ?? l.name)));
  const rename = (v: unknown): unknown => {
    if (typeof v === 'string') return removed.get(v) ?? v;
    if (Array.isArray(v)) return v.map(rename);
    return v;
  };
  for (const l of kept) {
    const name = String(l.config.name ?? l.name);
    if (l.class_name === 'SeparableConv2D' || l.class_name === 'DepthwiseConv2D') {
      // tfjs 4.22 drops depthMultiplier from getConfig(); restore it before rebuilding.
      l.config.depth_multiplier = depthMultiplierOf(model.getLayer(name));
    }
    const f = byProducer.get(name);
    if (f) {
      l.config.use_bias = true;
      l.config.bias_initializer ??= { class_name: 'Zeros', config: {} };
      if (f.activation) l.config.activation = f.activation;
    }
    if (l.inbound_nodes !== undefined) l.inbound_nodes = rename(l.inbound_nodes);
  }
  if (Array.isArray(cfg)) topology.config = kept;
  else {
    cfg.layers = kept;
    if (cfg.output_layers !== undefined) cfg.output_layers = rename(cfg.output_layers);
  }
  const folded = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
  for (const layer of folded.layers) {
    if (layer.weights.length === 0) continue;
    const f = byProducer.get(layer.name);
    const src = model.getLayer(layer.name);
    const values = f ? foldedWeights(src, model.getLayer(f.bn)) : tf.tidy(() => src.weights.map((w) => w.read().clone()));
    layer.setWeights(values);
    tf.dispose(values);
  }
  return folded;
}
