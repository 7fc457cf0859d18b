import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lighten, planGraph, planStudent } from '../src/compress/lighten/index.js';
import { isEdgektError } from '../src/core/errors.js';
import { getNode, graphFromModel, loadModel, logitsModel, saveModel } from '../src/model/index.js';
import { buildReferenceTeacher } from '../src/model/reference-teacher.js';
import { residualTeacher, vggTeacher } from './helpers/model-fixtures.js';

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(path.join(tmpdir(), 'edgekt-lighten-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function input(model: tf.LayersModel, n: number, seed: number): tf.Tensor {
  return tf.randomUniform([n, ...(model.inputs[0]!.shape.slice(1) as number[])], 0, 1, 'float32', seed);
}

const classes = (m: tf.LayersModel) => m.layers.map((l) => l.getClassName());

describe('lighten', () => {
  for (const [kind, make] of [['Sequential VGG-style', () => vggTeacher({ size: 16 })], ['residual', () => residualTeacher({ size: 16 })]] as const) {
    it(`${kind} teacher: same output shape, fewer params and MACs, saves and reloads, finite predictions, no leaks`, async () => {
      const teacher = make();
      const n0 = tf.memory().numTensors;
      const r = await lighten(teacher, { widthMultiplier: 0.5, seed: 3 });
      const { student } = r;
      expect(student.outputs[0]!.shape).toEqual(teacher.outputs[0]!.shape);
      expect(r.summary.student.params).toBe(student.countParams());
      expect(r.summary.teacher.params).toBe(teacher.countParams());
      expect(r.summary.student.params).toBeLessThan(r.summary.teacher.params);
      expect(r.summary.student.macs).toBeLessThan(r.summary.teacher.macs);
      // k×k convs other than the input conv became depthwise + BN + activation + pointwise
      for (const l of student.layers) {
        if (l.getClassName() !== 'Conv2D') continue;
        const k = (l.getConfig().kernelSize as number[]).join('x');
        const readsInput = (l.inboundNodes[0]!.inboundLayers[0]!).getClassName() === 'InputLayer';
        expect(k === '1x1' || readsInput, l.name).toBe(true);
      }
      expect(classes(student).filter((c) => c === 'DepthwiseConv2D').length).toBeGreaterThanOrEqual(3);
      expect(classes(student)).not.toContain('Flatten');
      expect(classes(student).filter((c) => c === 'Dense')).toHaveLength(1);
      expect(classes(student).filter((c) => c === 'Add')).toHaveLength(classes(teacher).filter((c) => c === 'Add').length);
      // stages map teacher ↔ student at equal resolutions
      expect(r.stages.map((s) => [s.teacher.height, s.student.height])).toEqual(r.teacherGraph.stages.map((s) => [s.resolution[0], s.resolution[0]]));
      for (const s of r.stages) {
        expect((student.getLayer(s.student.layerName).outputShape as number[]).slice(1)).toEqual([s.student.height, s.student.width, s.student.channels]);
        expect(s.student.channels).toBe(s.teacher.channels / 2);
      }

      const out = path.join(dir, kind.replace(/\W+/g, '-'));
      await saveModel(student, out);
      const x = input(teacher, 4, 1);
      const loaded = await loadModel(out);
      tf.tidy(() => {
        const a = student.predict(x) as tf.Tensor;
        const b = loaded.model.predict(x) as tf.Tensor;
        const values = Array.from(a.dataSync());
        expect(values.every(Number.isFinite)).toBe(true);
        expect(Array.from(b.dataSync())).toEqual(values);
        // teacher ended in softmax, so does the student: rows sum to 1
        for (const s of Array.from(tf.sum(a, 1).dataSync())) expect(s).toBeCloseTo(1, 5);
      });
      loaded.model.dispose();
      x.dispose();
      student.dispose();
      expect(tf.memory().numTensors).toBe(n0);
      teacher.dispose();
    });
  }

  it('exposes logits through a weight-sharing view (separate softmax layer)', async () => {
    const teacher = vggTeacher({ size: 8 });
    const r = await lighten(teacher);
    const view = await logitsModel(r.student);
    expect(view.sharesWeights).toBe(true);
    expect(view.model.outputs[0]!.sourceLayer.name).toBe(r.logitsLayer);
    tf.tidy(() => {
      const x = input(teacher, 2, 5);
      const p = r.student.predict(x) as tf.Tensor;
      const z = view.model.predict(x) as tf.Tensor;
      expect(tf.max(tf.abs(tf.sub(tf.softmax(z), p))).dataSync()[0]).toBeLessThan(1e-6);
    });
    r.student.dispose();
    const noSoftmax = await lighten(teacher, { softmax: false });
    expect(noSoftmax.softmaxLayer).toBeNull();
    expect(noSoftmax.student.outputs[0]!.sourceLayer.name).toBe(noSoftmax.logitsLayer);
    noSoftmax.student.dispose();
    teacher.dispose();
  });

  it('depth keeps the first convs of each stage and every downsampling conv', async () => {
    const teacher = residualTeacher({ size: 16 });
    const full = await lighten(teacher);
    const shallow = await lighten(teacher, { depth: 1 });
    expect(shallow.droppedConvs.sort()).toEqual(['b1_c1', 'b1_c2', 'b2_c2']);
    expect(shallow.summary.student.params).toBeLessThan(full.summary.student.params);
    expect(shallow.summary.student.macs).toBeLessThan(full.summary.student.macs);
    const names = shallow.student.layers.map((l) => l.name);
    expect(names).toContain('b2_c1_dw'); // stride 2: kept
    expect(names).toContain('b2_short'); // 1×1 stride 2 projection: kept
    expect(shallow.student.outputs[0]!.shape).toEqual(teacher.outputs[0]!.shape);
    expect(shallow.stages).toHaveLength(2);
    full.student.dispose();
    shallow.student.dispose();
    teacher.dispose();
  });

  it('depth per stage: only the listed stage loses its extra convs; the last entry repeats; bad counts refused', async () => {
    const teacher = buildReferenceTeacher({ seed: 0, inputShape: [16, 16, 1] }); // 3 stages × 2 convs
    const first = await lighten(teacher, { depth: [1, 2] });
    expect(first.droppedConvs).toEqual(['s1_conv2']); // stage 1 keeps one conv; stages 2 and 3 (last entry repeated) keep both
    const all = await lighten(teacher, { depth: [1] });
    expect(all.droppedConvs.sort()).toEqual(['s1_conv2', 's2_conv2', 's3_conv2']);
    const same = await lighten(teacher, { depth: 1 });
    expect(same.droppedConvs.sort()).toEqual(all.droppedConvs.sort());
    await expect(lighten(teacher, { depth: [1, 0] })).rejects.toMatchObject({ code: 'EDGEKT_ERR_USAGE' });
    await expect(lighten(teacher, { depth: [] })).rejects.toMatchObject({ code: 'EDGEKT_ERR_USAGE' });
    for (const r of [first, all, same]) r.student.dispose();
    teacher.dispose();
  });

  it('is seeded: same seed, same weights; another seed, other weights', async () => {
    const teacher = vggTeacher({ size: 8 });
    const [a, b, c] = await Promise.all([lighten(teacher, { seed: 7 }), lighten(teacher, { seed: 7 }), lighten(teacher, { seed: 8 })]);
    const flat = (m: tf.LayersModel) => m.getWeights().flatMap((w) => Array.from(w.dataSync()));
    expect(flat(a.student)).toEqual(flat(b.student));
    expect(flat(a.student)).not.toEqual(flat(c.student));
    for (const r of [a, b, c]) r.student.dispose();
    teacher.dispose();
  });

  it('pins channels of a residual branch added to the model input', async () => {
    const x = tf.input({ shape: [8, 8, 3], name: 'in' });
    const y = tf.layers.conv2d({ name: 'c', filters: 3, kernelSize: 3, padding: 'same' }).apply(x) as tf.SymbolicTensor;
    const s = tf.layers.add({ name: 'a' }).apply([x, y]) as tf.SymbolicTensor;
    const z = tf.layers.conv2d({ name: 'c2', filters: 16, kernelSize: 3, padding: 'same' }).apply(s) as tf.SymbolicTensor;
    const o = tf.layers.dense({ name: 'o', units: 4 }).apply(tf.layers.flatten().apply(z) as tf.SymbolicTensor) as tf.SymbolicTensor;
    const teacher = tf.model({ inputs: x, outputs: o });
    const g = planGraph(planStudent(graphFromModel(teacher)));
    expect(getNode(g, 'c').outputShape).toEqual([8, 8, 3]);
    expect(getNode(g, 'c2_pw').outputShape).toEqual([8, 8, 8]);
    teacher.dispose();
  });

  it('trains: one fit step on the student gives a finite loss', async () => {
    const teacher = vggTeacher({ size: 8 });
    const { student } = await lighten(teacher);
    student.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy' });
    const x = input(teacher, 8, 2);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32'), 10);
    const h = await student.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
    expect(Number.isFinite(h.history.loss![0] as number)).toBe(true);
    tf.dispose([x, y]);
    student.dispose();
    teacher.dispose();
  });

  it('refuses a teacher whose output is not a class vector', async () => {
    const m = tf.sequential({ layers: [tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3 })] });
    let code = '';
    try {
      planStudent(graphFromModel(m));
    } catch (e) {
      code = isEdgektError(e) ? e.code : 'other';
    }
    expect(code).toBe('EDGEKT_ERR_MODEL_UNSUPPORTED');
    m.dispose();
  });
});

describe('lighten on other supported layers', () => {
  it('handles separable, depthwise (multiplier 2), LeakyReLU, average pooling and a global max pooling head', async () => {
    const x = tf.input({ shape: [16, 16, 3], name: 'in' });
    let h = tf.layers.conv2d({ name: 'c1', filters: 16, kernelSize: 3, padding: 'same' }).apply(x) as tf.SymbolicTensor;
    h = tf.layers.leakyReLU({ name: 'lr', alpha: 0.1 }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.separableConv2d({ name: 'sep', filters: 32, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu6' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3, depthMultiplier: 2, padding: 'same' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.conv2d({ name: 'c2', filters: 64, kernelSize: 5, padding: 'valid', activation: 'relu' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.averagePooling2d({ name: 'ap', poolSize: 2 }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.globalMaxPooling2d({ name: 'gmp' }).apply(h) as tf.SymbolicTensor;
    const o = tf.layers.dense({ name: 'out', units: 5 }).apply(h) as tf.SymbolicTensor;
    const teacher = tf.model({ inputs: x, outputs: o });
    const r = await lighten(teacher, { widthMultiplier: 0.5 });
    const g = r.studentGraph;
    expect(getNode(g, 'sep').outputShape).toEqual([8, 8, 16]);
    expect(getNode(g, 'dw').outputShape).toEqual([8, 8, 32]); // depth multiplier 2 over 16 student channels
    expect(getNode(g, 'c2_dw').outputShape).toEqual([4, 4, 32]); // 5×5 valid kept on the depthwise
    expect(getNode(g, 'c2_pw').outputShape).toEqual([4, 4, 32]);
    expect(r.softmaxLayer).toBeNull();
    expect(r.student.outputs[0]!.shape).toEqual([null, 5]);
    expect(r.summary.student.params).toBeLessThan(r.summary.teacher.params);
    expect(r.summary.student.macs).toBeLessThan(r.summary.teacher.macs);
    tf.tidy(() => {
      const y = r.student.predict(tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 4)) as tf.Tensor;
      expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
    });
    r.student.dispose();
    teacher.dispose();
  });
});
