import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { classCounts, FASHION_MNIST_DIR, loadDataset, parseIdx, type ImageSet } from '../src/data/index.js';
import { idxBytes, tmpDir, writeIdxPair } from './helpers/data-fixtures.js';

const dirs: string[] = [];
function dir(): string {
  const d = tmpDir();
  dirs.push(d);
  return d;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect((e as Error).message).not.toContain('\n');
    return (e as { code: string }).code;
  }
  return 'no error';
}

/** Every sample's pixels equal (k*7)%256/255 for its source index k; labels are k % classes. */
function checkSynthetic(set: ImageSet, classes: number): Set<number> {
  const size = set.shape[0] * set.shape[1] * set.shape[2];
  const seen = new Set<number>();
  for (let i = 0; i < set.count; i++) {
    const v = set.x[i * size]!;
    const label = set.y![i]!;
    // Recover k from the byte value: k*7 % 256 is unique for k < 256 (7 is odd).
    let k = -1;
    for (let c = 0; c < 256; c++) if (Math.abs(((c * 7) % 256) / 255 - v) < 1e-6) k = c;
    expect(k).toBeGreaterThanOrEqual(0);
    expect(label).toBe(k % classes);
    expect(set.x[(i + 1) * size - 1]).toBe(v);
    seen.add(k);
  }
  return seen;
}

describe('IDX loading', () => {
  it('reads train/t10k pairs, raw and gzipped alike, into [0,1] float32 NHWC', async () => {
    for (const gz of [false, true]) {
      const d = dir();
      writeIdxPair(d, 'train', 30, { gz, classes: 3 });
      writeIdxPair(d, 't10k', 12, { gz, classes: 3 });
      const ds = await loadDataset(`idx:${d}`);
      expect(ds.train.count).toBe(30);
      expect(ds.test.count).toBe(12);
      expect(ds.validation).toBeNull();
      expect(ds.train.shape).toEqual([4, 5, 1]);
      expect(ds.train.x).toBeInstanceOf(Float32Array);
      expect(ds.train.numClasses).toBe(3);
      expect(ds.train.classNames).toEqual(['0', '1', '2']);
      expect(classCounts(ds.train)).toEqual([10, 10, 10]);
      expect(checkSynthetic(ds.train, 3).size).toBe(30);
      expect(Math.max(...ds.train.x)).toBeLessThanOrEqual(1);
    }
  });

  it('carves a stratified, seeded validation split from train', async () => {
    const d = dir();
    writeIdxPair(d, 'train', 60, { classes: 3 });
    writeIdxPair(d, 't10k', 9, { classes: 3 });
    const a = await loadDataset(`idx:${d}`, { valFraction: 0.2, seed: 5 });
    const b = await loadDataset(`idx:${d}`, { valFraction: 0.2, seed: 5 });
    const c = await loadDataset(`idx:${d}`, { valFraction: 0.2, seed: 6 });
    expect(a.train.count).toBe(48);
    expect(classCounts(a.validation!)).toEqual([4, 4, 4]);
    expect(Array.from(a.validation!.x)).toEqual(Array.from(b.validation!.x));
    expect(Array.from(a.validation!.x)).not.toEqual(Array.from(c.validation!.x));
    // train and validation are disjoint and cover the source
    const tr = checkSynthetic(a.train, 3);
    const va = checkSynthetic(a.validation!, 3);
    expect([...va].filter((k) => tr.has(k))).toEqual([]);
    expect(tr.size + va.size).toBe(60);
  });

  it('a single pair is one pool split 80/10/10 by default; limit and perClassLimit pick seeded subsets', async () => {
    const d = dir();
    writeIdxPair(d, 'digits', 100, { classes: 5, gz: true });
    const ds = await loadDataset(`idx:${d}`);
    expect([ds.train.count, ds.validation!.count, ds.test.count]).toEqual([80, 10, 10]);
    expect(classCounts(ds.test)).toEqual([2, 2, 2, 2, 2]);
    const lim = await loadDataset(`idx:${d}`, { limit: 50, perClassLimit: 4, valFraction: 0, testFraction: 0.5 });
    expect(lim.train.count + lim.test.count).toBe(20);
    expect(classCounts(lim.train).map((n, c) => n + classCounts(lim.test)[c]!)).toEqual([4, 4, 4, 4, 4]);
  });

  it('mean/std normalisation and raw 0..255 are options', async () => {
    const d = dir();
    writeIdxPair(d, 'train', 10);
    writeIdxPair(d, 't10k', 3);
    const unit = await loadDataset(`idx:${d}`);
    const raw = await loadDataset(`idx:${d}`, { normalization: 'raw' });
    const z = await loadDataset(`idx:${d}`, { normalization: { mean: [0.5], std: [0.25] } });
    for (let i = 0; i < unit.train.x.length; i += 7) {
      expect(raw.train.x[i]).toBeCloseTo(unit.train.x[i]! * 255, 3);
      expect(z.train.x[i]).toBeCloseTo((unit.train.x[i]! - 0.5) / 0.25, 5);
    }
  });
});

describe('IDX bad input', () => {
  it('missing dir, missing labels file, no IDX files', async () => {
    expect(await codeOf(loadDataset('idx:/nonexistent/edgekt'))).toBe('EDGEKT_ERR_DATA_NOT_FOUND');
    const d = dir();
    expect(await codeOf(loadDataset(`idx:${d}`))).toBe('EDGEKT_ERR_DATA_NOT_FOUND');
    writeIdxPair(d, 'train', 5);
    rmSync(path.join(d, 'train-labels-idx1-ubyte'));
    expect(await codeOf(loadDataset(`idx:${d}`))).toBe('EDGEKT_ERR_DATA_NOT_FOUND');
  });

  it('wrong magic, wrong type, truncated raw and gzip, trailing bytes, count mismatch', async () => {
    const cases: Array<[string, (d: string) => void]> = [
      ['bad magic', (d) => writeFileSync(path.join(d, 'train-images-idx3-ubyte'), Buffer.from('PK\x03\x04 not idx at all'))],
      ['wrong dims', (d) => writeFileSync(path.join(d, 'train-images-idx3-ubyte'), idxBytes([5, 20], new Uint8Array(100)))],
      ['float type', (d) => {
        const b = idxBytes([5, 4, 5], new Uint8Array(100));
        b[2] = 0x0d;
        writeFileSync(path.join(d, 'train-images-idx3-ubyte'), b);
      }],
      ['truncated raw', (d) => {
        const f = path.join(d, 'train-images-idx3-ubyte');
        writeFileSync(f, readFileSync(f).subarray(0, 60));
      }],
      ['truncated header', (d) => writeFileSync(path.join(d, 'train-labels-idx1-ubyte'), Buffer.from([0, 0, 8, 1, 0]))],
      ['trailing bytes', (d) => {
        const f = path.join(d, 'train-labels-idx1-ubyte');
        writeFileSync(f, Buffer.concat([readFileSync(f), Buffer.from([1, 2, 3])]));
      }],
      ['count mismatch', (d) => writeFileSync(path.join(d, 'train-labels-idx1-ubyte'), idxBytes([4], new Uint8Array(4)))],
    ];
    for (const [name, corrupt] of cases) {
      const d = dir();
      writeIdxPair(d, 'train', 5);
      writeIdxPair(d, 't10k', 2);
      corrupt(d);
      const err = await loadDataset(`idx:${d}`).catch((e: unknown) => e as { code: string; message: string });
      expect({ name, code: (err as { code?: string }).code }).toEqual({ name, code: 'EDGEKT_ERR_DATA_FORMAT' });
      expect((err as { message: string }).message).toContain(d);
    }
    const d = dir();
    writeIdxPair(d, 'train', 50, { gz: true });
    writeIdxPair(d, 't10k', 5, { gz: true });
    const f = path.join(d, 'train-images-idx3-ubyte.gz');
    const gz = readFileSync(f);
    writeFileSync(f, gz.subarray(0, gz.length - 12));
    expect(await codeOf(loadDataset(`idx:${d}`))).toBe('EDGEKT_ERR_DATA_FORMAT');
  });

  it('parseIdx names the file and checks sizes', () => {
    expect(() => parseIdx(new Uint8Array([0, 0, 8, 1, 0, 0, 0, 3, 1, 2]), 'x.idx')).toThrow(/x\.idx: truncated/);
    const ok = parseIdx(idxBytes([2, 2], new Uint8Array([1, 2, 3, 4])), 'ok.idx');
    expect(ok.dims).toEqual([2, 2]);
    expect(Array.from(ok.data)).toEqual([1, 2, 3, 4]);
    expect(() => parseIdx(gzipSync(Buffer.from('x')), 'g')).toThrow(/bad IDX magic/);
  });

  it('unknown or incomplete specs are EDGEKT_ERR_DATA_SPEC', async () => {
    for (const spec of ['cifar10', 'idx', 'folder:', 'mnist:/tmp', '']) {
      expect({ spec, code: await codeOf(loadDataset(spec)) }).toEqual({ spec, code: 'EDGEKT_ERR_DATA_SPEC' });
    }
  });

  it('bad option values are usage errors', async () => {
    expect(await codeOf(loadDataset('mnist', { valFraction: 1.5 }))).toBe('EDGEKT_ERR_USAGE');
    expect(await codeOf(loadDataset('mnist', { limit: 0 }))).toBe('EDGEKT_ERR_USAGE');
    expect(await codeOf(loadDataset('mnist', { valFraction: 0.5, testFraction: 0.5 }))).toBe('EDGEKT_ERR_USAGE');
  });
});

const haveFashion = existsSync(path.join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));

describe.skipIf(!haveFashion)(`Fashion-MNIST from ${FASHION_MNIST_DIR}`, () => {
  it('headers: 60000/10000 images of 28x28 with matching label files', () => {
    for (const [prefix, n] of [['train', 60000], ['t10k', 10000]] as const) {
      const img = gunzipSync(readFileSync(path.join(FASHION_MNIST_DIR, `${prefix}-images-idx3-ubyte.gz`)));
      const lab = gunzipSync(readFileSync(path.join(FASHION_MNIST_DIR, `${prefix}-labels-idx1-ubyte.gz`)));
      expect(img.readUInt32BE(0)).toBe(2051);
      expect([img.readUInt32BE(4), img.readUInt32BE(8), img.readUInt32BE(12)]).toEqual([n, 28, 28]);
      expect(lab.readUInt32BE(0)).toBe(2049);
      expect(lab.readUInt32BE(4)).toBe(n);
    }
  });

  it('loads 60000 train / 10000 test, 6000 / 1000 per class, named classes', async () => {
    const ds = await loadDataset('fashion-mnist');
    expect(ds.train.count).toBe(60000);
    expect(ds.test.count).toBe(10000);
    expect(ds.validation).toBeNull();
    expect(classCounts(ds.train)).toEqual(new Array(10).fill(6000));
    expect(classCounts(ds.test)).toEqual(new Array(10).fill(1000));
    expect(ds.train.classNames[0]).toBe('T-shirt/top');
    expect(ds.train.classNames[9]).toBe('Ankle boot');
    let max = 0;
    let min = 1;
    for (let i = 0; i < ds.test.x.length; i++) {
      max = Math.max(max, ds.test.x[i]!);
      min = Math.min(min, ds.test.x[i]!);
    }
    expect([min, max]).toEqual([0, 1]);
  });

  it('perClassLimit gives a fast balanced subset', async () => {
    const ds = await loadDataset(`fashion-mnist:${FASHION_MNIST_DIR}`, { perClassLimit: 20, valFraction: 0.25 });
    expect(classCounts(ds.train)).toEqual(new Array(10).fill(15));
    expect(classCounts(ds.validation!)).toEqual(new Array(10).fill(5));
    expect(classCounts(ds.test)).toEqual(new Array(10).fill(20));
  });
});
