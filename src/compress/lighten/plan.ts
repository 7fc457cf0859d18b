import { EdgektError } from '../../core/errors.js';
import { createRng } from '../../core/random.js';
import { CONV_CLASSES, getNode, pair, softmaxTail, type GraphNode, type LayerConfig, type LayerGraph } from '../../model/index.js';
import { ChannelGroups, scaleChannels } from './channels.js';

export interface LightenOptions {
  /** Channel width of the student relative to the teacher (default 0.5). */
  widthMultiplier?: number;
  /**
   * Convolutions kept per stage (default: all): one count for every stage, or one per stage (the
   * last entry repeats for further stages). The first `depth` convs of each stage are kept; later
   * ones are dropped only when that keeps shapes (stride 1, same channels in and out), so
   * downsampling and channel-changing convs always stay. Batch-1 latency of a small student is
   * dominated by its op count, so dropping a conv of the high-resolution first stage buys more
   * latency than any channel cut (docs/benchmarks.md, "student latency vs depth").
   */
  depth?: number | readonly number[];
  /** Floor for scaled channel counts (default 8, never above the teacher's own count). */
  minChannels?: number;
  /** Scaled channel counts are rounded to a multiple of this (default 1). */
  channelDivisor?: number;
  /** Seed of every initializer in the student (default 0). */
  seed?: number;
  /** Keep the teacher's Dropout layers in the body (default false: KD already regularizes). */
  keepDropout?: boolean;
  /**
   * Keep convs that read the model input as standard (width-scaled) k×k convs (default true): a
   * depthwise filter over 1–3 image channels is too weak a first layer (MobileNet keeps it too).
   */
  keepInputConv?: boolean;
  /** End the student with a separate softmax layer (default: when the teacher ends in softmax). */
  softmax?: boolean;
}

/** A student derived from a teacher's topology, before any tensor exists. */
export interface StudentPlan {
  /** Functional Keras JSON `{class_name: 'Model', config, ...}` for tf.models.modelFromJSON. */
  keras: Record<string, unknown>;
  /** Student layer producing the logits (the last Dense). */
  logitsLayer: string;
  /** Student layer ending in softmax, if any (a separate layer, so a logits view shares weights). */
  softmaxLayer: string | null;
  /** Teacher conv layers removed by `depth`. */
  droppedConvs: string[];
}

interface Emitted {
  name: string;
  class_name: string;
  config: LayerConfig;
  inbound_nodes: unknown[];
}

const PASS_THROUGH = new Set(['BatchNormalization', 'Activation', 'ReLU', 'LeakyReLU', 'Dropout', 'Softmax', 'MaxPooling2D', 'AveragePooling2D']);

function ancestors(graph: LayerGraph, name: string): Set<string> {
  const seen = new Set<string>([name]);
  const stack = [name];
  while (stack.length) for (const p of getNode(graph, stack.pop()!).inbound) if (!seen.has(p)) (seen.add(p), stack.push(p));
  return seen;
}

/** The last rank-3 (feature map) node feeding the output: where the student's head attaches. */
function lastFeature(graph: LayerGraph): GraphNode {
  const up = ancestors(graph, graph.output);
  const feats = graph.nodes.filter((n) => up.has(n.name) && n.outputShape.length === 3 && n.className !== 'InputLayer');
  const last = feats[feats.length - 1];
  if (!last) throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', 'teacher has no convolutional feature map to lighten');
  return last;
}

function stridesOf(n: GraphNode): [number, number] {
  return pair(n.name, n.config.strides, 'strides', [1, 1]);
}

/**
 * Derives the student topology from the teacher graph (pure: no tensors), so its cost is known
 * before allocation. Rules (see LightenOptions): k×k conv → depthwise k×k + BN + activation +
 * pointwise 1×1; head → global average pooling + one Dense; residual Adds kept with consistent
 * channel counts.
 */
export function planStudent(teacher: LayerGraph, options: LightenOptions = {}): StudentPlan {
  const width = options.widthMultiplier ?? 0.5;
  if (!(width > 0 && width <= 4)) throw new EdgektError('EDGEKT_ERR_USAGE', `width multiplier must be in (0, 4], got ${width}`);
  const depths = typeof options.depth === 'number' ? [options.depth] : options.depth ?? [Infinity];
  if (depths.length === 0 || !depths.every((d) => d >= 1)) throw new EdgektError('EDGEKT_ERR_USAGE', `depth must be at least 1 per stage, got ${JSON.stringify(options.depth)}`);
  const depthOf = (stage: number): number => depths[Math.min(stage, depths.length - 1)]!;
  const minCh = options.minChannels ?? 8;
  const divisor = options.channelDivisor ?? 1;
  if (teacher.outputShape.length !== 1) {
    throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `teacher output [${teacher.outputShape.join(', ')}] is not a class vector`);
  }
  const classes = teacher.outputShape[0]!;
  const rng = createRng(options.seed ?? 0);
  const init = () => ({ class_name: 'VarianceScaling', config: { scale: 1, mode: 'fan_avg', distribution: 'uniform', seed: Math.floor(rng() * 2 ** 31) || 1 } }); // tfjs treats seed 0 as unseeded

  const feature = lastFeature(teacher);
  const body = ancestors(teacher, feature.name);
  const nodes = teacher.nodes.filter((n) => body.has(n.name));

  // Pass 1: channel groups of the teacher tensors as the student will have them.
  const groups = new ChannelGroups((c) => scaleChannels(c, width, minCh, divisor));
  const groupOf = new Map<string, number>();
  for (const n of nodes) {
    const inG = n.inbound.map((i) => groupOf.get(i)!);
    let g: number;
    if (n.className === 'InputLayer') g = groups.pinned(n.outputShape[2] ?? n.outputShape[n.outputShape.length - 1]!);
    else if (n.className === 'Conv2D' || n.className === 'SeparableConv2D') g = groups.scaled(n.outputShape[2]!);
    else if (n.className === 'DepthwiseConv2D') g = groups.derived(inG[0]!, Number(n.config.depth_multiplier ?? 1));
    else if (n.className === 'Add') g = groups.union(inG, n.name);
    else if (PASS_THROUGH.has(n.className)) g = inG[0]!;
    else throw new EdgektError('EDGEKT_ERR_MODEL_UNSUPPORTED', `layer ${n.name} (${n.className}) inside the feature extractor cannot be lightened`);
    groupOf.set(n.name, g);
  }
  const ch = (name: string) => groups.size(groupOf.get(name)!);

  // Which convs `depth` removes: beyond the first `depth` of a stage, shape-preserving only.
  const dropped = new Set<string>();
  teacher.stages.forEach((stage, s) => {
    const depth = depthOf(s);
    stage.convs.filter((c) => body.has(c)).forEach((c, i) => {
      const n = getNode(teacher, c);
      const [sh, sw] = stridesOf(n);
      const src = n.inbound[0]!;
      if (i >= depth && sh === 1 && sw === 1 && ch(src) === ch(c) && getNode(teacher, src).outputShape.join() === n.outputShape.join()) dropped.add(c);
    });
  });
  // A dropped conv takes its private BN / activation chain with it.
  for (const c of [...dropped]) {
    let cur = getNode(teacher, c);
    while (cur.outbound.length === 1) {
      const next = getNode(teacher, cur.outbound[0]!);
      if (!['BatchNormalization', 'Activation', 'ReLU', 'LeakyReLU', 'Dropout'].includes(next.className) || next.name === feature.name) break;
      dropped.add(next.name);
      cur = next;
    }
  }

  // Pass 2: emit student layers.
  const used = new Set(teacher.nodes.map((n) => n.name));
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; used.has(name); i++) name = `${base}_${i}`;
    used.add(name);
    return name;
  };
  const out = new Map<string, string>(); // teacher node → student tensor (layer name)
  const layers: Emitted[] = [];
  const emit = (name: string, class_name: string, config: LayerConfig, inputs: string[]): string => {
    layers.push({ name, class_name, config: { ...config, name }, inbound_nodes: inputs.length ? [inputs.map((i) => [i, 0, 0, {}])] : [] });
    return name;
  };
  const droppedConvs: string[] = [];
  for (const n of nodes) {
    const inputs = n.inbound.map((i) => out.get(i)!);
    const x = inputs[0]!;
    if (dropped.has(n.name) || (n.className === 'Dropout' && !options.keepDropout)) {
      if (CONV_CLASSES.includes(n.className)) droppedConvs.push(n.name);
      out.set(n.name, x);
      continue;
    }
    const c = n.config;
    switch (n.className) {
      case 'InputLayer':
        out.set(n.name, emit(n.name, 'InputLayer', { batch_input_shape: [null, ...n.outputShape], dtype: 'float32', sparse: false }, []));
        break;
      case 'Conv2D': {
        const [kh, kw] = pair(n.name, c.kernel_size, 'kernel_size');
        const act = typeof c.activation === 'string' ? c.activation : 'linear';
        const useBias = c.use_bias !== false;
        const conv = { strides: stridesOf(n), padding: c.padding ?? 'valid', dilation_rate: c.dilation_rate ?? [1, 1], data_format: 'channels_last' };
        const fromInput = getNode(teacher, n.inbound[0]!).className === 'InputLayer' && options.keepInputConv !== false;
        if ((kh === 1 && kw === 1) || fromInput) {
          out.set(n.name, emit(n.name, 'Conv2D', { ...conv, filters: ch(n.name), kernel_size: [kh, kw], activation: act, use_bias: useBias, kernel_initializer: init(), bias_initializer: { class_name: 'Zeros', config: {} } }, [x]));
          break;
        }
        const dw = emit(fresh(`${n.name}_dw`), 'DepthwiseConv2D', { ...conv, kernel_size: [kh, kw], depth_multiplier: 1, activation: 'linear', use_bias: false, depthwise_initializer: init() }, [x]);
        const bn = emit(fresh(`${n.name}_dw_bn`), 'BatchNormalization', { axis: -1, momentum: 0.99, epsilon: 1e-3, center: true, scale: true }, [dw]);
        const a = emit(fresh(`${n.name}_dw_act`), 'Activation', { activation: act === 'linear' ? 'relu' : act }, [bn]);
        out.set(n.name, emit(fresh(`${n.name}_pw`), 'Conv2D', { filters: ch(n.name), kernel_size: [1, 1], strides: [1, 1], padding: 'valid', dilation_rate: [1, 1], data_format: 'channels_last', activation: act, use_bias: useBias, kernel_initializer: init(), bias_initializer: { class_name: 'Zeros', config: {} } }, [a]));
        break;
      }
      case 'DepthwiseConv2D':
        out.set(n.name, emit(n.name, 'DepthwiseConv2D', { ...c, depthwise_initializer: init() }, [x]));
        break;
      case 'SeparableConv2D':
        out.set(n.name, emit(n.name, 'SeparableConv2D', { ...c, filters: ch(n.name), depthwise_initializer: init(), pointwise_initializer: init() }, [x]));
        break;
      case 'Add': {
        const distinct = [...new Set(inputs)];
        out.set(n.name, distinct.length === 1 ? distinct[0]! : emit(n.name, 'Add', {}, inputs));
        break;
      }
      default:
        out.set(n.name, emit(n.name, n.className, c, [x]));
    }
  }
  const gap = emit(fresh('student_gap'), 'GlobalAveragePooling2D', { data_format: 'channels_last' }, [out.get(feature.name)!]);
  const logits = emit(fresh('student_logits'), 'Dense', { units: classes, activation: 'linear', use_bias: true, kernel_initializer: init(), bias_initializer: { class_name: 'Zeros', config: {} } }, [gap]);
  const wantSoftmax = options.softmax ?? softmaxTail(teacher) !== null;
  const last = wantSoftmax ? emit(fresh('student_softmax'), 'Activation', { activation: 'softmax' }, [logits]) : logits;
  const input = out.get(teacher.input)!;
  return {
    keras: {
      class_name: 'Model',
      config: { name: `${teacher.name}_student`, layers, input_layers: [[input, 0, 0]], output_layers: [[last, 0, 0]] },
      keras_version: 'tfjs-layers', backend: 'tensor_flow.js',
    },
    logitsLayer: logits,
    softmaxLayer: wantSoftmax ? last : null,
    droppedConvs,
  };
}
