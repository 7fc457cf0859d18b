import { z } from 'zod';
import { EdgektError } from '../core/errors.js';
import { isLayerClass, type LayerClass, type LayerConfig } from './layer-specs.js';

/** One weight as listed in a tfjs `weightsManifest` group. */
export const weightEntrySchema = z.looseObject({
  name: z.string().min(1),
  shape: z.array(z.number().int().nonnegative()),
  dtype: z.string().default('float32'),
  /** tfjs marks optimizer state saved with includeOptimizer as group 'optimizer'. */
  group: z.string().optional(),
  quantization: z
    .looseObject({
      dtype: z.enum(['uint8', 'uint16', 'float16']),
      scale: z.number().finite().optional(),
      min: z.number().finite().optional(),
    })
    .optional(),
});
export type WeightEntry = z.infer<typeof weightEntrySchema>;

export const weightsGroupSchema = z.looseObject({
  paths: z.array(z.string().min(1)).min(1),
  weights: z.array(weightEntrySchema),
});
export type WeightsGroup = z.infer<typeof weightsGroupSchema>;

/** `model.json` as written by tfjs `model.save` and by tensorflowjs_converter (Keras → tfjs layers). */
export const modelJsonSchema = z.looseObject({
  modelTopology: z.record(z.string(), z.unknown()),
  format: z.string().optional(),
  generatedBy: z.string().nullish(),
  convertedBy: z.string().nullish(),
  weightsManifest: z.array(weightsGroupSchema).default([]),
  trainingConfig: z.unknown().optional(),
});
export type ModelJson = z.infer<typeof modelJsonSchema>;

const layerEntrySchema = z.looseObject({
  class_name: z.string().min(1),
  config: z.record(z.string(), z.unknown()),
  name: z.string().optional(),
  inbound_nodes: z.array(z.unknown()).optional(),
});
const kerasModelSchema = z.looseObject({
  class_name: z.string(),
  config: z.union([
    z.array(layerEntrySchema),
    z.looseObject({
      name: z.string().optional(),
      layers: z.array(layerEntrySchema),
      input_layers: z.array(z.unknown()).optional(),
      output_layers: z.array(z.unknown()).optional(),
    }),
  ]),
  keras_version: z.string().optional(),
  backend: z.string().optional(),
});

export interface TopologyLayer {
  name: string;
  className: LayerClass;
  config: LayerConfig;
  /** Names of the layers feeding this one (in argument order). */
  inbound: string[];
}

export interface NormalizedTopology {
  kind: 'sequential' | 'functional';
  name: string;
  /** In topological order; a Sequential model gets its implicit InputLayer first. */
  layers: TopologyLayer[];
  inputs: string[];
  outputs: string[];
  /** Keras-2-style `{class_name, config, keras_version, backend}` that tfjs deserializes. */
  keras: Record<string, unknown>;
}

function formatError(message: string, details: Record<string, unknown> = {}): EdgektError {
  return new EdgektError('EDGEKT_ERR_MODEL_FORMAT', message, details);
}

/** Validates the outer `model.json` object; garbage becomes MODEL_FORMAT, graph models MODEL_UNSUPPORTED. */
export function parseModelJson(value: unknown): ModelJson {
  const r = modelJsonSchema.safeParse(value);
  if (!r.success) throw formatError(`model.json is not a tfjs LayersModel: ${r.error.issues[0]?.message ?? 'invalid'}`, { issues: r.error.issues.slice(0, 5) });
  if (r.data.format !== undefined && r.data.format !== 'layers-model') {
    throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `model format "${r.data.format}" (only layers-model)`);
  }
  return r.data;
}

function fixConfig(className: string, config: LayerConfig): { className: string; config: LayerConfig } {
  const c: LayerConfig = { ...config };
  // Keras 3 spells the input shape batch_shape and serializes dtype policies as objects.
  if (c.batch_shape !== undefined && c.batch_input_shape === undefined) c.batch_input_shape = c.batch_shape;
  delete c.batch_shape;
  if (c.dtype !== undefined && typeof c.dtype !== 'string') c.dtype = 'float32';
  // Keras writes BatchNormalization axis as a one-element list; tfjs wants a number.
  if (className === 'BatchNormalization' && Array.isArray(c.axis) && c.axis.length === 1) c.axis = c.axis[0];
  if (className === 'ReLU6') return { className: 'ReLU', config: { ...c, max_value: 6 } };
  if (className === 'LeakyReLU' && c.alpha === undefined && typeof c.negative_slope === 'number') {
    c.alpha = c.negative_slope;
    delete c.negative_slope;
  }
  return { className, config: c };
}

function checkClass(name: string, className: string, config: LayerConfig): LayerClass {
  if (!isLayerClass(className)) {
    throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `layer ${name}: class ${className} is not supported`, { layer: name, className });
  }
  if (className === 'ReLU') {
    for (const k of ['negative_slope', 'threshold'] as const) {
      const v = config[k];
      if (v !== undefined && v !== null && v !== 0) throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `layer ${name}: ReLU ${k} ${String(v)}`);
    }
  }
  return className;
}

/** Reads one inbound reference in Keras 2 (`[name, node, tensor, kwargs]`) or Keras 3 (`__keras_tensor__`) form. */
function inboundRefs(layer: string, nodes: unknown[]): string[] {
  if (nodes.length === 0) return [];
  if (nodes.length > 1) throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `layer ${layer}: shared layers (called ${nodes.length} times)`);
  const node = nodes[0];
  const refs: string[] = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      if (typeof v[0] === 'string' && typeof v[1] === 'number') {
        if (v[2] !== 0 && v[2] !== undefined) throw formatError(`layer ${layer}: multi-output inbound ${JSON.stringify(v)}`);
        refs.push(v[0]);
      } else v.forEach(visit);
      return;
    }
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (o.class_name === '__keras_tensor__') {
        const hist = (o.config as Record<string, unknown> | undefined)?.keras_history;
        if (Array.isArray(hist) && typeof hist[0] === 'string') refs.push(hist[0]);
        else throw formatError(`layer ${layer}: bad keras_history`);
        return;
      }
      if ('args' in o) visit(o.args);
    }
  };
  visit(node);
  if (refs.length === 0) throw formatError(`layer ${layer}: inbound_nodes names no layer`);
  return refs;
}

function ioNames(v: unknown, what: string): string[] {
  if (!Array.isArray(v)) throw formatError(`functional model without ${what}`);
  // Either [[name, 0, 0], ...] or a single [name, 0, 0] (Keras 3 for one tensor).
  const list = typeof v[0] === 'string' ? [v] : v;
  return list.map((x) => {
    if (!Array.isArray(x) || typeof x[0] !== 'string') throw formatError(`bad ${what} entry ${JSON.stringify(x)}`);
    return x[0];
  });
}

/**
 * Normalizes a `modelTopology` (tfjs, Keras 2 or Keras 3 converter output, with or without the
 * `model_config` wrapper) into one shape the graph and tfjs both read. Refuses unsupported layer
 * classes, shared layers and nested models before anything is allocated.
 */
export function normalizeTopology(modelTopology: Record<string, unknown>): NormalizedTopology {
  const inner = modelTopology.model_config ?? modelTopology;
  const r = kerasModelSchema.safeParse(inner);
  if (!r.success) throw formatError(`modelTopology is not a Keras model config: ${r.error.issues[0]?.message ?? 'invalid'}`);
  const { class_name: cls, config } = r.data;
  const kerasVersion = r.data.keras_version ?? (modelTopology.keras_version as string | undefined) ?? 'tfjs-layers';
  const backend = r.data.backend ?? (modelTopology.backend as string | undefined) ?? 'tensor_flow.js';
  const entries = Array.isArray(config) ? config : config.layers;
  const name = (!Array.isArray(config) && config.name) || 'model';
  const seen = new Set<string>();
  const layers: TopologyLayer[] = [];
  const kerasLayers: Record<string, unknown>[] = [];

  if (cls === 'Sequential') {
    let prev: string | undefined;
    entries.forEach((e, i) => {
      const fixed = fixConfig(e.class_name, e.config);
      const lname = typeof fixed.config.name === 'string' ? fixed.config.name : e.name ?? `layer_${i}`;
      const className = checkClass(lname, fixed.className, fixed.config);
      if (prev === undefined && className !== 'InputLayer') {
        const bis = fixed.config.batch_input_shape;
        if (!Array.isArray(bis)) throw formatError(`first layer ${lname} declares no input shape`);
        prev = `${lname}_input`;
        layers.push({ name: prev, className: 'InputLayer', config: { name: prev, batch_input_shape: bis }, inbound: [] });
      }
      if (className === 'InputLayer' && prev !== undefined) throw formatError(`InputLayer ${lname} in the middle of a Sequential model`);
      if (seen.has(lname)) throw formatError(`duplicate layer name ${lname}`);
      seen.add(lname);
      layers.push({ name: lname, className, config: { ...fixed.config, name: lname }, inbound: prev === undefined ? [] : [prev] });
      kerasLayers.push({ class_name: className, config: { ...fixed.config, name: lname } });
      prev = lname;
    });
    if (prev === undefined) throw formatError('Sequential model without layers');
    return {
      kind: 'sequential', name, layers, inputs: [layers[0]!.name], outputs: [prev],
      keras: { class_name: 'Sequential', config: { name, layers: kerasLayers }, keras_version: kerasVersion, backend },
    };
  }
  if (cls !== 'Model' && cls !== 'Functional') {
    throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `model class ${cls} (only Sequential and functional models)`);
  }
  if (Array.isArray(config)) throw formatError('functional model config must be an object');
  for (const e of entries) {
    const fixed = fixConfig(e.class_name, e.config);
    const lname = e.name ?? (typeof fixed.config.name === 'string' ? fixed.config.name : undefined);
    if (!lname) throw formatError('functional layer without a name');
    const className = checkClass(lname, fixed.className, fixed.config);
    if (seen.has(lname)) throw formatError(`duplicate layer name ${lname}`);
    const inbound = inboundRefs(lname, e.inbound_nodes ?? []);
    for (const ref of inbound) if (!seen.has(ref)) throw formatError(`layer ${lname} uses ${ref} before it is defined`);
    if (className === 'InputLayer' ? inbound.length > 0 : inbound.length === 0) throw formatError(`layer ${lname} has wrong inbound nodes`);
    seen.add(lname);
    const cfgOut = { ...fixed.config, name: lname };
    layers.push({ name: lname, className, config: cfgOut, inbound });
    kerasLayers.push({
      name: lname, class_name: className, config: cfgOut,
      inbound_nodes: inbound.length ? [inbound.map((n) => [n, 0, 0, {}])] : [],
    });
  }
  const inputs = ioNames(config.input_layers, 'input_layers');
  const outputs = ioNames(config.output_layers, 'output_layers');
  for (const n of [...inputs, ...outputs]) if (!seen.has(n)) throw formatError(`model input/output ${n} is not a layer`);
  if (inputs.length !== 1 || outputs.length !== 1) {
    throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `models with ${inputs.length} inputs and ${outputs.length} outputs (only one of each)`);
  }
  return {
    kind: 'functional', name, layers, inputs, outputs,
    keras: {
      class_name: 'Model',
      config: { name, layers: kerasLayers, input_layers: inputs.map((n) => [n, 0, 0]), output_layers: outputs.map((n) => [n, 0, 0]) },
      keras_version: kerasVersion, backend,
    },
  };
}
