import * as tf from '@tensorflow/tfjs';

export type RefTrainCnnVariant = 'standard' | 'separable';

export interface RefTrainCnnOptions {
  /** Base seed for the initializers; each layer gets seed + its index so runs are reproducible. */
  seed?: number;
  /** [height, width, channels]; default [32, 32, 3] as in DESIGN.md. */
  inputShape?: [number, number, number];
  /** Number of logits; default 10. */
  classes?: number;
}

/**
 * The training-speed reference CNN ("ref-train-cnn" in DESIGN.md), layer for layer the model of
 * ../shared/bench/torch_train_step.py so wasm step times can be compared with the PyTorch anchor:
 * Conv3x3(32)+ReLU → BatchNorm → Conv3x3(64)+ReLU → MaxPool2 → Conv3x3(128)+ReLU → GlobalAvgPool →
 * Dense(classes) logits (no softmax: train with softmax cross-entropy on logits). The separable
 * variant swaps the 64 and 128 convolutions for SeparableConv2D. Not compiled: callers pick the loss.
 */
export function buildRefTrainCnn(variant: RefTrainCnnVariant, opts: RefTrainCnnOptions = {}): tf.LayersModel {
  const seed = opts.seed ?? 0;
  const inputShape = opts.inputShape ?? [32, 32, 3];
  const classes = opts.classes ?? 10;
  let next = 0;
  const glorot = (): ReturnType<typeof tf.initializers.glorotUniform> => tf.initializers.glorotUniform({ seed: seed + next++ });

  const conv = (filters: number, first: boolean): tf.layers.Layer => {
    const common = { kernelSize: 3, padding: 'same' as const, activation: 'relu' as const, useBias: true };
    if (variant === 'separable' && !first) {
      return tf.layers.separableConv2d({
        ...common,
        filters,
        depthwiseInitializer: glorot(),
        pointwiseInitializer: glorot(),
      });
    }
    return tf.layers.conv2d({
      ...common,
      filters,
      kernelInitializer: glorot(),
      ...(first ? { inputShape } : {}),
    });
  };

  const model = tf.sequential({ name: `ref_train_cnn_${variant}` });
  model.add(conv(32, true));
  model.add(tf.layers.batchNormalization({ axis: -1 }));
  model.add(conv(64, false));
  model.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }));
  model.add(conv(128, false));
  model.add(tf.layers.globalAveragePooling2d({}));
  model.add(tf.layers.dense({ units: classes, kernelInitializer: glorot() }));
  return model;
}
