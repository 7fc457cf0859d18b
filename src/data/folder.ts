import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import * as jpeg from 'jpeg-js';
import { EdgektError } from '../core/errors.js';
import type { RawSplit } from './raw.js';

const IMAGE_EXT = /\.(png|jpe?g)$/i;
const SPLIT_DIRS = { train: ['train'], validation: ['validation', 'val', 'valid'], test: ['test'] } as const;

export interface FolderOptions {
  /** Force 1 (grey) or 3 (RGB) channels; by default 1 when every image is grey (R≈G≈B), else 3. */
  channels?: 1 | 3;
  /** [H, W] every image is resized to (bilinear); by default the first image's size. */
  imageSize?: [number, number];
}

export interface FolderSource {
  classNames: string[];
  /** Present when DIR has train/ (and test/, validation/) sub-folders; otherwise `pool` holds everything. */
  train?: RawSplit;
  validation?: RawSplit;
  test?: RawSplit;
  pool?: RawSplit;
}

type Role = 'train' | 'validation' | 'test' | 'pool';

interface Decoded {
  width: number;
  height: number;
  rgba: Uint8Array;
}

/** Decodes a PNG or JPEG by its magic bytes (extensions lie), as RGBA. */
export function decodeImage(file: string): Decoded {
  const buf = readFileSync(file);
  try {
    if (buf.length >= 8 && buf[0] === 0x89 && buf[1] === 0x50 && buf[2] === 0x4e && buf[3] === 0x47) {
      const png = PNG.sync.read(buf);
      return { width: png.width, height: png.height, rgba: png.data };
    }
    if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8) {
      const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: 100, maxMemoryUsageInMB: 512 });
      return { width: img.width, height: img.height, rgba: img.data };
    }
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new EdgektError('EDGEKT_ERR_DATA_IMAGE', `${file}: cannot decode image (${why})`, { file }, { cause: e });
  }
  throw new EdgektError('EDGEKT_ERR_DATA_IMAGE', `${file}: not a PNG or JPEG image`, { file });
}

function subdirs(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => !n.startsWith('.') && statSync(path.join(dir, n)).isDirectory())
    .sort();
}

function imageFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => IMAGE_EXT.test(n) && statSync(path.join(dir, n)).isFile())
    .sort()
    .map((n) => path.join(dir, n));
}

/** Loads `DIR/<class>/*.png|jpg` or `DIR/{train,validation,test}/<class>/*`; class ids follow sorted folder names. */
export function loadFolder(dir: string, opts: FolderOptions = {}): FolderSource {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new EdgektError('EDGEKT_ERR_DATA_NOT_FOUND', `${dir}: no such directory`, { dir });
  }
  const top = subdirs(dir);
  const found = (names: readonly string[]): string | undefined => top.find((t) => names.includes(t.toLowerCase()));
  const trainDir = found(SPLIT_DIRS.train);
  const roots: Array<[Role, string]> = trainDir
    ? ([
        ['train', trainDir],
        ['validation', found(SPLIT_DIRS.validation)],
        ['test', found(SPLIT_DIRS.test)],
      ].filter((r) => r[1] !== undefined) as Array<[Role, string]>)
    : [['pool', '.']];
  const classSet = new Set<string>();
  for (const [, r] of roots) for (const c of subdirs(path.join(dir, r))) classSet.add(c);
  const classNames = [...classSet].sort();
  if (classNames.length === 0) {
    throw new EdgektError('EDGEKT_ERR_DATA_EMPTY', `${dir}: no class folders (expected DIR/<class>/*.png|jpg)`, { dir });
  }
  const files: Array<{ role: Role; file: string; label: number }> = [];
  for (const [role, r] of roots) {
    classNames.forEach((c, label) => {
      const cdir = path.join(dir, r, c);
      if (!existsSync(cdir)) return;
      const list = imageFiles(cdir);
      if (list.length === 0) throw new EdgektError('EDGEKT_ERR_DATA_EMPTY', `${cdir}: class folder has no PNG/JPEG images`, { dir: cdir });
      for (const file of list) files.push({ role, file, label });
    });
  }
  const decoded = files.map((f) => decodeImage(f.file));
  const [h, w] = opts.imageSize ?? [decoded[0]!.height, decoded[0]!.width];
  const rgb = decoded.map((d) => toRgb(d, h, w));
  const channels = opts.channels ?? (rgb.every(isGrey) ? 1 : 3);
  const out: FolderSource = { classNames };
  for (const [role, r] of roots) {
    const picks = files.map((f, i) => (f.role === role ? i : -1)).filter((i) => i >= 0);
    const size = h * w * channels;
    const pixels = new Uint8Array(picks.length * size);
    const labels = new Int32Array(picks.length);
    picks.forEach((i, k) => {
      const img = rgb[i]!;
      if (channels === 3) pixels.set(img, k * size);
      else for (let p = 0; p < h * w; p++) pixels[k * size + p] = Math.round(0.299 * img[3 * p]! + 0.587 * img[3 * p + 1]! + 0.114 * img[3 * p + 2]!);
      labels[k] = files[i]!.label;
    });
    out[role] = { pixels, scale: 1 / 255, labels, count: picks.length, shape: [h, w, channels], source: path.join(dir, r) };
  }
  return out;
}

/** Grey when R, G and B agree within 2 levels: JPEG chroma rounding leaves such noise on grey photos. */
function isGrey(rgb: Uint8Array): boolean {
  for (let p = 0; p < rgb.length; p += 3) {
    if (Math.abs(rgb[p]! - rgb[p + 1]!) > 2 || Math.abs(rgb[p]! - rgb[p + 2]!) > 2) return false;
  }
  return true;
}

/** RGBA → RGB at [h, w], bilinear with half-pixel centres when the size differs. */
function toRgb(d: Decoded, h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * w * 3);
  const sy = d.height / h;
  const sx = d.width / w;
  for (let y = 0; y < h; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), d.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, d.height - 1);
    const ty = fy - y0;
    for (let x = 0; x < w; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), d.width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, d.width - 1);
      const tx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const at = (yy: number, xx: number): number => d.rgba[(yy * d.width + xx) * 4 + c]!;
        const v = (1 - ty) * ((1 - tx) * at(y0, x0) + tx * at(y0, x1)) + ty * ((1 - tx) * at(y1, x0) + tx * at(y1, x1));
        out[(y * w + x) * 3 + c] = Math.round(v);
      }
    }
  }
  return out;
}
