/**
 * Times one training step (forward, backward, Adam) of ref-train-cnn on a backend, and batch-1
 * inference. Usage: npx tsx scripts/time-train-step.ts [--backend wasm] [--variant standard|separable|both]
 *   [--batch 64] [--steps 5] [--profile]
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { initBackend, parseBackendChoice } from '../src/runtime/backend.js';
import { buildRefTrainCnn, type RefTrainCnnVariant } from '../src/bench/ref-train-cnn.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    variant: { type: 'string', default: 'both' },
    batch: { type: 'string', default: '64' },
    steps: { type: 'string', default: '5' },
    profile: { type: 'boolean', default: false },
  },
});
const info = await initBackend(parseBackendChoice(values.backend));
const batch = Number(values.batch);
const steps = Number(values.steps);
const variants: RefTrainCnnVariant[] = values.variant === 'both' ? ['standard', 'separable'] : [values.variant as RefTrainCnnVariant];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

for (const variant of variants) {
  const model = buildRefTrainCnn(variant, { seed: 1 });
  const opt = tf.train.adam(1e-3);
  const x = tf.randomNormal([batch, 32, 32, 3], 0, 1, 'float32', 7);
  const y = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 8), 10).toFloat();
  const step = (): number => {
    const t = performance.now();
    const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor), true);
    loss!.dataSync();
    loss!.dispose();
    return performance.now() - t;
  };
  step();
  const times: number[] = [];
  for (let i = 0; i < steps; i++) times.push(step());
  if (values.profile) {
    const prof = await tf.profile(() => { step(); });
    const byKernel = new Map<string, number>();
    for (const k of prof.kernels) byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + (k.kernelTimeMs as number));
    const rows = [...byKernel.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
    console.log(rows.map(([k, ms]) => `${k.padEnd(40)} ${ms.toFixed(1)}`).join('\n'));
  }
  const x1 = x.slice([0, 0, 0, 0], [1, 32, 32, 3]);
  const infer = (): number => { const t = performance.now(); const o = model.predict(x1) as tf.Tensor; o.dataSync(); o.dispose(); return performance.now() - t; };
  for (let i = 0; i < 5; i++) infer();
  const lat: number[] = [];
  for (let i = 0; i < 30; i++) lat.push(infer());
  console.log(JSON.stringify({ backend: info.backend, variant, batch, stepMs: +median(times).toFixed(1),
    stepsMs: times.map((t) => +t.toFixed(0)), inferMs: +median(lat).toFixed(2) }));
  tf.dispose([x, y, x1]);
  opt.dispose();
  model.dispose();
}
