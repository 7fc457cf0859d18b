import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  DEFAULT_BLOCK_SIZE,
  parseManifest,
  type Manifest,
  type ManifestFile,
  type ManifestTarget,
} from '../config/manifest.js';
import { EdgektError } from '../core/errors.js';

export interface ManifestForDirOptions {
  kind: Manifest['kind'];
  name: string;
  version: number;
  target: ManifestTarget;
  expiresInSeconds: number;
  blockSize?: number;
  /** Epoch ms of issuedAt (inject the clock); default Date.now(). */
  now?: number;
  /** Include per-block sha256 lists (default true). */
  blockHashes?: boolean;
  /** Relative paths to leave out (the manifest file itself, typically). */
  exclude?: readonly string[];
  meta?: Manifest['meta'];
}

export interface FileDigest {
  size: number;
  sha256: string;
  blocks: string[];
}

/** Streams a file once for its size, sha256 and the sha256 of every blockSize block. */
export async function digestFile(file: string, blockSize: number): Promise<FileDigest> {
  const whole = createHash('sha256');
  const blocks: string[] = [];
  let block = createHash('sha256');
  let inBlock = 0;
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    whole.update(chunk);
    size += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      const take = Math.min(blockSize - inBlock, chunk.length - off);
      block.update(chunk.subarray(off, off + take));
      inBlock += take;
      off += take;
      if (inBlock === blockSize) {
        blocks.push(block.digest('hex'));
        block = createHash('sha256');
        inBlock = 0;
      }
    }
  }
  if (inBlock > 0) blocks.push(block.digest('hex'));
  return { size, sha256: whole.digest('hex'), blocks };
}

async function listFiles(root: string, rel = ''): Promise<string[]> {
  const entries = await readdir(path.join(root, rel), { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(root, r)));
    else if (e.isFile()) out.push(r);
  }
  return out;
}

/** Builds the (unsigned) manifest of every regular file under `dir`, in path order. */
export async function manifestForDir(dir: string, o: ManifestForDirOptions): Promise<Manifest> {
  const blockSize = o.blockSize ?? DEFAULT_BLOCK_SIZE;
  let paths: string[];
  try {
    paths = (await listFiles(dir)).filter((p) => !(o.exclude ?? []).includes(p)).sort();
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_MALFORMED', `cannot list artifact directory ${dir}`, { dir }, { cause: e });
  }
  if (paths.length === 0) throw new EdgektError('EDGEKT_ERR_MALFORMED', `artifact directory ${dir} has no files`, { dir });
  const files: ManifestFile[] = [];
  for (const p of paths) {
    const d = await digestFile(path.join(dir, ...p.split('/')), blockSize);
    files.push({ path: p, size: d.size, sha256: d.sha256, blockSize, ...(o.blockHashes === false ? {} : { blocks: d.blocks }) });
  }
  const now = o.now ?? Date.now();
  const manifest = {
    schema: 1 as const,
    kind: o.kind,
    name: o.name,
    version: o.version,
    target: o.target,
    issuedAt: new Date(now).toISOString(),
    expires: new Date(now + o.expiresInSeconds * 1000).toISOString(),
    files,
    ...(o.meta ? { meta: o.meta } : {}),
  };
  return parseManifest(manifest);
}

/** Checks every file of a manifest under `dir` by size and sha256 (EDGEKT_ERR_HASH on the first mismatch). */
export async function verifyDirFiles(dir: string, manifest: Manifest): Promise<void> {
  for (const f of manifest.files) {
    const file = path.join(dir, ...f.path.split('/'));
    const s = await stat(file).catch(() => null);
    if (!s?.isFile()) throw new EdgektError('EDGEKT_ERR_HASH', `${f.path}: missing`, { path: f.path });
    if (s.size !== f.size) throw new EdgektError('EDGEKT_ERR_HASH', `${f.path}: ${s.size} bytes, manifest says ${f.size}`, { path: f.path });
    const d = await digestFile(file, f.blockSize);
    if (d.sha256 !== f.sha256) throw new EdgektError('EDGEKT_ERR_HASH', `${f.path}: sha256 mismatch`, { path: f.path });
  }
}
