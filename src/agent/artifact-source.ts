import { open, stat } from 'node:fs/promises';

/**
 * The device's servable artifacts (its signed students), by sha256, read from their files on
 * demand: the block server asks for ranges, nothing is held in memory.
 */
export function createFileArtifactSource() {
  const files = new Map<string, { file: string; size: number }>();
  return {
    add(sha256: string, file: string, size: number): void {
      files.set(sha256, { file, size });
    },
    async stat(sha256: string): Promise<{ size: number } | null> {
      const f = files.get(sha256);
      if (!f) return null;
      try {
        return (await stat(f.file)).size === f.size ? { size: f.size } : null;
      } catch {
        return null;
      }
    },
    async read(sha256: string, offset: number, length: number): Promise<Uint8Array> {
      const f = files.get(sha256)!;
      const fh = await open(f.file, 'r');
      try {
        const buf = new Uint8Array(Math.max(0, Math.min(length, f.size - offset)));
        await fh.read(buf, 0, buf.length, offset);
        return buf;
      } finally {
        await fh.close();
      }
    },
  };
}
