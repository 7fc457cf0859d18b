import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  applyPlan,
  buildDependencyGraph,
  filterImportance,
  groupImportance,
  normalizePerLayer,
  planGlobal,
  pruneStep,
  replayPlans,
  validatePlan,
  type DependencyGraph,
  type PrunePlan,
} from '../src/compress/prune/index.js';
import { initBackend } from '../src/runtime/backend.js';
import { codeOf } from './helpers/errors.js';

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
  m.add(tf.layers.dropout({ rate: 0.1, name: 'drop' }));
  m.add(tf.layers.dense({ units: 3, activation: 'softmax', name: 'fc2' }));
  return m;
}

function residualModel(): tf.LayersModel {
  const x = tf.input({ shape: [6, 6, 3], name: 'in' });
  const conv = (t: tf.SymbolicTensor, f: number, name: string, k = 3): tf.SymbolicTensor =>
    tf.layers.conv2d({ filters: f, kernelSize: k, padding: 'same', name }).apply(t) as tf.SymbolicTensor;
  const bn = (t: tf.SymbolicTensor, name: string): tf.SymbolicTensor => tf.layers.batchNormalization({ name }).apply(t) as tf.SymbolicTensor;
  const relu = (t: tf.SymbolicTensor): tf.SymbolicTensor => tf.layers.activation({ activation: 'relu' }).apply(t) as tf.SymbolicTensor;
  const stem = relu(bn(conv(x, 8, 'stem'), 'stem_bn'));
  const b1 = bn(conv(stem, 8, 'b1'), 'b1_bn');
  const a1 = relu(tf.layers.add({ name: 'add1' }).apply([stem, b1]) as tf.SymbolicTensor);
  const b2 = bn(conv(a1, 8, 'b2', 1), 'b2_bn');
  const a2 = tf.layers.add({ name: 'add2' }).apply([a1, b2]) as tf.SymbolicTensor;
  const mid = relu(conv(a2, 6, 'mid'));
  const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(mid) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 4, name: 'head' }).apply(gap) as tf.SymbolicTensor;
  return tf.model({ inputs: x, outputs: out });
}

/** Randomises BN statistics so the equality tests are not trivially satisfied by identity BNs. */
function randomiseBn(model: tf.LayersModel, seed: number): void {
  for (const l of model.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const ws = l.getWeights();
    l.setWeights(ws.map((w, i) => tf.randomUniform(w.shape, i === 3 ? 0.5 : -0.5, 1.5, 'float32', seed + i)));
  }
}

/** Zeroes channel c of a group everywhere it is produced or carried, so the channel outputs 0. */
function zeroChannel(model: tf.LayersModel, graph: DependencyGraph, key: string, c: number): void {
  const group = graph.groups.find((g) => g.key === key)!;
  for (const m of group.members) {
    if (m.role === 'in') continue;
    const layer = model.getLayer(m.layer);
    const values = layer.weights.map((v) => {
      const t = v.read();
      const name = v.originalName.split('/').pop()!;
      if (name === 'gamma' || name === 'moving_variance') return t.clone();
      // Depthwise kernels [kh, kw, C, 1] carry the channel on axis 2; everything else on the last.
      const axis = name === 'depthwise_kernel' ? 2 : t.rank - 1;
      const shape = t.shape.map((d, i) => (i === axis ? d : 1));
      const keep = tf.tensor(Array.from({ length: t.shape[axis]! }, (_, i) => (i === c ? 0 : 1)), shape);
      const mask = tf.scalar(0);
      const r = t.mul(keep);
      tf.dispose([mask, keep]);
      return r;
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}

function keepAllBut(graph: DependencyGraph, key: string, drop: number[]): PrunePlan {
  const g = graph.groups.find((x) => x.key === key)!;
  return { version: 1, groups: [{ key, size: g.size, keep: [...Array(g.size).keys()].filter((c) => !drop.includes(c)) }] };
}

function maxDiff(a: tf.LayersModel, b: tf.LayersModel, x: tf.Tensor): number {
  return tf.tidy(() => (a.predict(x) as tf.Tensor).sub(b.predict(x) as tf.Tensor).abs().max().dataSync()[0]!);
}


describe('structured pruning', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('groups a Sequential model: conv+BN+depthwise+BN, separable inputs, dense after flatten', () => {
    const m = seqModel();
    const g = buildDependencyGraph(m);
    const c1 = g.groups.find((x) => x.key === 'c1')!;
    expect(c1.prunable).toBe(true);
    expect(c1.members.map((x) => `${x.layer}:${x.role}`).sort()).toEqual(['bn1:channel', 'bn2:channel', 'c1:out', 'dw:channel', 'pw:in']);
    const sep = g.groups.find((x) => x.key === 'sep')!;
    expect(sep.members.find((x) => x.layer === 'fc1')).toMatchObject({ role: 'in', spatial: 16 });
    expect(g.groups.find((x) => x.key === 'pw')!.members.find((x) => x.layer === 'sep')).toMatchObject({ role: 'in', multiplier: 2 });
    expect(g.groups.find((x) => x.key === 'fc2')!.prunable).toBe(false);
    expect(buildDependencyGraph(m, { skipLayers: ['fc1'] }).groups.find((x) => x.key === 'fc1')!.prunable).toBe(false);
    m.dispose();
  });

  it('removing zero channels keeps the outputs of a Sequential model (flatten, separable, depthwise)', async () => {
    const m = seqModel();
    randomiseBn(m, 1);
    const g = buildDependencyGraph(m);
    zeroChannel(m, g, 'c1', 2);
    zeroChannel(m, g, 'c1', 5);
    zeroChannel(m, g, 'pw', 0);
    zeroChannel(m, g, 'sep', 7);
    zeroChannel(m, g, 'fc1', 3);
    const plan: PrunePlan = {
      version: 1,
      groups: [
        ...keepAllBut(g, 'c1', [2, 5]).groups,
        ...keepAllBut(g, 'pw', [0]).groups,
        ...keepAllBut(g, 'sep', [7]).groups,
        ...keepAllBut(g, 'fc1', [3]).groups,
      ],
    };
    const x = tf.randomNormal([3, 8, 8, 2], 0, 1, 'float32', 3);
    const before = tf.memory().numTensors;
    const p = await applyPlan(m, plan);
    expect(tf.memory().numTensors - before).toBe(p.weights.length);
    expect(p.countParams()).toBeLessThan(m.countParams());
    expect(p.getLayer('c1').outputShape).toEqual([null, 8, 8, 6]);
    expect(p.getLayer('fc1').outputShape).toEqual([null, 15]);
    expect(maxDiff(m, p, x)).toBeLessThan(1e-5);
    // A non-zero channel does change the outputs: the test can fail.
    const q = await applyPlan(m, keepAllBut(g, 'c1', [0]));
    expect(maxDiff(m, q, x)).toBeGreaterThan(1e-4);
    tf.dispose([x]);
    p.dispose();
    q.dispose();
    m.dispose();
  });

  it('residual groups are the union of the Add branches and stay consistent after pruning', async () => {
    const m = residualModel();
    randomiseBn(m, 5);
    const g = buildDependencyGraph(m);
    const res = g.groups.find((x) => x.key === 'b1+b2+stem')!;
    expect(res.prunable).toBe(true);
    expect(res.members.filter((x) => x.role === 'in').map((x) => x.layer).sort()).toEqual(['b1', 'b2', 'mid']);
    expect(g.groups.find((x) => x.key === 'head')!.prunable).toBe(false);
    expect(g.groups.find((x) => x.key === 'mid')!.members.find((x) => x.layer === 'head')!.spatial).toBe(1);
    zeroChannel(m, g, 'b1+b2+stem', 1);
    zeroChannel(m, g, 'b1+b2+stem', 6);
    zeroChannel(m, g, 'mid', 4);
    const plan: PrunePlan = { version: 1, groups: [...keepAllBut(g, 'b1+b2+stem', [1, 6]).groups, ...keepAllBut(g, 'mid', [4]).groups] };
    const p = await applyPlan(m, plan);
    for (const name of ['add1', 'add2']) {
      const shapes = p.getLayer(name).inboundNodes[0]!.inputTensors.map((t) => t.shape[3]);
      expect(shapes).toEqual([6, 6]);
    }
    const x = tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 9);
    expect(maxDiff(m, p, x)).toBeLessThan(1e-5);
    x.dispose();
    p.dispose();
    m.dispose();
  });

  it('importance: L1, L2 and FPGM match hand-computed values; per-layer normalisation', () => {
    const m = tf.sequential();
    m.add(tf.layers.conv2d({ inputShape: [2, 2, 2], filters: 3, kernelSize: 1, name: 'k', useBias: false }));
    m.add(tf.layers.flatten());
    m.add(tf.layers.dense({ units: 2 }));
    // Filters (columns over 2 input channels): f0 = (1, 0), f1 = (-2, 0), f2 = (3, 4).
    const k = tf.tensor4d([1, -2, 3, 0, 0, 4], [1, 1, 2, 3]);
    m.getLayer('k').setWeights([k]);
    k.dispose();
    const close = (a: Float32Array, b: number[]): void => a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 5));
    close(filterImportance(m.getLayer('k'), 'l1'), [1, 2, 7]);
    close(filterImportance(m.getLayer('k'), 'l2'), [1, 2, 5]);
    // |f0-f1| = 3, |f0-f2| = sqrt(4+16), |f1-f2| = sqrt(25+16)
    const d01 = 3, d02 = Math.sqrt(20), d12 = Math.sqrt(41);
    close(filterImportance(m.getLayer('k'), 'fpgm'), [d01 + d02, d01 + d12, d02 + d12]);
    close(normalizePerLayer(new Float32Array([1, 2, 7])), [0.3, 0.6, 2.1]);
    const gi = groupImportance(m, buildDependencyGraph(m), 'l1');
    expect(gi.map((x) => x.key)).toEqual(['k']);
    close(gi[0]!.scores, [0.3, 0.6, 2.1]);
    m.dispose();
  });

  it('plans globally within min-channel and rounding limits', () => {
    const imp = [
      { groupId: 0, key: 'a', scores: new Float32Array([0.1, 0.2, 3, 4, 5, 6, 7, 8]) },
      { groupId: 1, key: 'b', scores: new Float32Array([0.05, 0.15, 0.25, 0.35, 9, 9, 9, 9]) },
    ];
    const p = planGlobal(imp, { fraction: 0.25, minChannels: 2 });
    // 0.25 of 16 channels: the four lowest scores are b0, a0, b1, a1.
    expect(p.groups.map((g) => [g.key, g.keep.length])).toEqual([['a', 6], ['b', 6]]);
    expect(p.groups.find((g) => g.key === 'b')!.keep).toEqual([2, 3, 4, 5, 6, 7]);
    const r = planGlobal(imp, { fraction: 0.25, minChannels: 2, roundTo: 4 });
    for (const g of r.groups) expect(g.keep.length % 4).toBe(0);
    expect(r.groups.reduce((a, g) => a + g.size - g.keep.length, 0)).toBeGreaterThanOrEqual(4);
    const floor = planGlobal(imp, { fraction: 0.9, minChannels: 3 });
    for (const g of floor.groups) expect(g.keep.length).toBeGreaterThanOrEqual(3);
    expect(codeOf(() => planGlobal(imp, { fraction: 1.5 }))).toBe('EDGEKT_ERR_PRUNE_PLAN');
  });

  it('validates plans before mutating', async () => {
    const m = residualModel();
    const g = buildDependencyGraph(m);
    const ok = keepAllBut(g, 'mid', [0]);
    expect(() => validatePlan(ok, g)).not.toThrow();
    const bad: PrunePlan[] = [
      { version: 1, groups: [{ key: 'mid', size: 5, keep: [0] }] },
      { version: 1, groups: [{ key: 'nope', size: 6, keep: [0] }] },
      { version: 1, groups: [{ key: 'mid', size: 6, keep: [2, 1] }] },
      { version: 1, groups: [{ key: 'mid', size: 6, keep: [] }] },
      { version: 1, groups: [{ key: 'mid', size: 6, keep: [6] }] },
      { version: 1, groups: [{ key: 'head', size: 4, keep: [0, 1] }] },
      { version: 1, groups: [ok.groups[0]!, ok.groups[0]!] },
    ];
    for (const plan of bad) expect(codeOf(() => validatePlan(plan, g))).toBe('EDGEKT_ERR_PRUNE_PLAN');
    const before = tf.memory().numTensors;
    await expect(applyPlan(m, bad[0]!)).rejects.toMatchObject({ code: 'EDGEKT_ERR_PRUNE_PLAN' });
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it('iterative steps shrink the model, leak nothing, and replay from history', async () => {
    const m = residualModel();
    const x = tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 11);
    const before = tf.memory().numTensors;
    const s1 = await pruneStep(m, { fraction: 0.3, minChannels: 2 });
    const s2 = await pruneStep(s1.model, { fraction: 0.3, minChannels: 2, importance: 'fpgm' });
    expect(s1.removedChannels).toBeGreaterThan(0);
    expect(s2.model.countParams()).toBeLessThan(s1.model.countParams());
    const replayed = await replayPlans(m, [s1.plan, s2.plan]);
    expect(replayed.countParams()).toBe(s2.model.countParams());
    expect(maxDiff(replayed, s2.model, x)).toBe(0);
    const live = s1.model.weights.length + s2.model.weights.length + replayed.weights.length;
    expect(tf.memory().numTensors - before).toBe(live);
    s1.model.dispose();
    s2.model.dispose();
    replayed.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    m.dispose();
  });
});
