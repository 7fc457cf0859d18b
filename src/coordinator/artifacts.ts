import { createHash, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_BLOCK_SIZE, type Manifest, type ManifestFile } from '../config/manifest.js';
import { EdgektError } from '../core/errors.js';
import type { CoordinatorStore } from '../store/coordinator/index.js';
import { canonicalJson } from '../transport/canonical-json.js';
import { signManifest } from '../transport/signing.js';
import type { SignedManifest } from '../config/manifest.js';

export interface TeacherBundle {
  /** sha256 of the canonical file list: what a rollout names. */
  sha256: string;
  name: string;
  version: number;
  files: ManifestFile[];
  size: number;
}

function digestBytes(bytes: Uint8Array, blockSize: number): { sha256: string; blocks: string[] } {
  const blocks: string[] = [];
  for (let at = 0; at < bytes.byteLength; at += blockSize) {
    blocks.push(createHash('sha256').update(bytes.subarray(at, Math.min(bytes.byteLength, at + blockSize))).digest('hex'));
  }
  return { sha256: createHash('sha256').update(bytes).digest('hex'), blocks };
}

/**
 * Content-addressed artifact files under one directory (`<dir>/<sha256>`), registered in the store,
 * and the block source the block server reads from. Several coordinators share the directory (or a
 * network filesystem) and the store.
 */
export function createArtifactStore(store: CoordinatorStore, dir: string) {
  const fileOf = (sha256: string): string => path.join(dir, sha256);

  async function putFile(bytes: Uint8Array, blockSize: number, relPath: string): Promise<ManifestFile> {
    const d = digestBytes(bytes, blockSize);
    await mkdir(dir, { recursive: true });
    const target = fileOf(d.sha256);
    try {
      if ((await stat(target)).size === bytes.byteLength) return { path: relPath, size: bytes.byteLength, sha256: d.sha256, blockSize, blocks: d.blocks };
    } catch {
      // not there yet
    }
    const tmp = `${target}.${process.pid}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, target);
    return { path: relPath, size: bytes.byteLength, sha256: d.sha256, blockSize, blocks: d.blocks };
  }

  return {
    fileOf,
    /** Stores a teacher's files and its bundle row; the same files again return the same bundle. */
    async publishTeacher(name: string, files: Array<{ path: string; bytes: Uint8Array }>, blockSize = DEFAULT_BLOCK_SIZE): Promise<TeacherBundle> {
      if (files.length === 0) throw new EdgektError('EDGEKT_ERR_MALFORMED', 'a teacher needs at least model.json and its weights');
      const entries: ManifestFile[] = [];
      for (const f of [...files].sort((a, b) => a.path.localeCompare(b.path))) {
        const e = await putFile(f.bytes, blockSize, f.path);
        entries.push(e);
        await store.putArtifact({ sha256: e.sha256, kind: 'file', name: `${name}/${f.path}`, version: 1, size: e.size, location: fileOf(e.sha256), manifest: { path: f.path } });
      }
      const sha256 = createHash('sha256').update(canonicalJson({ name, files: entries })).digest('hex');
      const existing = await store.getArtifact(sha256);
      if (existing) return { sha256, name, version: existing.version, files: entries, size: entries.reduce((a, e) => a + e.size, 0) };
      const version = await store.nextArtifactVersion(name);
      const size = entries.reduce((a, e) => a + e.size, 0);
      await store.putArtifact({ sha256, kind: 'teacher', name, version, size, location: dir, manifest: { name, files: entries } as never });
      return { sha256, name, version, files: entries, size };
    },
    /** Stores one file (a round's global weights, a run's topology) as a servable artifact, outside any teacher bundle. */
    async publishFile(name: string, relPath: string, bytes: Uint8Array, blockSize = DEFAULT_BLOCK_SIZE): Promise<ManifestFile> {
      const e = await putFile(bytes, blockSize, relPath);
      await store.putArtifact({ sha256: e.sha256, kind: 'file', name, version: 1, size: e.size, location: fileOf(e.sha256), manifest: { path: relPath } });
      return e;
    },
    /** The bytes of a registered file artifact; EDGEKT_ERR_NOT_FOUND when it is not registered. */
    async readBytes(sha256: string): Promise<Uint8Array> {
      const a = await store.getArtifact(sha256);
      if (!a || a.kind !== 'file') throw new EdgektError('EDGEKT_ERR_NOT_FOUND', `no file artifact ${sha256}`);
      return new Uint8Array(await readFile(a.location));
    },
    async getTeacher(sha256: string): Promise<TeacherBundle | null> {
      const a = await store.getArtifact(sha256);
      if (!a || a.kind !== 'teacher') return null;
      const files = (a.manifest as { files: ManifestFile[] }).files;
      return { sha256, name: a.name, version: a.version, files, size: a.size };
    },
    /** The block server's source: any registered file, read by range. */
    source: {
      async stat(sha256: string): Promise<{ size: number } | null> {
        const a = await store.getArtifact(sha256);
        return a && a.kind === 'file' ? { size: a.size } : null;
      },
      async read(sha256: string, offset: number, length: number): Promise<Uint8Array> {
        const fh = await open(fileOf(sha256), 'r');
        try {
          const buf = new Uint8Array(length);
          const { bytesRead } = await fh.read(buf, 0, length, offset);
          return buf.subarray(0, bytesRead);
        } finally {
          await fh.close();
        }
      },
    },
  };
}
export type ArtifactStore = ReturnType<typeof createArtifactStore>;

/**
 * A teacher manifest for one device, signed with the fleet key. The version is the signing time in
 * milliseconds: every dispatch (a retry too) carries a version newer than any the device accepted.
 */
export function signTeacherFor(bundle: TeacherBundle, deviceId: string, fleetKey: KeyObject, now: number, version: number): SignedManifest {
  const manifest: Manifest = {
    schema: 1, kind: 'teacher', name: bundle.name, version, target: { devices: [deviceId] },
    issuedAt: new Date(now).toISOString(), expires: new Date(now + 7 * 24 * 3600_000).toISOString(), files: bundle.files,
  };
  return signManifest(manifest, fleetKey);
}
