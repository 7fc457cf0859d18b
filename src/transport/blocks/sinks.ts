import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { EdgektError } from '../../core/errors.js';
import type { BlockLedger, BlockSink } from './types.js';

export interface FileBlockSink extends BlockSink {
  readonly path: string;
  sha256(): Promise<string>;
  close(): Promise<void>;
}

/**
 * A preallocated file written block by block at its offset, each write fsynced before it
 * resolves (so the ledger is marked only for bytes that survive a power cut). An existing file of
 * the right size is kept as it is: that is how a pull resumes after a restart.
 */
export async function createFileBlockSink(path: string, size: number): Promise<FileBlockSink> {
  const existing = await stat(path).catch(() => null);
  let fh: FileHandle;
  try {
    fh = await open(path, existing ? 'r+' : 'w+', 0o600);
    if (!existing || existing.size !== size) await fh.truncate(size);
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_TRANSFER', `cannot open block sink ${path}`, { path }, { cause: e });
  }
  return {
    path,
    async write(_index, offset, bytes) {
      if (offset < 0 || offset + bytes.byteLength > size) throw new EdgektError('EDGEKT_ERR_INTERNAL', `block write outside ${path} (${offset}+${bytes.byteLength} > ${size})`);
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, offset + done);
        done += bytesWritten;
      }
      await fh.datasync();
    },
    async read() {
      const buf = Buffer.alloc(size);
      let done = 0;
      while (done < size) {
        const { bytesRead } = await fh.read(buf, done, size - done, done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buf;
    },
    async sha256() {
      const h = createHash('sha256');
      for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) h.update(chunk);
      return h.digest('hex');
    },
    close: () => fh.close(),
  };
}

/** A ledger in memory: for tests and for pulls that need not survive a restart. */
export function createMemoryBlockLedger(initial: Iterable<number> = []): BlockLedger & { marks: number[] } {
  const set = new Set(initial);
  const marks: number[] = [];
  return {
    marks,
    received: () => [...set].sort((a, b) => a - b),
    mark(index) {
      set.add(index);
      marks.push(index);
    },
  };
}

/** A sink in memory (tests, small files). */
export function createMemoryBlockSink(size: number): BlockSink & { bytes: Uint8Array } {
  const bytes = new Uint8Array(size);
  return {
    bytes,
    async write(_index, offset, data) {
      bytes.set(data, offset);
    },
    read: async () => bytes,
  };
}
