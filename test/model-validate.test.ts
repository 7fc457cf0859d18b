import { mkdtemp, readFile, rm, writeFile, truncate, unlink, rename } from 'node:fs/promises';
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
  const { mkdir } = await import('node:fs/promises');
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
