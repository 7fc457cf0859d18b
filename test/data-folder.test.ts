import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { classCounts, decodeImage, loadDataset } from '../src/data/index.js';
import { jpegFile, pngFile, tmpDir } from './helpers/data-fixtures.js';

const dirs: string[] = [];
function dir(): string {
  const d = tmpDir('edgekt-folder-');
  dirs.push(d);
  return d;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function errorOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  return { code: 'no error', message: '' };
}

describe('folder:DIR', () => {
  it('grey PNG and JPEG classes become one channel, labelled by sorted folder name', async () => {
    const d = dir();
    for (let i = 0; i < 10; i++) {
      pngFile(path.join(d, 'cat', `${i}.png`), 6, 4, [40, 40, 40]);
      jpegFile(path.join(d, 'dog', `${i}.jpg`), 6, 4, [200, 200, 200]);
    }
    writeFileSync(path.join(d, 'dog', 'notes.txt'), 'ignored');
    const ds = await loadDataset(`folder:${d}`, { valFraction: 0.2, testFraction: 0.2 });
    expect(ds.train.classNames).toEqual(['cat', 'dog']);
    expect(ds.train.shape).toEqual([4, 6, 1]);
    expect([ds.train.count, ds.validation!.count, ds.test.count]).toEqual([12, 4, 4]);
    expect(classCounts(ds.test)).toEqual([2, 2]);
    const size = 24;
    for (let i = 0; i < ds.train.count; i++) {
      const want = ds.train.y![i] === 0 ? 40 / 255 : 200 / 255;
      // JPEG is lossy: allow a couple of grey levels.
      expect(Math.abs(ds.train.x[i * size + 5]! - want)).toBeLessThan(3 / 255);
    }
  });

  it('colour images keep 3 channels; other sizes are resized to the first; train/test sub-folders are honoured', async () => {
    const d = dir();
    pngFile(path.join(d, 'train', 'red', 'a.png'), 8, 8, [255, 0, 0]);
    pngFile(path.join(d, 'train', 'red', 'b.png'), 16, 16, [250, 0, 0]);
    pngFile(path.join(d, 'train', 'blue', 'a.png'), 8, 8, [0, 0, 255]);
    pngFile(path.join(d, 'test', 'blue', 'c.png'), 4, 4, [0, 0, 200]);
    pngFile(path.join(d, 'test', 'red', 'c.png'), 8, 8, [255, 0, 0]);
    const ds = await loadDataset(`folder:${d}`);
    expect(ds.train.classNames).toEqual(['blue', 'red']);
    expect(ds.train.shape).toEqual([8, 8, 3]);
    expect(ds.train.count).toBe(3);
    expect(ds.test.count).toBe(2);
    expect(ds.validation).toBeNull();
    const px = 8 * 8 * 3;
    for (let i = 0; i < ds.test.count; i++) {
      const rgb = Array.from(ds.test.x.subarray(i * px + 30, i * px + 33)).map((v) => Math.round(v * 255));
      expect(rgb).toEqual(ds.test.y![i] === 0 ? [0, 0, 200] : [255, 0, 0]);
    }
    const grey = await loadDataset(`folder:${d}`, { channels: 1, imageSize: [5, 5] });
    expect(grey.train.shape).toEqual([5, 5, 1]);
    expect(grey.test.x[0]).toBeCloseTo(Math.round(0.114 * 200) / 255, 5);
  });

  it('train/ without test/ holds the test split out of train', async () => {
    const d = dir();
    for (let i = 0; i < 10; i++) {
      pngFile(path.join(d, 'train', 'a', `${i}.png`), 3, 3, [10, 10, 10]);
      pngFile(path.join(d, 'train', 'b', `${i}.png`), 3, 3, [90, 90, 90]);
    }
    const ds = await loadDataset(`folder:${d}`, { valFraction: 0, testFraction: 0.3 });
    expect([ds.train.count, ds.test.count]).toEqual([14, 6]);
    expect(classCounts(ds.test)).toEqual([3, 3]);
    expect(ds.validation).toBeNull();
  });

  it('decodeImage sniffs the format, not the extension', () => {
    const d = dir();
    const f = path.join(d, 'x', 'really-a-jpeg.png');
    jpegFile(f, 3, 2, [10, 20, 30]);
    const img = decodeImage(f);
    expect([img.width, img.height, img.rgba.length]).toEqual([3, 2, 24]);
  });
});

describe('folder:DIR bad input', () => {
  it('missing dir, no class folders, empty class folder', async () => {
    expect((await errorOf(loadDataset('folder:/nonexistent/edgekt'))).code).toBe('EDGEKT_ERR_DATA_NOT_FOUND');
    const flat = dir();
    pngFile(path.join(flat, 'a.png'), 2, 2, [1, 1, 1]);
    expect((await errorOf(loadDataset(`folder:${flat}`))).code).toBe('EDGEKT_ERR_DATA_EMPTY');
    const d = dir();
    pngFile(path.join(d, 'one', 'a.png'), 2, 2, [1, 1, 1]);
    mkdirSync(path.join(d, 'two'));
    writeFileSync(path.join(d, 'two', 'readme.txt'), 'no images here');
    const err = await errorOf(loadDataset(`folder:${d}`));
    expect(err.code).toBe('EDGEKT_ERR_DATA_EMPTY');
    expect(err.message).toContain(path.join(d, 'two'));
  });

  it('a garbage .png and a truncated PNG are EDGEKT_ERR_DATA_IMAGE naming the file', async () => {
    const d = dir();
    pngFile(path.join(d, 'ok', 'a.png'), 2, 2, [1, 1, 1]);
    pngFile(path.join(d, 'bad', 'a.png'), 2, 2, [1, 1, 1]);
    writeFileSync(path.join(d, 'bad', 'b.png'), 'this is not a png');
    let err = await errorOf(loadDataset(`folder:${d}`));
    expect(err.code).toBe('EDGEKT_ERR_DATA_IMAGE');
    expect(err.message).toContain(path.join(d, 'bad', 'b.png'));
    expect(err.message).not.toContain('\n');
    const png = path.join(d, 'bad', 'b.png');
    pngFile(png, 20, 20, [9, 9, 9]);
    writeFileSync(png, readFileSync(png).subarray(0, 40));
    err = await errorOf(loadDataset(`folder:${d}`));
    expect(err.code).toBe('EDGEKT_ERR_DATA_IMAGE');
    expect(err.message).toContain(png);
  });
});
