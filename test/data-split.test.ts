import { describe, expect, it } from 'vitest';
import {
  classCounts, dirichletPartition, iidPartition, loadDataset, shardPartition, shuffledIndices, splitIndices, splitSet, subset,
  type ImageSet,
} from '../src/data/index.js';

/** count samples, label i % classes, every pixel of sample i equals i (so subsets are traceable). */
function toySet(count: number, classes: number, labelOf = (i: number) => i % classes): ImageSet {
  const shape: [number, number, number] = [2, 2, 1];
  const x = new Float32Array(count * 4);
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    x.fill(i, i * 4, i * 4 + 4);
    y[i] = labelOf(i);
  }
  return { x, y, count, shape, numClasses: classes, classNames: Array.from({ length: classes }, (_, c) => `c${c}`) };
}

function sortedUnion(parts: Int32Array[]): number[] {
  return parts.flatMap((p) => Array.from(p)).sort((a, b) => a - b);
}

describe('shuffles and splits', () => {
  it('shuffledIndices is a seeded permutation', () => {
    const a = shuffledIndices(100, 1);
    expect(Array.from(a).sort((p, q) => p - q)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(Array.from(shuffledIndices(100, 1))).toEqual(Array.from(a));
    expect(Array.from(shuffledIndices(100, 2))).not.toEqual(Array.from(a));
  });

  it('stratified 80/10/10 keeps class shares and covers every index once', () => {
    // 3 classes of unequal sizes: 50, 30, 20
    const labels = Int32Array.from({ length: 100 }, (_, i) => (i < 50 ? 0 : i < 80 ? 1 : 2));
    const parts = splitIndices(labels, 100, [0.8, 0.1, 0.1], { seed: 3 });
    expect(sortedUnion(parts)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    const perClass = (p: Int32Array) => [0, 1, 2].map((c) => Array.from(p).filter((i) => labels[i] === c).length);
    expect(perClass(parts[0]!)).toEqual([40, 24, 16]);
    expect(perClass(parts[1]!)).toEqual([5, 3, 2]);
    expect(perClass(parts[2]!)).toEqual([5, 3, 2]);
    const again = splitIndices(labels, 100, [0.8, 0.1, 0.1], { seed: 3 });
    expect(again.map((p) => Array.from(p))).toEqual(parts.map((p) => Array.from(p)));
  });

  it('stratified part totals are exact even when every class has a remainder', () => {
    const labels = Int32Array.from({ length: 40 }, (_, i) => i % 4);
    const [a, b] = splitIndices(labels, 40, [0.75, 0.25], { seed: 0 });
    expect([a!.length, b!.length]).toEqual([30, 10]);
    const per = [0, 1, 2, 3].map((c) => Array.from(b!).filter((i) => labels[i] === c).length);
    expect(per.every((n) => n === 2 || n === 3)).toBe(true);
  });

  it('unstratified splits still partition; bad fractions are usage errors', () => {
    const parts = splitIndices(null, 11, [0.5, 0.5], { seed: 0 });
    expect(parts.map((p) => p.length)).toEqual([6, 5]);
    expect(sortedUnion(parts)).toEqual(Array.from({ length: 11 }, (_, i) => i));
    expect(() => splitIndices(null, 10, [0.5, 0.4], { seed: 0 })).toThrow(expect.objectContaining({ code: 'EDGEKT_ERR_USAGE' }));
  });

  it('subset copies the chosen samples in order; splitSet splits an ImageSet', () => {
    const set = toySet(10, 2);
    const s = subset(set, [7, 2, 2]);
    expect(Array.from(s.x)).toEqual([7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2]);
    expect(Array.from(s.y!)).toEqual([1, 0, 0]);
    const [a, b] = splitSet(set, [0.6, 0.4], { seed: 1 });
    expect([a!.count, b!.count]).toEqual([6, 4]);
    expect(classCounts(b!)).toEqual([2, 2]);
  });
});

describe('non-IID partitions', () => {
  const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 10);

  it('Dirichlet: disjoint, complete, deterministic; small alpha skews labels more than large alpha', () => {
    const skew = (parts: Int32Array[]) =>
      // mean over clients of the share of the client's most common label
      parts.reduce((acc, p) => {
        const counts = new Array(10).fill(0);
        p.forEach((i) => counts[labels[i]!]++);
        return acc + Math.max(...counts) / p.length;
      }, 0) / parts.length;
    const low = dirichletPartition(labels, 10, { alpha: 0.1, seed: 7 });
    const high = dirichletPartition(labels, 10, { alpha: 100, seed: 7 });
    for (const parts of [low, high]) {
      expect(sortedUnion(parts)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      expect(parts.every((p) => p.length >= 1)).toBe(true);
    }
    expect(dirichletPartition(labels, 10, { alpha: 0.1, seed: 7 }).map((p) => Array.from(p))).toEqual(low.map((p) => Array.from(p)));
    expect(skew(low)).toBeGreaterThan(0.5);
    expect(skew(high)).toBeLessThan(0.2);
    expect(() => dirichletPartition(labels, 10, { alpha: 0, seed: 1 })).toThrow(expect.objectContaining({ code: 'EDGEKT_ERR_USAGE' }));
  });

  it('shards: McMahan split gives each client k label-sorted shards covering everything once', () => {
    const parts = shardPartition(labels, 50, { shardsPerClient: 2, seed: 11 });
    expect(parts).toHaveLength(50);
    expect(sortedUnion(parts)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    for (const p of parts) {
      expect(p.length).toBe(20);
      // 100 shards of 10 over 10 classes of 100: each shard is one class, so a client sees at most 2 labels.
      expect(new Set(Array.from(p, (i) => labels[i])).size).toBeLessThanOrEqual(2);
    }
    const other = shardPartition(labels, 50, { shardsPerClient: 2, seed: 12 });
    expect(other.map((p) => Array.from(p))).not.toEqual(parts.map((p) => Array.from(p)));
    expect(() => shardPartition(labels, 600, { shardsPerClient: 2, seed: 1 })).toThrow(expect.objectContaining({ code: 'EDGEKT_ERR_USAGE' }));
  });

  it('IID partition deals near-equal parts', () => {
    const parts = iidPartition(103, 4, 0);
    expect(parts.map((p) => p.length).sort()).toEqual([26, 26, 26, 25].sort());
    expect(sortedUnion(parts)).toEqual(Array.from({ length: 103 }, (_, i) => i));
  });
});

describe('mnist package', () => {
  it('has 10000 digits of 28x28x1 in [0,1], split 80/10/10 by default, seeded', async () => {
    const a = await loadDataset('mnist');
    expect([a.train.count, a.validation!.count, a.test.count]).toEqual([8000, 1000, 1000]);
    expect(a.train.shape).toEqual([28, 28, 1]);
    const all = [a.train, a.validation!, a.test].map(classCounts);
    const total = all[0]!.map((_, c) => all.reduce((s, counts) => s + counts[c]!, 0));
    expect(total.reduce((s, n) => s + n, 0)).toBe(10000);
    expect(Math.min(...total)).toBeGreaterThan(800);
    const b = await loadDataset('mnist', { seed: 0 });
    expect(Array.from(b.test.x.subarray(0, 5000))).toEqual(Array.from(a.test.x.subarray(0, 5000)));
    const lim = await loadDataset('mnist', { perClassLimit: 10, valFraction: 0, testFraction: 0.5 });
    expect(lim.validation).toBeNull();
    expect(classCounts(lim.train)).toEqual(new Array(10).fill(5));
  });
});
