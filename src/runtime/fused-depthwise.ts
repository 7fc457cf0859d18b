import * as tf from '@tensorflow/tfjs';
import { patchLayerCall } from './patch-layer.js';

/**
 * Inference path for tfjs-layers' DepthwiseConv2D: one fused kernel (convolution + bias +
 * activation) instead of three. tfjs-layers runs the convolution, then `biasAdd`, then the activation
 * as separate kernels; Conv2D layers are already fused. For a small student on wasm, where per-kernel
 * overhead dominates, the two extra kernels of every depthwise layer are a measurable share of
 * batch-1 latency. Training, channels-first data and other activations keep tfjs's own code.
 */

interface DepthwiseLayer {
  strides: [number, number];
  padding: 'valid' | 'same';
  dataFormat: string;
  dilationRate: number | [number, number];
  useBias: boolean;
  depthwiseKernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  activation: { getClassName(): string } | null;
}

type Call = (this: DepthwiseLayer, inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>) => tf.Tensor | tf.Tensor[];

const MARK = Symbol.for('edgekt.fused-depthwise');
const FUSABLE: Record<string, 'linear' | 'relu' | 'relu6'> = { linear: 'linear', relu: 'relu', relu6: 'relu6' };
let enabled = true;

/** Turns the fused path on or off (tests compare both); returns the previous setting. */
export function setFusedDepthwise(on: boolean): boolean {
  const old = enabled;
  enabled = on;
  return old;
}

/** Installs the fused inference path on tfjs-layers' DepthwiseConv2D class (idempotent). */
export function installFusedDepthwise(): void {
  patchLayerCall<Call>(tf.layers.depthwiseConv2d({ kernelSize: 3 }), MARK, (original) => function (this: DepthwiseLayer, inputs, kwargs) {
    const activation = FUSABLE[this.activation?.getClassName() ?? 'linear'];
    const dilated = Array.isArray(this.dilationRate) ? this.dilationRate.some((d) => d !== 1) : this.dilationRate !== 1;
    const input = Array.isArray(inputs) ? inputs[0]! : inputs;
    if (!enabled || kwargs['training'] || !activation || dilated || this.dataFormat !== 'channelsLast' || input.rank !== 4 || Array.isArray(inputs) && inputs.length !== 1) {
      return original.call(this, inputs, kwargs);
    }
    return tf.tidy(() =>
      tf.fused.depthwiseConv2d({
        x: input as tf.Tensor4D,
        filter: this.depthwiseKernel.read() as tf.Tensor4D,
        strides: this.strides,
        pad: this.padding,
        ...(this.useBias && this.bias ? { bias: this.bias.read() } : {}),
        activation,
      }),
    );
  });
}
