import { EdgektError } from '../core/errors.js';

/** Layer classes edgekt can load, count, lighten and prune. Anything else is refused up front. */
export const SUPPORTED_LAYER_CLASSES = [
  'InputLayer',
  'Conv2D',
  'DepthwiseConv2D',
  'SeparableConv2D',
  'BatchNormalization',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'Softmax',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'Flatten',
  'Dense',
  'Dropout',
  'Add',
] as const;
export type LayerClass = (typeof SUPPORTED_LAYER_CLASSES)[number];

/** Activations tfjs can deserialize (Keras names). */
export const SUPPORTED_ACTIVATIONS = [
  'linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'elu', 'selu', 'softplus', 'softsign',
  'swish', 'hard_sigmoid', 'mish', 'gelu',
] as const;

/** Shape of one sample (batch dimension removed). */
export type Shape = number[];
export type LayerConfig = Record<string, unknown>;

export interface WeightShape {
  /** Full weight name as tfjs and the manifest spell it: `${layer}/${weight}`. */
  name: string;
  shape: Shape;
  trainable: boolean;
}

export interface LayerFacts {
  outputShape: Shape;
  weights: WeightShape[];
  macs: number;
}

export function isLayerClass(name: string): name is LayerClass {
  return (SUPPORTED_LAYER_CLASSES as readonly string[]).includes(name);
}

function bad(layer: string, message: string): never {
  throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', `layer ${layer}: ${message}`, { layer });
}
function unsupported(layer: string, message: string): never {
  throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `layer ${layer}: ${message}`, { layer });
}

export function pair(layer: string, v: unknown, key: string, dflt?: [number, number]): [number, number] {
  if (v === undefined || v === null) {
    if (dflt) return dflt;
    bad(layer, `missing ${key}`);
  }
  const arr = typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 1 ? [v[0], v[0]] : v;
  if (!Array.isArray(arr) || arr.length !== 2 || !arr.every((x) => Number.isInteger(x) && x > 0)) {
    bad(layer, `${key} must be one or two positive integers`);
  }
  return [arr[0] as number, arr[1] as number];
}

function positiveInt(layer: string, v: unknown, key: string, dflt?: number): number {
  if ((v === undefined || v === null) && dflt !== undefined) return dflt;
  if (!Number.isInteger(v) || (v as number) <= 0) bad(layer, `${key} must be a positive integer`);
  return v as number;
}

function bool(v: unknown, dflt: boolean): boolean {
  return typeof v === 'boolean' ? v : dflt;
}

export function activationOf(layer: string, v: unknown): string {
  const name = v === undefined || v === null ? 'linear' : v;
  if (typeof name !== 'string') unsupported(layer, 'activation must be a built-in name');
  if (!(SUPPORTED_ACTIVATIONS as readonly string[]).includes(name)) unsupported(layer, `activation "${name}" is not supported`);
  return name;
}

function padding(layer: string, v: unknown): 'same' | 'valid' {
  const p = v ?? 'valid';
  if (p !== 'same' && p !== 'valid') unsupported(layer, `padding "${String(p)}" is not supported`);
  return p;
}

function channelsLast(layer: string, cfg: LayerConfig): void {
  const f = cfg.data_format;
  if (f !== undefined && f !== null && f !== 'channels_last') unsupported(layer, `data_format ${String(f)} (only channels_last)`);
}

function spatialOut(layer: string, size: number, k: number, s: number, d: number, pad: 'same' | 'valid'): number {
  const out = pad === 'same' ? Math.ceil(size / s) : Math.floor((size - (k - 1) * d - 1) / s) + 1;
  if (out < 1) bad(layer, `window ${k} (dilation ${d}) does not fit input size ${size}`);
  return out;
}

function image(layer: string, input: Shape): [number, number, number] {
  if (input.length !== 3) bad(layer, `expects an image input [h, w, c], got [${input.join(', ')}]`);
  return input as [number, number, number];
}

export function convGeometry(layer: string, cfg: LayerConfig, input: Shape) {
  channelsLast(layer, cfg);
  const [h, w, c] = image(layer, input);
  const [kh, kw] = pair(layer, cfg.kernel_size, 'kernel_size');
  const [sh, sw] = pair(layer, cfg.strides, 'strides', [1, 1]);
  const [dh, dw] = pair(layer, cfg.dilation_rate, 'dilation_rate', [1, 1]);
  if ((sh > 1 || sw > 1) && (dh > 1 || dw > 1)) unsupported(layer, 'strides > 1 together with dilation > 1');
  const pad = padding(layer, cfg.padding);
  const ho = spatialOut(layer, h, kh, sh, dh, pad);
  const wo = spatialOut(layer, w, kw, sw, dw, pad);
  return { h, w, c, kh, kw, sh, sw, ho, wo, pad };
}

/**
 * Output shape, expected weights and MACs (multiply-accumulates per sample; conv and dense only)
 * of one layer, from its Keras config and input shapes alone, so a model can be checked before
 * any tensor exists. Throws MODEL_FORMAT / MODEL_UNSUPPORTED with the layer name.
 */
export function layerFacts(cls: LayerClass, name: string, cfg: LayerConfig, inputs: Shape[]): LayerFacts {
  const w = (n: string, shape: Shape, trainable = true): WeightShape => ({ name: `${name}/${n}`, shape, trainable });
  if (cls !== 'Add' && cls !== 'InputLayer' && inputs.length !== 1) bad(name, `expects one input, got ${inputs.length}`);
  const input = inputs[0] ?? [];
  switch (cls) {
    case 'InputLayer':
      return { outputShape: input, weights: [], macs: 0 };
    case 'Conv2D': {
      const g = convGeometry(name, cfg, input);
      const filters = positiveInt(name, cfg.filters, 'filters');
      if (cfg.groups !== undefined && cfg.groups !== null && cfg.groups !== 1) unsupported(name, 'grouped convolution');
      activationOf(name, cfg.activation);
      const weights = [w('kernel', [g.kh, g.kw, g.c, filters])];
      if (bool(cfg.use_bias, true)) weights.push(w('bias', [filters]));
      return { outputShape: [g.ho, g.wo, filters], weights, macs: g.ho * g.wo * g.kh * g.kw * g.c * filters };
    }
    case 'DepthwiseConv2D': {
      const g = convGeometry(name, cfg, input);
      const dm = positiveInt(name, cfg.depth_multiplier, 'depth_multiplier', 1);
      activationOf(name, cfg.activation);
      const weights = [w('depthwise_kernel', [g.kh, g.kw, g.c, dm])];
      if (bool(cfg.use_bias, true)) weights.push(w('bias', [g.c * dm]));
      return { outputShape: [g.ho, g.wo, g.c * dm], weights, macs: g.ho * g.wo * g.kh * g.kw * g.c * dm };
    }
    case 'SeparableConv2D': {
      const g = convGeometry(name, cfg, input);
      const dm = positiveInt(name, cfg.depth_multiplier, 'depth_multiplier', 1);
      const filters = positiveInt(name, cfg.filters, 'filters');
      activationOf(name, cfg.activation);
      const weights = [w('depthwise_kernel', [g.kh, g.kw, g.c, dm]), w('pointwise_kernel', [1, 1, g.c * dm, filters])];
      if (bool(cfg.use_bias, true)) weights.push(w('bias', [filters]));
      const macs = g.ho * g.wo * (g.kh * g.kw * g.c * dm + g.c * dm * filters);
      return { outputShape: [g.ho, g.wo, filters], weights, macs };
    }
    case 'BatchNormalization': {
      const axis = Array.isArray(cfg.axis) && cfg.axis.length === 1 ? cfg.axis[0] : (cfg.axis ?? -1);
      if (axis !== -1 && axis !== input.length) unsupported(name, `axis ${JSON.stringify(cfg.axis)} (only the channel axis)`);
      const c = input[input.length - 1];
      if (c === undefined) bad(name, 'needs an input with a channel axis');
      const weights: WeightShape[] = [];
      if (bool(cfg.scale, true)) weights.push(w('gamma', [c]));
      if (bool(cfg.center, true)) weights.push(w('beta', [c]));
      weights.push(w('moving_mean', [c], false), w('moving_variance', [c], false));
      return { outputShape: input, weights, macs: 0 };
    }
    case 'Activation':
      activationOf(name, cfg.activation);
      return { outputShape: input, weights: [], macs: 0 };
    case 'ReLU':
    case 'LeakyReLU':
    case 'Dropout':
      return { outputShape: input, weights: [], macs: 0 };
    case 'Softmax': {
      const axis = cfg.axis ?? -1;
      if (axis !== -1 && axis !== input.length && !(Array.isArray(axis) && axis.length === 1 && axis[0] === -1)) {
        unsupported(name, 'softmax over a non-last axis');
      }
      return { outputShape: input, weights: [], macs: 0 };
    }
    case 'MaxPooling2D':
    case 'AveragePooling2D': {
      channelsLast(name, cfg);
      const [h, wd, c] = image(name, input);
      const [ph, pw] = pair(name, cfg.pool_size, 'pool_size', [2, 2]);
      const [sh, sw] = pair(name, cfg.strides, 'strides', [ph, pw]);
      const pad = padding(name, cfg.padding);
      return { outputShape: [spatialOut(name, h, ph, sh, 1, pad), spatialOut(name, wd, pw, sw, 1, pad), c], weights: [], macs: 0 };
    }
    case 'GlobalAveragePooling2D':
    case 'GlobalMaxPooling2D': {
      channelsLast(name, cfg);
      const [, , c] = image(name, input);
      return { outputShape: cfg.keepdims === true ? [1, 1, c] : [c], weights: [], macs: 0 };
    }
    case 'Flatten':
      return { outputShape: [input.reduce((a, b) => a * b, 1)], weights: [], macs: 0 };
    case 'Dense': {
      const units = positiveInt(name, cfg.units, 'units');
      activationOf(name, cfg.activation);
      const fanIn = input[input.length - 1];
      if (fanIn === undefined) bad(name, 'needs an input with at least one axis');
      const weights = [w('kernel', [fanIn, units])];
      if (bool(cfg.use_bias, true)) weights.push(w('bias', [units]));
      const rows = input.slice(0, -1).reduce((a, b) => a * b, 1);
      return { outputShape: [...input.slice(0, -1), units], weights, macs: rows * fanIn * units };
    }
    case 'Add': {
      if (inputs.length < 2) bad(name, 'Add needs at least two inputs');
      const first = JSON.stringify(input);
      if (!inputs.every((s) => JSON.stringify(s) === first)) {
        bad(name, `Add inputs differ in shape: ${inputs.map((s) => `[${s.join(',')}]`).join(' vs ')}`);
      }
      return { outputShape: input, weights: [], macs: 0 };
    }
  }
}
