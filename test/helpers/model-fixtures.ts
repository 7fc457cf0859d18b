import * as tf from '@tensorflow/tfjs';

/** VGG-style Sequential teacher with a Flatten + Dense head and a fused softmax output. */
export function vggTeacher(opts: { size?: number; channels?: number; classes?: number; seed?: number } = {}): tf.Sequential {
  const size = opts.size ?? 16;
  const seed = opts.seed ?? 1;
  const init = (k: number) => tf.initializers.glorotUniform({ seed: seed + k });
  const m = tf.sequential({ name: 'vgg_teacher' });
  m.add(tf.layers.conv2d({ name: 'c1', inputShape: [size, size, opts.channels ?? 1], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1) }));
  m.add(tf.layers.conv2d({ name: 'c2', filters: 16, kernelSize: 3, padding: 'same', kernelInitializer: init(2) }));
  m.add(tf.layers.batchNormalization({ name: 'bn2' }));
  m.add(tf.layers.activation({ name: 'r2', activation: 'relu' }));
  m.add(tf.layers.maxPooling2d({ name: 'p1', poolSize: 2 }));
  m.add(tf.layers.conv2d({ name: 'c3', filters: 32, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(3) }));
  m.add(tf.layers.conv2d({ name: 'c4', filters: 32, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(4) }));
  m.add(tf.layers.maxPooling2d({ name: 'p2', poolSize: 2 }));
  m.add(tf.layers.dropout({ name: 'd1', rate: 0.25 }));
  m.add(tf.layers.flatten({ name: 'flat' }));
  m.add(tf.layers.dense({ name: 'fc1', units: 64, activation: 'relu', kernelInitializer: init(5) }));
  m.add(tf.layers.dense({ name: 'fc2', units: opts.classes ?? 10, activation: 'softmax', kernelInitializer: init(6) }));
  return m;
}

/** Small functional ResNet-style teacher: two residual blocks (identity and projection) and a separate softmax. */
export function residualTeacher(opts: { size?: number; classes?: number; seed?: number } = {}): tf.LayersModel {
  const size = opts.size ?? 16;
  const seed = opts.seed ?? 2;
  const init = (k: number) => tf.initializers.glorotUniform({ seed: seed + k });
  const input = tf.input({ shape: [size, size, 3], name: 'img' });
  const conv = (name: string, filters: number, k: number, strides = 1) =>
    tf.layers.conv2d({ name, filters, kernelSize: k, strides, padding: 'same', useBias: false, kernelInitializer: init(name.length + filters + k) });
  const bn = (name: string) => tf.layers.batchNormalization({ name });
  const relu = (name: string) => tf.layers.reLU({ name });
  let x = relu('stem_relu').apply(bn('stem_bn').apply(conv('stem', 16, 3).apply(input))) as tf.SymbolicTensor;
  // identity block
  let y = relu('b1_relu1').apply(bn('b1_bn1').apply(conv('b1_c1', 16, 3).apply(x))) as tf.SymbolicTensor;
  y = bn('b1_bn2').apply(conv('b1_c2', 16, 3).apply(y)) as tf.SymbolicTensor;
  x = relu('b1_out').apply(tf.layers.add({ name: 'b1_add' }).apply([x, y])) as tf.SymbolicTensor;
  // projection block (stride 2)
  y = relu('b2_relu1').apply(bn('b2_bn1').apply(conv('b2_c1', 32, 3, 2).apply(x))) as tf.SymbolicTensor;
  y = bn('b2_bn2').apply(conv('b2_c2', 32, 3).apply(y)) as tf.SymbolicTensor;
  const s = bn('b2_sbn').apply(conv('b2_short', 32, 1, 2).apply(x)) as tf.SymbolicTensor;
  x = relu('b2_out').apply(tf.layers.add({ name: 'b2_add' }).apply([y, s])) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ name: 'logits', units: opts.classes ?? 10, kernelInitializer: init(99) }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.softmax({ name: 'probs' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'res_teacher' });
}

/**
 * Small VGG-like teacher of bias-free convs, each followed by BN + ReLU + max-pool, then Flatten,
 * an optional hidden Dense and logits. (A conv with bias and a fused ReLU trips a wasm FusedConv2D
 * bias bug once pruned, so job tests on wasm use this one.)
 */
export function bnTeacher(opts: { size: number; classes: number; filters: number[]; hidden?: number; seed?: number }): tf.Sequential {
  const seed = opts.seed ?? 1;
  const m = tf.sequential();
  opts.filters.forEach((filters, i) => {
    m.add(tf.layers.conv2d({ ...(i === 0 ? { inputShape: [opts.size, opts.size, 1] } : {}), filters, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: seed + i }) }));
    m.add(tf.layers.batchNormalization());
    m.add(tf.layers.activation({ activation: 'relu' }));
    m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  });
  m.add(tf.layers.flatten());
  if (opts.hidden) m.add(tf.layers.dense({ units: opts.hidden, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: seed + 10 }) }));
  m.add(tf.layers.dense({ units: opts.classes, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 11 }) }));
  return m;
}
