import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildGraph, graphFromModel, getNode } from '../src/model/index.js';
import { residualTeacher, vggTeacher } from './helpers/model-fixtures.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('layer graph', () => {
  it('counts parameters and MACs of a tiny model by hand, and agrees with countParams()', () => {
    const m = tf.sequential({ name: 'tiny' });
    m.add(tf.layers.conv2d({ name: 'conv', inputShape: [6, 6, 2], filters: 4, kernelSize: 3 })); // valid → 4x4x4
    m.add(tf.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3, padding: 'same', depthMultiplier: 2 })); // 4x4x8
    m.add(tf.layers.batchNormalization({ name: 'bn' }));
    m.add(tf.layers.separableConv2d({ name: 'sep', filters: 6, kernelSize: 3, strides: 2, padding: 'same' })); // 2x2x6
    m.add(tf.layers.flatten({ name: 'flat' })); // 24
    m.add(tf.layers.dense({ name: 'fc', units: 5 }));
    const g = graphFromModel(m);
    // conv: 3*3*2*4 + 4; dw: 3*3*4*2 + 8; bn: 4*8; sep: 3*3*8 + 8*6 + 6; fc: 24*5 + 5
    const params = { conv: 76, dw: 80, bn: 32, sep: 126, flat: 0, fc: 125 };
    // conv: 4*4*(3*3*2)*4; dw: 4*4*(3*3)*4*2; sep: 2*2*(3*3*8 + 8*6); fc: 24*5
    const macs = { conv: 1152, dw: 1152, bn: 0, sep: 480, flat: 0, fc: 120 };
    for (const [name, p] of Object.entries(params)) expect(getNode(g, name).params, name).toBe(p);
    for (const [name, c] of Object.entries(macs)) expect(getNode(g, name).macs, name).toBe(c);
    expect(g.totalParams).toBe(439);
    expect(g.totalParams).toBe(m.countParams());
    expect(g.trainableParams).toBe(439 - 16); // BN moving mean/variance are not trainable
    expect(g.totalMacs).toBe(2904);
    expect(getNode(g, 'sep').outputShape).toEqual([2, 2, 6]);
    expect(g.outputShape).toEqual([5]);
    m.dispose();
  });

  it('matches countParams() and output shapes on Sequential and residual teachers', () => {
    for (const m of [vggTeacher(), residualTeacher()]) {
      const g = graphFromModel(m);
      expect(g.totalParams).toBe(m.countParams());
      expect(g.outputShape).toEqual(m.outputs[0]!.shape.slice(1));
      for (const layer of m.layers) {
        const node = getNode(g, layer.name);
        expect(node.outputShape, layer.name).toEqual((layer.outputShape as number[]).slice(1));
        expect(node.params, layer.name).toBe(layer.countParams());
      }
      m.dispose();
    }
  });

  it('finds stages by resolution with the last layer before the resolution changes as hint', () => {
    const vgg = vggTeacher({ size: 16 });
    const g = graphFromModel(vgg);
    expect(g.stages.map((s) => [s.resolution, s.hint, s.channels])).toEqual([
      [[16, 16], 'r2', 16],
      [[8, 8], 'c4', 32],
    ]);
    expect(g.stages[0]!.convs).toEqual(['c1', 'c2']);
    const res = residualTeacher({ size: 16 });
    const r = graphFromModel(res);
    expect(r.stages.map((s) => [s.resolution, s.hint, s.channels])).toEqual([
      [[16, 16], 'b1_out', 16],
      [[8, 8], 'b2_out', 32],
    ]);
    expect(getNode(r, 'b1_add').inbound).toEqual(['stem_relu', 'b1_bn2']);
    expect(getNode(r, 'stem_relu').outbound.sort()).toEqual(['b1_add', 'b1_c1']);
    vgg.dispose();
    res.dispose();
  });

  it('builds from JSON alone, without a live model', () => {
    const m = vggTeacher({ size: 8 });
    const json = m.toJSON(null, false) as Record<string, unknown>;
    const params = m.countParams();
    m.dispose();
    const n0 = tf.memory().numTensors;
    const g = buildGraph(json);
    expect(g.totalParams).toBe(params);
    expect(tf.memory().numTensors).toBe(n0);
  });
});
