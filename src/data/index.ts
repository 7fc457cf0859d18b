/**
 * data/: datasets as flat float32 NHWC typed arrays (no tensors until a batch is built).
 * loadDataset(spec) → DatasetSplits; splits/partitions return index arrays; adaptImages fits a
 * model's input shape; batches/forEachBatch turn a set into disposable tensors.
 */
import { EdgektError } from '../core/errors.js';
import { loadFolder, type FolderOptions } from './folder.js';
import { findIdxPairs, loadIdxPair, roleOf } from './idx.js';
import { loadMnistPackage } from './mnist-package.js';
import { materialize, selectIndices, type Normalization, type RawSplit } from './raw.js';
import { FASHION_MNIST_CLASSES, parseDatasetSpec } from './spec.js';
import { splitIndices } from './split.js';
import type { DatasetSplits, ImageSet } from './types.js';

export type { DatasetSplits, ImageSet } from './types.js';
export { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, parseDatasetSpec, type DatasetSpec } from './spec.js';
export { normalizeInPlace, type Normalization } from './raw.js';
export { parseIdx, readMaybeGzip, findIdxPairs, type IdxArray, type IdxPair } from './idx.js';
export { decodeImage, type FolderOptions } from './folder.js';
export { shuffledIndices, splitIndices, splitSet, subset, classCounts, type SplitOptions } from './split.js';
export { dirichletPartition, shardPartition, iidPartition, type DirichletOptions, type ShardOptions } from './partition.js';
export { adaptImages, adaptSplits, channelStats, type AdaptOptions } from './adapt.js';
export { batches, forEachBatch, batchCount, makeBatch, batchIndices, type Batch, type BatchOptions, type SparseBatch } from './batches.js';
export { summarizeDataset, type DatasetSummary, type SplitSummary } from './summary.js';

export interface LoadOptions extends FolderOptions {
  /** Seed for subset selection, splits and their order (default 0). */
  seed?: number;
  /**
   * Share of the training data carved off as validation (stratified). Default 0 when the source
   * ships its own train/test split (fashion-mnist, IDX train/t10k, folder train/test), 0.1 when
   * it is one pool (the mnist package, a single IDX pair, a flat class folder).
   */
  valFraction?: number;
  /** Share of a single-pool source held out as test (default 0.1); unused when the source has a test split. */
  testFraction?: number;
  /** Keep at most this many samples of each source split (seeded random pick) — fast subsets. */
  limit?: number;
  /** Keep at most this many samples per class of each source split. */
  perClassLimit?: number;
  /** 'unit' (default): pixels in [0,1]; 'raw': 0..255; or per-channel mean/std applied to [0,1] pixels. */
  normalization?: Normalization;
  /** Stratify the carved splits by class (default true). */
  stratify?: boolean;
}

interface Source {
  name: string;
  classNames: string[];
  train?: RawSplit;
  validation?: RawSplit;
  test?: RawSplit;
  pool?: RawSplit;
}

/**
 * Loads a dataset named by a spec string (`mnist`, `fashion-mnist[:DIR]`, `idx:DIR`, `folder:DIR`)
 * into float32 train/validation/test ImageSets. Deterministic for a given seed.
 */
export async function loadDataset(spec: string, opts: LoadOptions = {}): Promise<DatasetSplits> {
  checkOptions(opts);
  const source = readSource(spec, opts);
  const seed = opts.seed ?? 0;
  const norm = opts.normalization ?? 'unit';
  const numClasses = source.classNames.length;
  const take = (raw: RawSplit, salt: number): Int32Array => {
    const sel = selectIndices(raw.labels, { seed: seed + salt, limit: opts.limit, perClassLimit: opts.perClassLimit });
    if (sel.length === 0) throw new EdgektError('EDGEKT_ERR_DATA_EMPTY', `${raw.source}: no samples selected`, { source: raw.source });
    return sel;
  };
  const build = (raw: RawSplit, idx: Int32Array): ImageSet => materialize(raw, idx, numClasses, source.classNames, norm);
  const carve = (raw: RawSplit, sel: Int32Array, fractions: number[]): Int32Array[] => {
    const labels = new Int32Array(sel.length);
    for (let k = 0; k < sel.length; k++) labels[k] = raw.labels[sel[k]!]!;
    return splitIndices(labels, sel.length, fractions, { seed, stratify: opts.stratify }).map((part) => part.map((k) => sel[k]!));
  };

  if (source.train && !source.test && !source.validation) {
    // A train/ folder without test/: hold the test split out of it like a single pool.
    source.pool = source.train;
    delete source.train;
  }
  if (source.pool) {
    const v = opts.valFraction ?? 0.1;
    const t = opts.testFraction ?? 0.1;
    if (v + t >= 1) throw new EdgektError('EDGEKT_ERR_USAGE', `valFraction + testFraction must be < 1, got ${v} + ${t}`);
    const [tr, va, te] = carve(source.pool, take(source.pool, 0), [1 - v - t, v, t]) as [Int32Array, Int32Array, Int32Array];
    return {
      name: source.name,
      train: build(source.pool, tr),
      validation: v > 0 ? build(source.pool, va) : null,
      test: build(source.pool, te),
    };
  }
  const train = source.train!;
  const test = source.test;
  if (!test) throw new EdgektError('EDGEKT_ERR_DATA_NOT_FOUND', `${spec}: has a training split but no test split`, { spec });
  const v = opts.valFraction ?? 0;
  let trainIdx = take(train, 0);
  let validation: ImageSet | null = null;
  if (source.validation) {
    validation = build(source.validation, take(source.validation, 2));
  }
  if (v > 0) {
    if (validation) throw new EdgektError('EDGEKT_ERR_USAGE', `${spec} ships its own validation split; do not also set valFraction`);
    const [tr, va] = carve(train, trainIdx, [1 - v, v]) as [Int32Array, Int32Array];
    trainIdx = tr;
    validation = build(train, va);
  }
  return { name: source.name, train: build(train, trainIdx), validation, test: build(test, take(test, 1)) };
}

function checkOptions(o: LoadOptions): void {
  const frac = (name: string, v: number | undefined): void => {
    if (v !== undefined && !(v >= 0 && v < 1)) throw new EdgektError('EDGEKT_ERR_USAGE', `${name} must be in [0, 1), got ${v}`);
  };
  frac('valFraction', o.valFraction);
  frac('testFraction', o.testFraction);
  for (const [name, v] of [['limit', o.limit], ['perClassLimit', o.perClassLimit]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new EdgektError('EDGEKT_ERR_USAGE', `${name} must be an integer >= 1, got ${v}`);
  }
}

function readSource(spec: string, opts: LoadOptions): Source {
  const s = parseDatasetSpec(spec);
  switch (s.kind) {
    case 'mnist':
      return { name: 'mnist', classNames: digits(10), pool: loadMnistPackage() };
    case 'fashion-mnist':
    case 'idx': {
      const pairs = findIdxPairs(s.dir);
      const roles = pairs.map((p) => roleOf(p.prefix));
      const splits: Source = { name: s.kind === 'idx' ? `idx:${s.dir}` : 'fashion-mnist', classNames: [] };
      if (pairs.length === 1) splits.pool = loadIdxPair(pairs[0]!.images, pairs[0]!.labels);
      else {
        const trainAt = roles.indexOf('train');
        const testAt = roles.indexOf('test');
        if (trainAt < 0 || testAt < 0) {
          throw new EdgektError('EDGEKT_ERR_DATA_FORMAT', `${s.dir}: several IDX pairs but no train*/t10k* (or test*) naming`, { dir: s.dir });
        }
        splits.train = loadIdxPair(pairs[trainAt]!.images, pairs[trainAt]!.labels);
        splits.test = loadIdxPair(pairs[testAt]!.images, pairs[testAt]!.labels);
        const [a, b] = [splits.train.shape, splits.test.shape];
        if (a.join('x') !== b.join('x')) {
          throw new EdgektError('EDGEKT_ERR_DATA_FORMAT', `${pairs[testAt]!.images}: images are ${b.join('x')}, train images are ${a.join('x')}`);
        }
      }
      const maxLabel = Math.max(...[splits.train, splits.test, splits.pool].map((r) => (r ? maxOf(r.labels) : -1)));
      splits.classNames = s.kind === 'fashion-mnist' && maxLabel < 10 ? FASHION_MNIST_CLASSES.slice() : digits(maxLabel + 1);
      return splits;
    }
    case 'folder': {
      const f = loadFolder(s.dir, opts);
      return { name: `folder:${s.dir}`, ...f };
    }
  }
}

function maxOf(a: Int32Array): number {
  let m = -1;
  for (let i = 0; i < a.length; i++) if (a[i]! > m) m = a[i]!;
  return m;
}

function digits(n: number): string[] {
  return Array.from({ length: n }, (_, i) => String(i));
}
