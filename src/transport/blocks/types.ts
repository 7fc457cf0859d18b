import type { Logger } from 'pino';

/**
 * Which blocks of a file are already safely on disk. The agent's store implements it on SQLite
 * (structurally: keep this exact shape); `mark` must persist durably before it returns, because
 * after a crash every index `received()` lists is never fetched again.
 */
export interface BlockLedger {
  received(): number[];
  mark(index: number): void;
}

/**
 * Where blocks land. `write` must be durable (fsync) before it resolves: the puller marks the
 * ledger only afterwards. `read` returns the whole file; a sink that can hash without holding the
 * file in memory also offers `sha256`.
 */
export interface BlockSink {
  write(index: number, offset: number, bytes: Uint8Array): Promise<void>;
  read(): Promise<Uint8Array>;
  sha256?(): Promise<string>;
}

/** What a puller needs to know of one file: from a verified manifest entry. */
export interface PullFileInfo {
  sha256: string;
  size: number;
  blockSize: number;
  /** Trusted per-block hashes (manifest `files[].blocks`); without them the server's hash is used. */
  blocks?: readonly string[];
}

export interface PullProgress {
  received: number;
  total: number;
}

/** What both pulls (MQTT and HTTP) take; their defaults differ and are documented on each. */
export interface PullCommonOptions {
  file: PullFileInfo;
  ledger: BlockLedger;
  sink: BlockSink;
  /** Requests in flight. */
  window?: number;
  /** Blocks per request. */
  blocksPerRequest?: number;
  /** A request that delivers nothing for this long is asked again. */
  timeoutMs?: number;
  /** Failed attempts one block may suffer before EDGEKT_ERR_TRANSFER. */
  retries?: number;
  /** Bad copies of one block tolerated before EDGEKT_ERR_HASH (default 3). */
  hashRetries?: number;
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
  logger?: Logger;
}

/** Where a block server reads artifacts from, keyed by their whole-file sha256. */
export interface ArtifactSource {
  stat(sha256: string): Promise<{ size: number } | null>;
  read(sha256: string, offset: number, length: number): Promise<Uint8Array>;
}
