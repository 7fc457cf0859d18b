import * as tf from '@tensorflow/tfjs';

export interface ReferenceTeacherOptions {
  /** Seeds every initializer (see initSeed). Default 0. */
  seed?: number;
  /** [height, width, channels]. Default [28, 28, 1] (Fashion-MNIST). */
  inputShape?: [number, number, number];
  classes?: number;
  /** Filters of each stage's convolutions. Default [16, 32, 64]. */
  widths?: number[];
  /** Convolutions per stage. Default 2. */
  convsPerStage?: number;
  /** Units of the hidden Dense layer of the head. Default 256. */
  denseUnits?: number;
  /** Dropout rate before the last Dense. Default 0.3. */
  dropout?: number;
}

/** Per-layer initializer seed, never 0: tfjs treats a 0 seed as "no seed" and draws at random. */
function initSeed(seed: number, layer: number): number {
  return (seed * 1009 + layer) % 2147483647 || 1;
}

export const REFERENCE_TEACHER_DEFAULTS = {
  seed: 0,
  inputShape: [28, 28, 1] as [number, number, number],
  classes: 10,
  widths: [16, 32, 64],
  convsPerStage: 2,
  denseUnits: 256,
  dropout: 0.3,
};

/**
 * The Fashion-MNIST reference teacher (DESIGN.md "Reference models"): VGG-style stages of
 * [Conv3×3 + BN + ReLU] × convsPerStage, 2×2 max-pooling between stages (not after the last one),
 * then Flatten → Dense(256) + ReLU → Dropout → Dense(classes) logits. With the defaults it has
 * ~0.88 M parameters, most of them in the Flatten+Dense head, which is exactly what lightening
 * removes; its convolutions (~7.7 M MACs) stay cheap enough to train on one wasm thread.
 * Outputs logits (no softmax). Layer names are stable: s{stage}_conv{k}, s{stage}_bn{k}, s{stage}_relu{k}.
 */
export function buildReferenceTeacher(opts: ReferenceTeacherOptions = {}): tf.LayersModel {
  const o = { ...REFERENCE_TEACHER_DEFAULTS, ...opts };
  let next = 0;
  const init = (): ReturnType<typeof tf.initializers.heNormal> => tf.initializers.heNormal({ seed: initSeed(o.seed, ++next) });
  const glorot = (): ReturnType<typeof tf.initializers.glorotUniform> => tf.initializers.glorotUniform({ seed: initSeed(o.seed, ++next) });
  const model = tf.sequential({ name: 'reference_teacher' });
  o.widths.forEach((filters, s) => {
    for (let k = 1; k <= o.convsPerStage; k++) {
      model.add(tf.layers.conv2d({
        name: `s${s + 1}_conv${k}`,
        filters,
        kernelSize: 3,
        padding: 'same',
        useBias: false,
        kernelInitializer: init(),
        ...(s === 0 && k === 1 ? { inputShape: o.inputShape } : {}),
      }));
      model.add(tf.layers.batchNormalization({ name: `s${s + 1}_bn${k}`, axis: -1 }));
      model.add(tf.layers.activation({ name: `s${s + 1}_relu${k}`, activation: 'relu' }));
    }
    if (s < o.widths.length - 1) model.add(tf.layers.maxPooling2d({ name: `s${s + 1}_pool`, poolSize: 2, strides: 2 }));
  });
  model.add(tf.layers.flatten({ name: 'flatten' }));
  model.add(tf.layers.dense({ name: 'fc1', units: o.denseUnits, kernelInitializer: init() }));
  model.add(tf.layers.activation({ name: 'fc1_relu', activation: 'relu' }));
  model.add(tf.layers.dropout({ name: 'dropout', rate: o.dropout }));
  model.add(tf.layers.dense({ name: 'logits', units: o.classes, kernelInitializer: glorot() }));
  return model;
}

export interface ReferenceStudentOptions {
  seed?: number;
  inputShape?: [number, number, number];
  classes?: number;
  /** Pointwise filters per stage. Default [16, 32, 64] (the teacher's widths: lighten at width 1). */
  widths?: number[];
  convsPerStage?: number;
}

/**
 * A fixed separable student shaped like lighten's output for the reference teacher: every 3×3 conv
 * becomes depthwise 3×3 + BN + ReLU + pointwise 1×1 + BN + ReLU, same stages and pooling, and the
 * Flatten+Dense head becomes global average pooling + Dense(classes). ~13 k parameters with the
 * defaults (~70× fewer than the teacher). Used by the distillation benchmark when no lightened
 * student is supplied.
 */
export function buildReferenceStudent(opts: ReferenceStudentOptions = {}): tf.LayersModel {
  const seed = opts.seed ?? 0;
  const widths = opts.widths ?? REFERENCE_TEACHER_DEFAULTS.widths;
  const perStage = opts.convsPerStage ?? REFERENCE_TEACHER_DEFAULTS.convsPerStage;
  let next = 0;
  const init = (): ReturnType<typeof tf.initializers.heNormal> => tf.initializers.heNormal({ seed: initSeed(seed, ++next) });
  const model = tf.sequential({ name: 'reference_student' });
  widths.forEach((filters, s) => {
    for (let k = 1; k <= perStage; k++) {
      const p = `s${s + 1}_${k}`;
      model.add(tf.layers.depthwiseConv2d({
        name: `${p}_dw`,
        kernelSize: 3,
        padding: 'same',
        useBias: false,
        depthwiseInitializer: init(),
        ...(s === 0 && k === 1 ? { inputShape: opts.inputShape ?? REFERENCE_TEACHER_DEFAULTS.inputShape } : {}),
      }));
      model.add(tf.layers.batchNormalization({ name: `${p}_dw_bn`, axis: -1 }));
      model.add(tf.layers.activation({ name: `${p}_dw_relu`, activation: 'relu' }));
      model.add(tf.layers.conv2d({ name: `${p}_pw`, filters, kernelSize: 1, useBias: false, kernelInitializer: init() }));
      model.add(tf.layers.batchNormalization({ name: `${p}_pw_bn`, axis: -1 }));
      model.add(tf.layers.activation({ name: `${p}_pw_relu`, activation: 'relu' }));
    }
    if (s < widths.length - 1) model.add(tf.layers.maxPooling2d({ name: `s${s + 1}_pool`, poolSize: 2, strides: 2 }));
  });
  model.add(tf.layers.globalAveragePooling2d({ name: 'gap' }));
  model.add(tf.layers.dense({ name: 'logits', units: opts.classes ?? REFERENCE_TEACHER_DEFAULTS.classes, kernelInitializer: tf.initializers.glorotUniform({ seed: initSeed(seed, ++next) }) }));
  return model;
}
