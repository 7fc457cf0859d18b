/**
 * One data-parallel training worker: its own tfjs engine and wasm instance. It computes the
 * gradients of its shard, writes them into a SharedArrayBuffer, and applies the averaged gradients
 * that the main thread writes back, with its own optimizer state (identical across workers).
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend.js';
import { isEdgektError } from '../../core/errors.js';
import { threadCpuMs } from './cpu-time.js';
import { computeLoss, createOptimizer } from './losses.js';
import { modelFromData } from './model-data.js';
import type { FromWorker, LossName, ToWorker, TrainableSlot, WeightData } from './protocol.js';

interface State {
  model: tf.LayersModel;
  vars: tf.Variable[];
  slots: TrainableSlot[];
  state: tf.LayerVariable[];
  stateSlots: TrainableSlot[];
  optimizer: tf.Optimizer;
  loss: LossName;
  grads: Float32Array;
  avg?: Float32Array;
}

const port = parentPort;
if (!port) throw new Error('worker-entry must run in a worker thread');
let state: State | undefined;

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

function need(): State {
  if (!state) throw new Error('worker not initialised');
  return state;
}

async function init(msg: Extract<ToWorker, { type: 'init' }>): Promise<void> {
  // Workers are headless copies: tfjs's notices (the tfjs-node banner, warnings) already show once
  // on the main thread. PROD only gates tfjs logging and its DEBUG checks.
  tf.env().set('PROD', true);
  const info = await initBackend(msg.backend);
  const model = await modelFromData(msg);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  let offset = 0;
  const layout = (ws: tf.LayerVariable[]): TrainableSlot[] =>
    ws.map((w) => {
      const shape = w.shape.map((d) => d ?? 1);
      const size = shape.reduce((a, b) => a * b, 1);
      const slot = { name: w.originalName, shape, offset, size };
      offset += size;
      return slot;
    });
  const slots = layout(model.trainableWeights);
  const stateSlots = layout(model.nonTrainableWeights);
  const grads = new Float32Array(new SharedArrayBuffer(Math.max(1, offset) * 4));
  state = { model, vars, slots, state: model.nonTrainableWeights, stateSlots, optimizer: createOptimizer(msg.optimizer), loss: msg.loss, grads };
  post({ type: 'ready', backend: info.backend, slots, stateSlots, grads: grads.buffer as SharedArrayBuffer });
}

function grad(msg: Extract<ToWorker, { type: 'grad' }>): void {
  const s = need();
  const t0 = performance.now();
  const c0 = threadCpuMs();
  const lossValue = tf.tidy(() => {
    const x = tf.tensor(msg.x, msg.xShape, 'float32');
    const y = msg.y instanceof Int32Array ? tf.tensor(msg.y, msg.yShape, 'int32') : tf.tensor(msg.y, msg.yShape, 'float32');
    const { value, grads } = tf.variableGrads(
      () => computeLoss(s.loss, y, s.model.apply(x, { training: true }) as tf.Tensor),
      s.vars,
    );
    s.vars.forEach((v, i) => {
      const g = grads[v.name];
      if (!g) throw new Error(`no gradient for ${v.name}`);
      s.grads.set(g.dataSync() as Float32Array, s.slots[i]!.offset);
    });
    // The forward pass updated BatchNorm's moving statistics from this shard: share them too.
    s.state.forEach((w, i) => s.grads.set(w.read().dataSync() as Float32Array, s.stateSlots[i]!.offset));
    return value.dataSync()[0]!;
  });
  const c1 = threadCpuMs();
  post({ type: 'grads', loss: lossValue, ms: performance.now() - t0, cpuMs: c0 === null || c1 === null ? null : c1 - c0 });
}

function apply(): void {
  const s = need();
  const avg = s.avg;
  if (!avg) throw new Error('averaged-gradient buffer not attached');
  const t0 = performance.now();
  tf.tidy(() => {
    const named: tf.NamedTensorMap = {};
    s.vars.forEach((v, i) => {
      const slot = s.slots[i]!;
      named[v.name] = tf.tensor(avg.slice(slot.offset, slot.offset + slot.size), slot.shape, 'float32');
    });
    s.optimizer.applyGradients(named);
    s.state.forEach((w, i) => {
      const slot = s.stateSlots[i]!;
      w.write(tf.tensor(avg.slice(slot.offset, slot.offset + slot.size), slot.shape, 'float32'));
    });
  });
  post({ type: 'applied', numTensors: tf.memory().numTensors, ms: performance.now() - t0 });
}

function getWeights(): void {
  const s = need();
  const trainable = new Set(s.model.trainableWeights.map((w) => w.name));
  const weights: WeightData[] = s.model.weights.map((w) => {
    const t = w.read();
    return { name: w.originalName, shape: t.shape.slice(), data: t.dataSync() as Float32Array, trainable: trainable.has(w.name) };
  });
  post({ type: 'weights', weights }, weights.map((w) => w.data.buffer as ArrayBuffer));
}

function setWeights(msg: Extract<ToWorker, { type: 'set-weights' }>): void {
  const s = need();
  tf.tidy(() =>
    s.model.weights.forEach((w, i) => {
      const nw = msg.weights[i];
      if (nw) w.write(tf.tensor(nw.data, nw.shape, 'float32'));
    }),
  );
  post({ type: 'weights-set' });
}

async function handle(msg: ToWorker): Promise<void> {
    try {
      switch (msg.type) {
        case 'init':
          return await init(msg);
        case 'attach':
          need().avg = new Float32Array(msg.avg);
          return post({ type: 'attached' });
        case 'grad':
          return grad(msg);
        case 'apply':
          return apply();
        case 'get-weights':
          return getWeights();
        case 'set-weights':
          return setWeights(msg);
      }
    } catch (e) {
      post({ type: 'error', message: e instanceof Error ? e.message : String(e), code: isEdgektError(e) ? e.code : undefined });
    }
}

// Messages are handled strictly in order, even while `init` awaits the backend.
let queue: Promise<void> = Promise.resolve();
port.on('message', (msg: ToWorker) => {
  queue = queue.then(() => handle(msg));
});
