import { createHash, randomBytes } from 'node:crypto';
import type { ArtifactSource } from '../../src/transport/blocks/index.js';

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export function blockHashes(data: Buffer, blockSize: number): string[] {
  const out: string[] = [];
  for (let off = 0; off < data.length; off += blockSize) out.push(sha256(data.subarray(off, off + blockSize)));
  return out;
}

export interface TestFile {
  data: Buffer;
  sha256: string;
  size: number;
  blockSize: number;
  blocks?: string[];
}

export function testFile(size: number, blockSize: number): TestFile {
  const data = randomBytes(size);
  return { data, sha256: sha256(data), size, blockSize, blocks: blockHashes(data, blockSize) };
}

export interface TestSource extends ArtifactSource {
  /** Every block read, by offset / blockSize, in order: the server-side request log. */
  reads: number[];
  /** Flip a byte of these block offsets' reads: `once` (the first read) or every time. */
  corrupt: Map<number, 'once' | 'always'>;
}

/** An in-memory ArtifactSource whose reads are logged and can be corrupted on purpose. */
export function testSource(files: TestFile[]): TestSource {
  const byHash = new Map(files.map((f) => [f.sha256, f]));
  const reads: number[] = [];
  const corrupt = new Map<number, 'once' | 'always'>();
  return {
    reads,
    corrupt,
    async stat(sha) {
      const f = byHash.get(sha);
      return f ? { size: f.size } : null;
    },
    async read(sha, offset, length) {
      const f = byHash.get(sha)!;
      const index = Math.floor(offset / f.blockSize);
      reads.push(index);
      const bytes = Buffer.from(f.data.subarray(offset, offset + length));
      const mode = corrupt.get(index);
      if (mode) {
        bytes[0] = bytes[0]! ^ 0xff;
        if (mode === 'once') corrupt.delete(index);
      }
      return bytes;
    },
  };
}

export function countBy(xs: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}
