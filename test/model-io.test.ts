import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectModelDir, loadModel, logitsModel, saveModel, serializeModel, loadModelFromBuffers } from '../src/model/index.js';
import { residualTeacher, vggTeacher } from './helpers/model-fixtures.js';

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(path.join(tmpdir(), 'edgekt-model-io-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function predictData(model: tf.LayersModel, x: tf.Tensor): Float32Array {
  return tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
}

describe('model save/load', () => {
  for (const [kind, make] of [['sequential', () => vggTeacher()], ['functional with Add', () => residualTeacher()]] as const) {
    it(`round-trips a ${kind} model: same topology, weights and predictions; no leaked tensors`, async () => {
      const model = make();
      const out = path.join(dir, kind.replace(/\W+/g, '-'));
      const info = await saveModel(model, out);
      const json = JSON.parse(await readFile(path.join(out, 'model.json'), 'utf8'));
      expect(json.format).toBe('layers-model');
      expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
      expect(info.weightBytes).toBe(model.countParams() * 4);
      const x = tf.randomUniform([2, ...(model.inputs[0]!.shape.slice(1) as number[])], 0, 1, 'float32', 7);
      const before = predictData(model, x);
      const n0 = tf.memory().numTensors;
      const loaded = await loadModel(out);
      expect(loaded.model.countParams()).toBe(model.countParams());
      expect(loaded.graph.totalParams).toBe(model.countParams());
      const after = predictData(loaded.model, x);
      expect(Array.from(after)).toEqual(Array.from(before));
      loaded.model.dispose();
      expect(tf.memory().numTensors).toBe(n0);
      x.dispose();
      model.dispose();
    });
  }

  it('loads from in-memory buffers (a teacher received in chunks)', async () => {
    const model = residualTeacher({ size: 8 });
    const s = await serializeModel(model);
    const loaded = await loadModelFromBuffers(s.modelJson, { 'weights.bin': s.weights });
    expect(loaded.model.countParams()).toBe(model.countParams());
    loaded.model.dispose();
    model.dispose();
  });

  it('strips a fused Dense softmax or a separate softmax layer to expose logits', async () => {
    for (const make of [() => vggTeacher({ size: 8 }), () => residualTeacher({ size: 8 })]) {
      const model = make();
      const out = path.join(dir, `logits-${model.name}`);
      await saveModel(model, out);
      const x = tf.randomUniform([3, ...(model.inputs[0]!.shape.slice(1) as number[])], 0, 1, 'float32', 3);
      const loaded = await loadModel(out, { logits: true });
      expect(loaded.strippedSoftmax).toBe(true);
      const view = await logitsModel(model);
      expect(view.hadSoftmax).toBe(true);
      tf.tidy(() => {
        const logitsA = loaded.model.predict(x) as tf.Tensor;
        const logitsB = view.model.predict(x) as tf.Tensor;
        const probs = model.predict(x) as tf.Tensor;
        // logits differ from probabilities but softmax(logits) gives them back
        expect(tf.max(tf.abs(tf.sub(logitsA, logitsB))).dataSync()[0]).toBeLessThan(1e-5);
        expect(tf.max(tf.abs(tf.sub(tf.softmax(logitsA), probs))).dataSync()[0]).toBeLessThan(1e-5);
        expect(tf.max(tf.abs(tf.sub(logitsA, probs))).dataSync()[0]).toBeGreaterThan(1e-3);
      });
      if (!view.sharesWeights) view.model.dispose();
      loaded.model.dispose();
      model.dispose();
      x.dispose();
    }
  });

  it('inspects a directory without allocating tensors', async () => {
    const model = vggTeacher({ size: 8 });
    const out = path.join(dir, 'inspect');
    await saveModel(model, out);
    const params = model.countParams();
    model.dispose();
    const n0 = tf.memory().numTensors;
    const insp = await inspectModelDir(out);
    expect(insp.graph.totalParams).toBe(params);
    expect(insp.totalWeightBytes).toBe(params * 4);
    expect(tf.memory().numTensors).toBe(n0);
  });
});

describe('models saved by tfjs with includeOptimizer', () => {
  it('skips the optimizer weights (group "optimizer") and loads the model', async () => {
    const model = vggTeacher({ size: 8 });
    model.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy' });
    const x = tf.randomUniform([4, 8, 8, 1], 0, 1, 'float32', 1);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3], 'int32'), 10);
    await model.fit(x, y, { epochs: 1, verbose: 0 });
    const out = path.join(dir, 'with-optimizer');
    const { mkdir, writeFile } = await import('node:fs/promises');
    await mkdir(out, { recursive: true });
    let optimizerSpecs = 0;
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        const data = a.weightData!;
        const buf = Array.isArray(data) ? tf.io.CompositeArrayBuffer.join(data) : data;
        optimizerSpecs = a.weightSpecs!.filter((s) => s.group === 'optimizer').length;
        await writeFile(path.join(out, 'weights.bin'), new Uint8Array(buf));
        await writeFile(path.join(out, 'model.json'), JSON.stringify({ modelTopology: a.modelTopology, format: a.format, generatedBy: a.generatedBy, convertedBy: null, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }] }));
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
      { includeOptimizer: true },
    );
    expect(optimizerSpecs).toBeGreaterThan(0);
    const loaded = await loadModel(out);
    tf.tidy(() => {
      const a = (model.predict(x) as tf.Tensor).dataSync();
      const b = (loaded.model.predict(x) as tf.Tensor).dataSync();
      expect(Array.from(b)).toEqual(Array.from(a));
    });
    loaded.model.dispose();
    tf.dispose([x, y]);
    model.dispose();
  });
});
