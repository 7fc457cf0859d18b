import { mkdir, mkdtemp, readFile, rm, writeFile, unlink, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isEdgektError } from '../src/core/errors.js';
import { loadModel, saveModel } from '../src/model/index.js';
import { residualTeacher, vggTeacher } from './helpers/model-fixtures.js';

let dir: string;
let seqDir: string;
let resDir: string;
let n = 0;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(path.join(tmpdir(), 'edgekt-model-validate-'));
  seqDir = path.join(dir, 'seq');
  resDir = path.join(dir, 'res');
  const a = vggTeacher({ size: 8 });
  const b = residualTeacher({ size: 8 });
  await saveModel(a, seqDir);
  await saveModel(b, resDir);
  a.dispose();
  b.dispose();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Copies a saved model into a fresh dir, letting the test edit model.json and the weights. */
async function variant(from: string, edit: { json?: (j: any) => unknown; weights?: (w: Buffer) => Buffer } = {}): Promise<string> {
  const out = path.join(dir, `v${n++}`);
  const j = JSON.parse(await readFile(path.join(from, 'model.json'), 'utf8'));
  const w = await readFile(path.join(from, 'weights.bin'));
  await mkdir(out);
  await writeFile(path.join(out, 'model.json'), typeof edit.json === 'function' ? JSON.stringify(edit.json(j) ?? j) : JSON.stringify(j));
  await writeFile(path.join(out, 'weights.bin'), edit.weights ? edit.weights(w) : w);
  return out;
}

async function refusal(p: Promise<unknown>): Promise<string> {
  const n0 = tf.memory().numTensors;
  try {
    await p;
  } catch (e) {
    expect(tf.memory().numTensors).toBe(n0); // refused before allocating anything
    if (isEdgektError(e)) {
      if (process.env.EDGEKT_TEST_VERBOSE) console.log(e.code, e.message);
      return e.code;
    }
    throw e;
  }
  throw new Error('expected a refusal');
}

async function savedOf(model: tf.LayersModel): Promise<string> {
  const out = path.join(dir, `m${n++}`);
  await saveModel(model, out);
  model.dispose();
  return out;
}

describe('model refusals (stable codes, no allocation)', () => {
  it('refuses an LSTM', async () => {
    const m = tf.sequential({ layers: [tf.layers.lstm({ units: 4, inputShape: [5, 3] }), tf.layers.dense({ units: 2 })] });
    expect(await refusal(loadModel(await savedOf(m)))).toBe('EDGEKT_ERR_MODEL_UNSUPPORTED');
  });

  it('refuses a Conv2DTranspose', async () => {
    const m = tf.sequential({ layers: [tf.layers.conv2dTranspose({ filters: 2, kernelSize: 3, inputShape: [4, 4, 1] })] });
    expect(await refusal(loadModel(await savedOf(m)))).toBe('EDGEKT_ERR_MODEL_UNSUPPORTED');
  });

  it('refuses channels_first, unsupported activations and graph models', async () => {
    const cf = await variant(seqDir, { json: (j) => { j.modelTopology.config.layers[0].config.data_format = 'channels_first'; } });
    expect(await refusal(loadModel(cf))).toBe('EDGEKT_ERR_MODEL_UNSUPPORTED');
    const act = await variant(seqDir, { json: (j) => { j.modelTopology.config.layers[0].config.activation = 'my_custom'; } });
    expect(await refusal(loadModel(act))).toBe('EDGEKT_ERR_MODEL_UNSUPPORTED');
    const graph = await variant(seqDir, { json: (j) => { j.format = 'graph-model'; } });
    expect(await refusal(loadModel(graph))).toBe('EDGEKT_ERR_MODEL_UNSUPPORTED');
  });

  it('refuses a declared input shape whose activations need gigabytes', async () => {
    const big = await variant(resDir, {
      json: (j) => { j.modelTopology.config.layers[0].config.batch_input_shape = [null, 30000, 30000, 3]; },
    });
    expect(await refusal(loadModel(big))).toBe('EDGEKT_ERR_MODEL_TOO_LARGE');
  });

  it('refuses more parameters than the limit', async () => {
    expect(await refusal(loadModel(seqDir, { limits: { maxParams: 1000 } }))).toBe('EDGEKT_ERR_MODEL_TOO_LARGE');
  });

  it('refuses an undeclared input size', async () => {
    const open = await variant(resDir, { json: (j) => { j.modelTopology.config.layers[0].config.batch_input_shape = [null, null, null, 3]; } });
    expect(await refusal(loadModel(open))).toBe('EDGEKT_ERR_MODEL_UNSUPPORTED');
  });

  it('refuses truncated, padded or missing weight files', async () => {
    const short = await variant(seqDir, { weights: (w) => w.subarray(0, w.length - 4) });
    expect(await refusal(loadModel(short))).toBe('EDGEKT_ERR_MODEL_WEIGHTS');
    const long = await variant(seqDir, { weights: (w) => Buffer.concat([w, Buffer.alloc(4)]) });
    expect(await refusal(loadModel(long))).toBe('EDGEKT_ERR_MODEL_WEIGHTS');
    const missing = await variant(seqDir);
    await unlink(path.join(missing, 'weights.bin'));
    expect(await refusal(loadModel(missing))).toBe('EDGEKT_ERR_MODEL_WEIGHTS');
  });

  it('refuses NaN and infinite weights', async () => {
    for (const bad of [NaN, Infinity]) {
      const out = await variant(seqDir, {
        weights: (w) => {
          const c = Buffer.from(w);
          c.writeFloatLE(bad, 4 * 37);
          return c;
        },
      });
      expect(await refusal(loadModel(out))).toBe('EDGEKT_ERR_MODEL_WEIGHTS');
    }
  });

  it('refuses a manifest that does not match the topology', async () => {
    const shape = await variant(seqDir, { json: (j) => { j.weightsManifest[0].weights[0].shape = [3, 3, 1, 15]; } });
    expect(await refusal(loadModel(shape))).toBe('EDGEKT_ERR_MODEL_WEIGHTS');
    const lacking = await variant(seqDir, { json: (j) => { j.weightsManifest[0].weights.pop(); } });
    expect(await refusal(loadModel(lacking))).toBe('EDGEKT_ERR_MODEL_WEIGHTS');
  });

  it('refuses garbage JSON, non-models and a missing model.json', async () => {
    const garbage = await variant(seqDir);
    await writeFile(path.join(garbage, 'model.json'), '{"modelTopology": [1, 2');
    expect(await refusal(loadModel(garbage))).toBe('EDGEKT_ERR_MODEL_FORMAT');
    const notModel = await variant(seqDir, { json: () => ({ hello: 'world' }) });
    expect(await refusal(loadModel(notModel))).toBe('EDGEKT_ERR_MODEL_FORMAT');
    const badTopo = await variant(seqDir, { json: (j) => { j.modelTopology = { class_name: 'Sequential', config: 5 }; } });
    expect(await refusal(loadModel(badTopo))).toBe('EDGEKT_ERR_MODEL_FORMAT');
    const escape = await variant(seqDir, { json: (j) => { j.weightsManifest[0].paths = ['../seq/weights.bin']; } });
    expect(await refusal(loadModel(escape))).toBe('EDGEKT_ERR_MODEL_FORMAT');
    expect(await refusal(loadModel(path.join(dir, 'does-not-exist')))).toBe('EDGEKT_ERR_MODEL_FORMAT');
  });
});

describe('Keras converter formats', () => {
  it('loads a Keras 2 functional model.json (model_config wrapper, Functional, kwargs, sharded name)', async () => {
    const out = await variant(resDir, {
      json: (j) => {
        j.modelTopology = { keras_version: '2.13.1', backend: 'tensorflow', model_config: { ...j.modelTopology, class_name: 'Functional' } };
        j.weightsManifest[0].paths = ['group1-shard1of1.bin'];
        j.convertedBy = 'TensorFlow.js Converter v4.22.0';
        j.generatedBy = 'keras v2.13.1';
      },
    });
    await rename(path.join(out, 'weights.bin'), path.join(out, 'group1-shard1of1.bin'));
    const loaded = await loadModel(out);
    expect(loaded.graph.kind).toBe('functional');
    loaded.model.dispose();
  });

  it('loads Keras 3 style configs (batch_shape, __keras_tensor__ inbound nodes, dtype policy objects)', async () => {
    const out = await variant(resDir, {
      json: (j) => {
        const cfg = j.modelTopology.config;
        for (const l of cfg.layers) {
          if (l.class_name === 'InputLayer') {
            l.config.batch_shape = l.config.batch_input_shape;
            delete l.config.batch_input_shape;
          }
          l.config.dtype = { module: 'keras', class_name: 'DTypePolicy', config: { name: 'float32' } };
          const refs = (l.inbound_nodes[0] ?? []).map((r: unknown[]) => ({ class_name: '__keras_tensor__', config: { shape: [], dtype: 'float32', keras_history: [r[0], 0, 0] } }));
          l.inbound_nodes = refs.length === 0 ? [] : [{ args: refs.length === 1 ? refs : [refs], kwargs: {} }];
        }
        cfg.input_layers = cfg.input_layers[0];
        j.modelTopology.class_name = 'Functional';
      },
    });
    const loaded = await loadModel(out);
    expect(loaded.model.outputs[0]!.shape).toEqual([null, 10]);
    loaded.model.dispose();
  });
});

describe('Keras 2 Sequential and quantized weights', () => {
  it('loads a converted Keras 2 Sequential (explicit InputLayer, BN axis list, extra keys)', async () => {
    const out = await variant(seqDir, {
      json: (j) => {
        const layers = j.modelTopology.config.layers;
        const first = layers[0].config;
        layers.unshift({ class_name: 'InputLayer', config: { batch_input_shape: first.batch_input_shape, dtype: 'float32', sparse: false, ragged: false, name: 'c1_in' } });
        delete first.batch_input_shape;
        for (const l of layers) if (l.class_name === 'BatchNormalization') l.config.axis = [3];
        j.modelTopology = { keras_version: '2.12.0', backend: 'tensorflow', model_config: j.modelTopology };
      },
    });
    const loaded = await loadModel(out);
    expect(loaded.graph.input).toBe('c1_in');
    expect(loaded.graph.outputShape).toEqual([10]);
    loaded.model.dispose();
  });

  it('dequantizes uint8 and float16 weights (tensorflowjs_converter --quantize_*)', async () => {
    const json = JSON.parse(await readFile(path.join(seqDir, 'model.json'), 'utf8'));
    const f32 = new Float32Array(new Uint8Array(await readFile(path.join(seqDir, 'weights.bin'))).slice().buffer);
    const specs = json.weightsManifest[0].weights as Array<{ name: string; shape: number[] }>;
    // quantize every weight: uint8 for kernels, float16 for the rest
    const parts: Buffer[] = [];
    let at = 0;
    const expected: number[] = [];
    for (const s of specs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const vals = f32.subarray(at, at + n);
      at += n;
      if (s.name.endsWith('kernel')) {
        const min = Math.min(...vals);
        const scale = (Math.max(...vals) - min) / 255 || 1;
        const q = Buffer.from(Array.from(vals, (v) => Math.round((v - min) / scale)));
        (s as Record<string, unknown>).quantization = { dtype: 'uint8', scale, min };
        parts.push(q);
        expected.push(...Array.from(q, (b) => b * scale + min));
      } else {
        // known float16 bit patterns: 1, -2, 0.5, 0, 65504 (max), 2^-24 (smallest subnormal)
        const halves: Array<[number, number]> = [[0x3c00, 1], [0xc000, -2], [0x3800, 0.5], [0x0000, 0], [0x7bff, 65504], [0x0001, 2 ** -24]];
        const h = Buffer.alloc(2 * n);
        for (let i = 0; i < n; i++) {
          const [bits, value] = halves[(i + s.name.length) % halves.length]!;
          h.writeUInt16LE(bits, 2 * i);
          expected.push(s.name.endsWith('moving_variance') ? Math.abs(value) : value);
          if (s.name.endsWith('moving_variance')) h.writeUInt16LE(bits & 0x7fff, 2 * i);
        }
        (s as Record<string, unknown>).quantization = { dtype: 'float16' };
        parts.push(h);
      }
    }
    const out = path.join(dir, `q${n++}`);
      await mkdir(out);
    await writeFile(path.join(out, 'model.json'), JSON.stringify(json));
    await writeFile(path.join(out, 'weights.bin'), Buffer.concat(parts));
    const loaded = await loadModel(out);
    const got = loaded.model.getWeights().flatMap((w) => Array.from(w.dataSync()));
    expect(got.length).toBe(expected.length);
    got.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
    expect(got).toContain(65504);
    loaded.model.dispose();
  });
});
