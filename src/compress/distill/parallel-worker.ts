/**
 * One data-parallel distillation worker: its own tfjs engine, a frozen teacher and a student
 * replica. It computes a shard's gradients of the multi-level objective and applies the averaged
 * gradients the main thread sends back with its own Adam (identical in every worker).
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { isEdgektError } from '../../core/errors.js';
import { initBackend } from '../../runtime/backend.js';
import { modelFromData } from '../../runtime/parallel/model-data.js';
import type { FromDistillWorker, ToDistillWorker } from './parallel-protocol.js';
import { captureDistillState, restoreDistillState } from './state.js';
import { createDistillTrainer, type DistillTrainer } from './trainer.js';

const port = parentPort;
if (!port) throw new Error('parallel-worker must run in a worker thread');

let teacher: tf.LayersModel | null = null;
let student: { json: string; model: tf.LayersModel } | null = null;
let trainer: DistillTrainer | null = null;

function post(msg: FromDistillWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

function running(): { trainer: DistillTrainer; student: tf.LayersModel } {
  if (!trainer || !student) throw new Error('no distillation run begun');
  return { trainer, student: student.model };
}

async function begin(msg: Extract<ToDistillWorker, { type: 'begin' }>): Promise<void> {
  trainer?.dispose();
  trainer = null;
  const rebuilt = student?.json !== msg.student.json;
  if (rebuilt) {
    student?.model.dispose();
    student = { json: msg.student.json, model: await modelFromData({ modelJson: JSON.parse(msg.student.json) as object, weights: msg.student.weights }) };
  } else {
    const model = student!.model;
    tf.tidy(() => model.weights.forEach((w, i) => w.write(tf.tensor(msg.student.weights[i]!.data, msg.student.weights[i]!.shape, 'float32'))));
  }
  trainer = createDistillTrainer(teacher, student!.model, msg.options);
  post({ type: 'begun', rebuilt });
}

function grad(msg: Extract<ToDistillWorker, { type: 'grad' }>): void {
  const { trainer: tr } = running();
  const x = tf.tensor4d(msg.x, msg.xShape as [number, number, number, number]);
  const labels = msg.labels ? tf.tensor1d(msg.labels) : null;
  let grads: tf.Tensor[] = [];
  try {
    const r = tr.computeGrads(x, labels, msg.phase, msg.noise);
    grads = r.grads;
    const out = new Float32Array(grads.reduce((a, g) => a + g.size, 0));
    let offset = 0;
    for (const g of grads) {
      out.set(g.dataSync() as Float32Array, offset);
      offset += g.size;
    }
    post({ type: 'grads', parts: r.parts, grads: out }, [out.buffer as ArrayBuffer]);
  } finally {
    tf.dispose([x, ...(labels ? [labels] : []), ...grads]);
  }
}
function apply(msg: Extract<ToDistillWorker, { type: 'apply' }>): void {
  const { trainer: tr } = running();
  tf.tidy(() => {
    let offset = 0;
    const grads = tr.phaseVars(msg.phase).map((v) => {
      const g = tf.tensor(msg.grads.subarray(offset, offset + v.size), v.shape, 'float32');
      offset += v.size;
      return g;
    });
    tr.applyGrads(msg.phase, grads, msg.learningRate);
  });
  post({ type: 'applied', numTensors: tf.memory().numTensors });
}

function end(): void {
  const { student: model } = running();
  trainer!.dispose();
  trainer = null;
  const trainable = new Set(model.trainableWeights.map((w) => w.name));
  const weights = model.weights.map((w) => ({ shape: w.shape as number[], data: (w.read().dataSync() as Float32Array).slice(), trainable: trainable.has(w.name) }));
  post({ type: 'ended', weights, numTensors: tf.memory().numTensors }, weights.map((w) => w.data.buffer as ArrayBuffer));
}

async function handle(msg: ToDistillWorker): Promise<void> {
  try {
    switch (msg.type) {
      case 'init':
        // Headless copy: tfjs's notices already show once on the main thread.
        tf.env().set('PROD', true);
        await initBackend(msg.backend);
        teacher = msg.teacher ? await modelFromData(msg.teacher) : null;
        return post({ type: 'ready', backend: tf.getBackend() });
      case 'begin':
        return await begin(msg);
      case 'grad':
        return grad(msg);
      case 'apply':
        return apply(msg);
      case 'capture': {
        const r = running();
        return post({ type: 'state', state: await captureDistillState(r.trainer, r.student, msg.frame) });
      }
      case 'restore': {
        const r = running();
        await restoreDistillState(r.trainer, r.student, msg.state);
        return post({ type: 'restored' });
      }
      case 'end':
        return end();
    }
  } catch (e) {
    post({ type: 'error', message: e instanceof Error ? e.message : String(e), ...(isEdgektError(e) ? { code: e.code } : {}) } as never);
  }
}

// Messages are handled strictly in order, even while one awaits.
let queue: Promise<void> = Promise.resolve();
port.on('message', (msg: ToDistillWorker) => {
  queue = queue.then(() => handle(msg));
});
