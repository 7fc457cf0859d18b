import { createHash } from 'node:crypto';
import { EdgektError } from '../../core/errors.js';
import { blockCount, blockLength } from './protocol.js';
import type { BlockLedger, BlockSink, PullCommonOptions, PullFileInfo, PullProgress } from './types.js';

export interface AssemblerOptions {
  file: PullFileInfo;
  ledger: BlockLedger;
  sink: BlockSink;
  /** How many times one block may arrive bad before the pull fails with EDGEKT_ERR_HASH. */
  hashRetries: number;
  /** Whole passes over the file after a whole-file hash mismatch (needed when no per-block list localises it). */
  fileRetries: number;
  onProgress?: (p: PullProgress) => void;
}

export type AcceptResult = 'stored' | 'ignored' | 'bad';

export interface Run {
  index: number;
  count: number;
}

/**
 * The transport-independent half of a pull: which blocks are missing, block checks, the
 * write-then-mark order (sink durable before the ledger says so) and the whole-file check.
 * MQTT and HTTP pulls share it, so both resume from the same ledger and sink.
 */
export interface BlockAssembler {
  readonly total: number;
  isMissing(index: number): boolean;
  /** Missing blocks, ascending, excluding ones being written now. */
  missing(): number[];
  accept(index: number, bytes: Uint8Array, declaredSha256?: string): Promise<AcceptResult>;
  /** True once every block is stored (no writes pending). */
  complete(): boolean;
  /** Whole-file sha256; on mismatch either starts another pass (returns false) or throws EDGEKT_ERR_HASH. */
  verify(): Promise<boolean>;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Groups ascending indices into runs of consecutive blocks, at most maxCount each. */
export function toRuns(indices: readonly number[], maxCount: number): Run[] {
  const runs: Run[] = [];
  for (const i of indices) {
    const last = runs[runs.length - 1];
    if (last && last.index + last.count === i && last.count < maxCount) last.count++;
    else runs.push({ index: i, count: 1 });
  }
  return runs;
}

export function createBlockAssembler(o: AssemblerOptions): BlockAssembler {
  const { file } = o;
  const total = blockCount(file.size, file.blockSize);
  const have = new Set(o.ledger.received().filter((i) => Number.isInteger(i) && i >= 0 && i < total));
  const writing = new Set<number>();
  const bad = new Map<number, number>();
  let passesLeft = o.fileRetries;
  const progress = (): void => o.onProgress?.({ received: have.size, total });
  progress();

  const isMissing = (i: number): boolean => i >= 0 && i < total && !have.has(i) && !writing.has(i);

  return {
    total,
    isMissing,
    missing: () => Array.from({ length: total }, (_, i) => i).filter(isMissing),
    async accept(index, bytes, declared) {
      if (!Number.isInteger(index) || !isMissing(index)) return 'ignored';
      // Trusted per-block hashes first; else the sender's (transport corruption); else only the file hash.
      const expected = file.blocks?.[index] ?? declared;
      if (bytes.byteLength !== blockLength(index, file.size, file.blockSize) || (expected !== undefined && sha256Hex(bytes) !== expected)) {
        const n = (bad.get(index) ?? 0) + 1;
        bad.set(index, n);
        if (n > o.hashRetries) throw new EdgektError('EDGEKT_ERR_HASH', `block ${index} of ${file.sha256} arrived bad ${n} times`, { index, sha256: file.sha256 });
        return 'bad';
      }
      writing.add(index);
      try {
        await o.sink.write(index, index * file.blockSize, bytes);
        o.ledger.mark(index);
        have.add(index);
      } finally {
        writing.delete(index);
      }
      progress();
      return 'stored';
    },
    complete: () => have.size === total && writing.size === 0,
    async verify() {
      const actual = o.sink.sha256 ? await o.sink.sha256() : sha256Hex(await o.sink.read());
      if (actual === file.sha256) return true;
      if (passesLeft <= 0) throw new EdgektError('EDGEKT_ERR_HASH', `file ${file.sha256} assembled with sha256 ${actual}`, { sha256: file.sha256, actual });
      passesLeft--;
      have.clear();
      progress();
      return false;
    },
  };
}

/** The assembler both pulls use: one extra whole-file pass only when no per-block list can localise a bad block. */
export function assemblerFor(o: PullCommonOptions): BlockAssembler {
  return createBlockAssembler({ file: o.file, ledger: o.ledger, sink: o.sink, hashRetries: o.hashRetries ?? 3, fileRetries: o.file.blocks ? 0 : 1, onProgress: o.onProgress });
}
