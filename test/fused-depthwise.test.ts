import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { installFusedDepthwise, setFusedDepthwise } from '../src/runtime/fused-depthwise.js';
import { initBackend } from '../src/runtime/backend.js';
import { relErr } from './helpers/rel-err.js';

// The fused inference path of DepthwiseConv2D against tfjs-layers' own, on the same weights.
function model(activation: 'relu' | 'linear' | 'relu6', useBias: boolean, strides: number): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.depthwiseConv2d({
    inputShape: [7, 6, 3], kernelSize: 3, depthMultiplier: 2, strides, padding: 'same', activation, useBias,
    depthwiseInitializer: tf.initializers.glorotNormal({ seed: 3 }), biasInitializer: tf.initializers.randomNormal({ seed: 4 }),
  }));
  return m;
}

const kernelsOf = async (f: () => tf.Tensor): Promise<string[]> => (await tf.profile(() => { f().dispose(); })).kernelNames;

describe.each(['cpu', 'wasm'] as const)('fused DepthwiseConv2D inference (%s)', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
    installFusedDepthwise();
  });

  it.each([['relu', true, 1], ['linear', true, 2], ['relu6', false, 1]] as const)('%s, bias %s, stride %d: same output as tfjs-layers, in one kernel', async (act, bias, stride) => {
    const m = model(act, bias, stride);
    const x = tf.randomNormal([2, 7, 6, 3], 0, 1, 'float32', 5);
    const ref = (() => {
      const old = setFusedDepthwise(false);
      try {
        return tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync());
      } finally {
        setFusedDepthwise(old);
      }
    })();
    const got = tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync());
    expect(relErr(got, ref)).toBeLessThan(1e-5);
    const fusedKernels = await kernelsOf(() => m.predict(x) as tf.Tensor);
    expect(fusedKernels).toContain('FusedDepthwiseConv2D');
    expect(fusedKernels).not.toContain('Relu');
    // Training keeps tfjs's separate kernels (and their gradients).
    const training = await kernelsOf(() => m.apply(x, { training: true }) as tf.Tensor);
    expect(training).toContain('DepthwiseConv2dNative');
    tf.dispose(x);
    m.dispose();
  });
});
