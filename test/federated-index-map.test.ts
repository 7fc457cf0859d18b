import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { lighten } from '../src/compress/lighten/index.js';
import { applyPlan, buildDependencyGraph, pruneStep, type PrunePlan } from '../src/compress/prune/index.js';
import {
  aggregate,
  composeKept,
  globalOffsets,
  indexMapFromKept,
  prefixKept,
  sliceForDevice,
  sliceTensor,
  type IndexMap,
} from '../src/federated/index.js';
import { indexMapForModel, setModelWeights, weightSetFromModel, weightSpecsOf } from '../src/federated/tfjs-weights.js';
import { initBackend } from '../src/runtime/backend.js';
import { codeOf } from './helpers/errors.js';
import { residualTeacher, vggTeacher } from './helpers/model-fixtures.js';

/** Conv → BN → depthwise → pointwise → separable (multiplier 2) → flatten → dense: every slicing rule. */
function seqModel(): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [8, 8, 2], filters: 8, kernelSize: 3, padding: 'same', name: 'c1' }));
  m.add(tf.layers.batchNormalization({ name: 'bn1' }));
  m.add(tf.layers.reLU({ name: 'r1' }));
  m.add(tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', name: 'dw' }));
  m.add(tf.layers.batchNormalization({ name: 'bn2' }));
  m.add(tf.layers.conv2d({ filters: 12, kernelSize: 1, activation: 'relu', name: 'pw' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2, name: 'mp' }));
  m.add(tf.layers.separableConv2d({ filters: 8, kernelSize: 3, padding: 'same', depthMultiplier: 2, name: 'sep' }));
  m.add(tf.layers.flatten({ name: 'fl' }));
  m.add(tf.layers.dense({ units: 16, activation: 'relu', name: 'fc1' }));
  m.add(tf.layers.dense({ units: 3, activation: 'softmax', name: 'fc2' }));
  return m;
}

/** Every weight distinct (BN statistics included), so a wrong index cannot go unnoticed. */
function distinctWeights(model: tf.LayersModel): void {
  let k = 0;
  for (const l of model.layers) {
    if (l.weights.length === 0) continue;
    l.setWeights(l.weights.map((v) => {
      const n = v.shape.reduce<number>((a, d) => a * (d ?? 1), 1);
      const t = tf.tensor(Array.from({ length: n }, () => 1 + k++), v.shape as number[]);
      return t;
    }));
  }
}

async function prunedTwice(model: tf.LayersModel): Promise<{ pruned: tf.LayersModel; plans: PrunePlan[] }> {
  const a = await pruneStep(model, { fraction: 0.3, minChannels: 2 });
  // A hand-written second plan keeping non-prefix channels, so composition is really exercised.
  const graph = buildDependencyGraph(a.model);
  const second: PrunePlan = {
    version: 1,
    groups: graph.groups.filter((g) => g.prunable && g.size > 2).map((g) => ({ key: g.key, size: g.size, keep: Array.from({ length: g.size }, (_, i) => i).filter((i) => i % 3 !== 0) })),
  };
  const pruned = await applyPlan(a.model, second);
  a.model.dispose();
  return { pruned, plans: [a.plan, second] };
}

function expectSameWeights(actual: Record<string, { shape: readonly number[]; values: Float32Array }>, expected: Record<string, { shape: readonly number[]; values: Float32Array }>): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [name, t] of Object.entries(expected)) {
    expect(actual[name]!.shape, name).toEqual(t.shape);
    expect(Array.from(actual[name]!.values), name).toEqual(Array.from(t.values));
  }
}

describe('index maps', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('globalOffsets and sliceTensor pick the kept rows and columns in row-major order', () => {
    // [2,3] = [[0,1,2],[3,4,5]]; keep row 1, columns 0 and 2.
    expect(Array.from(globalOffsets([2, 3], [[1], [0, 2]]))).toEqual([3, 5]);
    const t = sliceTensor({ shape: [2, 3], values: Float32Array.of(0, 1, 2, 3, 4, 5) }, [null, [2]]);
    expect(t.shape).toEqual([2, 1]);
    expect(Array.from(t.values)).toEqual([2, 5]);
  });

  it('composes plans: a later plan indexes the already-pruned channels', () => {
    const graph = { groups: [{ id: 0, key: 'c', size: 6, members: [], prunable: true, reasons: [] }] };
    const kept = composeKept(graph, [
      { groups: [{ key: 'c', size: 6, keep: [1, 2, 4, 5] }] },
      { groups: [{ key: 'c', size: 4, keep: [0, 3] }] },
    ]);
    expect(kept).toEqual({ c: [1, 5] });
    expect(prefixKept(kept)).toEqual({ c: [0, 1] });
    expect(codeOf(() => composeKept(graph, [{ groups: [{ key: 'c', size: 5, keep: [0] }] }]))).toBe('EDGEKT_ERR_PRUNE_PLAN');
    expect(codeOf(() => composeKept(graph, [{ groups: [{ key: 'x', size: 6, keep: [0] }] }]))).toBe('EDGEKT_ERR_PRUNE_PLAN');
    expect(codeOf(() => composeKept(graph, [{ groups: [{ key: 'c', size: 6, keep: [2, 1] }] }]))).toBe('EDGEKT_ERR_PRUNE_PLAN');
  });

  const cases: Array<[string, () => Promise<tf.LayersModel>]> = [
    ['conv/BN/depthwise/separable×2/flatten/dense', async () => seqModel()],
    ['residual (Add-coupled groups)', async () => residualTeacher({ size: 8, classes: 3 })],
    ['lightened VGG student', async () => (await lighten(vggTeacher({ size: 8 }), { seed: 3 })).student],
  ];
  for (const [label, build] of cases) {
    it(`slicing the global weights by the composed map of two real applyPlan steps gives the pruned model: ${label}`, async () => {
      const global = await build();
      distinctWeights(global);
      const { pruned, plans } = await prunedTwice(global);
      expect(plans[0]!.groups.length).toBeGreaterThan(0);
      expect(plans[1]!.groups.length).toBeGreaterThan(0);
      const map = indexMapForModel(global, plans);
      expect(Object.values(map).some((axes) => axes.some((a) => a !== null))).toBe(true);
      expectSameWeights(sliceForDevice(weightSetFromModel(global), map), weightSetFromModel(pruned));

      // The prefix map keeps the same counts on every axis, so it fits the same pruned architecture.
      const graph = buildDependencyGraph(global);
      const specs = weightSpecsOf(global);
      const prefix: IndexMap = indexMapFromKept(graph, specs, prefixKept(composeKept(graph, plans)));
      const sliced = sliceForDevice(weightSetFromModel(global), prefix);
      for (const [name, t] of Object.entries(weightSetFromModel(pruned))) expect(sliced[name]!.shape, name).toEqual(t.shape);
      const before = tf.memory().numTensors;
      setModelWeights(pruned, sliced);
      expect(tf.memory().numTensors).toBe(before);
      expectSameWeights(weightSetFromModel(pruned), sliced);

      // A device sending back exactly its slice leaves the global model unchanged, through the validator.
      const globalSet = weightSetFromModel(global);
      const own = sliceForDevice(globalSet, map);
      const r = aggregate(globalSet, [{ clientId: 'd', round: 0, numSamples: 3, weights: own, indexMap: map }], { round: 0, strategy: { kind: 'fedavg' } });
      expect(r.dropped).toEqual([]);
      expectSameWeights(r.weights, globalSet);
      global.dispose();
      pruned.dispose();
    });
  }
});
