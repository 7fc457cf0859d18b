import type * as tf from '@tensorflow/tfjs';
import type { Backend } from './wasm-backend.js';

type KernelArgs<A> = { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: A };

/**
 * Identity without a copy: the new tensor shares the input's data (reference-counted), as the cpu
 * backend and the wasm backend's own Reshape do. tfjs clones every tensor it saves for the
 * backward pass, so the wasm backend's copying Identity costs a full pass over each activation.
 */
export function makeIdentityKernel(original: tf.KernelFunc | undefined) {
  return (args: KernelArgs<Record<string, never>>): tf.TensorInfo | tf.TensorInfo[] => {
    const x = args.inputs['x']!;
    if (x.dtype === 'string') {
      if (!original) throw new Error('wasm-kernels: no fallback for Identity');
      return original(args as unknown as Parameters<tf.KernelFunc>[0]);
    }
    args.backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

/** Cast to the same numeric dtype shares the data (the ReLU gradient casts float32 to float32). */
export function makeCastKernel(original: tf.KernelFunc | undefined) {
  return (args: KernelArgs<{ dtype: tf.DataType }>): tf.TensorInfo | tf.TensorInfo[] => {
    const x = args.inputs['x']!;
    if (x.dtype === args.attrs.dtype && x.dtype !== 'string' && x.dtype !== 'complex64') {
      args.backend.incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    }
    if (!original) throw new Error('wasm-kernels: no fallback for Cast');
    return original(args as unknown as Parameters<tf.KernelFunc>[0]);
  };
}
