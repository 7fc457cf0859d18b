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

/** Per-kernel CPU time (process.cpuUsage around each kernel call), robust on a shared machine. */
const kernelCpu = new Map<string, { ms: number; calls: number }>();
let profiling = false;
function wrapKernels(backendName: string): void {
  for (const k of tf.getKernelsForBackend(backendName)) {
    const inner = k.kernelFunc;
    tf.unregisterKernel(k.kernelName, backendName);
    tf.registerKernel({
      ...k,
      kernelFunc: (args) => {
        if (!profiling) return inner(args);
        const c0 = process.cpuUsage();
        const out = inner(args);
        const c = process.cpuUsage(c0);
        const e = kernelCpu.get(k.kernelName) ?? { ms: 0, calls: 0 };
        e.ms += (c.user + c.system) / 1000;
        e.calls++;
        kernelCpu.set(k.kernelName, e);
        return out;
      },
    });
  }
}
const info = await initBackend(parseBackendChoice(values.backend));
if (values.profile) wrapKernels(info.backend);
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
  const cpuTimes: number[] = [];
  const step = (): number => {
    const c0 = process.cpuUsage();
    const t = performance.now();
    const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor), true);
    loss!.dataSync();
    loss!.dispose();
    const c = process.cpuUsage(c0);
    cpuTimes.push((c.user + c.system) / 1000);
    return performance.now() - t;
  };
  step();
  cpuTimes.length = 0;
  const times: number[] = [];
  for (let i = 0; i < steps; i++) times.push(step());
  const stepCpuMs = median(cpuTimes);
  if (values.profile) {
    kernelCpu.clear();
    profiling = true;
    const c0 = process.cpuUsage();
    step();
    const c = process.cpuUsage(c0);
    profiling = false;
    const rows = [...kernelCpu.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25);
    const total = [...kernelCpu.values()].reduce((a, b) => a + b.ms, 0);
    console.log(rows.map(([k, e]) => `${k.padEnd(40)} ${e.ms.toFixed(1).padStart(7)} ms  x${e.calls}`).join('\n'));
    console.log(`kernels ${total.toFixed(1)} ms of step cpu ${((c.user + c.system) / 1000).toFixed(1)} ms`);
  }
  const x1 = x.slice([0, 0, 0, 0], [1, 32, 32, 3]);
  const infer = (): number => { const t = performance.now(); const o = model.predict(x1) as tf.Tensor; o.dataSync(); o.dispose(); return performance.now() - t; };
  for (let i = 0; i < 5; i++) infer();
  const lat: number[] = [];
  for (let i = 0; i < 30; i++) lat.push(infer());
  console.log(JSON.stringify({ backend: info.backend, variant, batch, stepMs: +median(times).toFixed(1), stepCpuMs: +stepCpuMs.toFixed(1),
    stepsMs: times.map((t) => +t.toFixed(0)), inferMs: +median(lat).toFixed(2) }));
  tf.dispose([x, y, x1]);
  opt.dispose();
  model.dispose();
}
