import { EdgektError, isEdgektError } from '../../core/errors.js';
import { assemblerFor, toRuns, type BlockAssembler, type Run } from './assembler.js';
import { blockLength } from './protocol.js';
import type { PullCommonOptions } from './types.js';
import { silentLog } from './silent-log.js';

/** Defaults: window 2, blocksPerRequest 64 (4 MB at 64 KB blocks), timeoutMs 15000 (idle), retries 5. */
export interface PullFileHttpOptions extends PullCommonOptions {
  /** The manifest entry's `url` (http or https). */
  url: string;
  /** Injected fetch (tests, proxies); default the global one. */
  fetch?: typeof fetch;
  headers?: Record<string, string>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The HTTP(S) alternative to MQTT blocks for a manifest entry with a `url`: range requests over
 * runs of missing blocks, streamed so every complete block is stored (and marked) as it arrives,
 * so an interrupted pull resumes from the same ledger and sink with the same block and file checks.
 */
export async function pullFileHttp(o: PullFileHttpOptions): Promise<void> {
  const log = o.logger ?? silentLog;
  const doFetch = o.fetch ?? fetch;
  const perRequest = Math.max(1, o.blocksPerRequest ?? 64);
  const window = Math.max(1, o.window ?? 2);
  const timeoutMs = o.timeoutMs ?? 15_000;
  const retries = o.retries ?? 5;
  const asm = assemblerFor(o);
  const failures = new Map<number, number>();

  const checkAbort = (): void => {
    if (o.signal?.aborted) throw new EdgektError('EDGEKT_ERR_TRANSFER', 'pull aborted', { aborted: true });
  };

  const fetchRun = async (run: Run): Promise<void> => {
    checkAbort();
    try {
      await streamRun(doFetch, o, asm, run, timeoutMs);
    } catch (e) {
      if (isEdgektError(e) && e.code !== 'EDGEKT_ERR_TRANSFER') throw e;
      checkAbort();
      const first = Array.from({ length: run.count }, (_, k) => run.index + k).find((i) => asm.isMissing(i));
      if (first === undefined) return;
      const n = (failures.get(first) ?? 0) + 1;
      failures.set(first, n);
      log.debug({ err: e, run, attempt: n }, 'range request failed');
      if (n > retries) throw new EdgektError('EDGEKT_ERR_TRANSFER', `${o.url}: block ${first} failed ${n} times`, { index: first }, { cause: e });
      await sleep(Math.min(2000, 100 * 2 ** (n - 1)));
    }
  };

  for (;;) {
    checkAbort();
    const missing = asm.missing();
    if (missing.length === 0) {
      if (await asm.verify()) return;
      continue;
    }
    const runs = toRuns(missing, perRequest);
    const workers = Array.from({ length: Math.min(window, runs.length) }, async () => {
      for (let run = runs.shift(); run; run = runs.shift()) await fetchRun(run);
    });
    await Promise.all(workers);
  }
}

async function streamRun(doFetch: typeof fetch, o: PullFileHttpOptions, asm: BlockAssembler, run: Run, timeoutMs: number): Promise<void> {
  const { size, blockSize } = o.file;
  const start = run.index * blockSize;
  const end = Math.min(size, (run.index + run.count) * blockSize) - 1;
  const ctl = new AbortController();
  let idle = setTimeout(() => ctl.abort(), timeoutMs);
  const onAbort = (): void => ctl.abort();
  o.signal?.addEventListener('abort', onAbort);
  try {
    let res: Response;
    try {
      res = await doFetch(o.url, { headers: { ...o.headers, range: `bytes=${start}-${end}` }, signal: ctl.signal });
    } catch (e) {
      throw new EdgektError('EDGEKT_ERR_TRANSFER', `${o.url}: ${(e as Error).message}`, {}, { cause: e });
    }
    if (res.status === 404 || res.status === 410) throw new EdgektError('EDGEKT_ERR_NOT_FOUND', `${o.url}: HTTP ${res.status}`);
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
    if (res.status !== 206 || !range || Number(range[1]) !== start || !res.body) {
      await res.body?.cancel().catch(() => undefined);
      throw new EdgektError('EDGEKT_ERR_TRANSFER', `${o.url}: expected 206 for bytes ${start}-${end}, got ${res.status}`);
    }
    let index = run.index;
    let buf = new Uint8Array(blockLength(index, size, blockSize));
    let filled = 0;
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        clearTimeout(idle);
        idle = setTimeout(() => ctl.abort(), timeoutMs);
        let off = 0;
        while (off < value.byteLength && index < run.index + run.count) {
          const take = Math.min(buf.byteLength - filled, value.byteLength - off);
          buf.set(value.subarray(off, off + take), filled);
          filled += take;
          off += take;
          if (filled === buf.byteLength) {
            await asm.accept(index, buf);
            index++;
            if (index < run.index + run.count) buf = new Uint8Array(blockLength(index, size, blockSize));
            filled = 0;
          }
        }
      }
    } catch (e) {
      throw isEdgektError(e) ? e : new EdgektError('EDGEKT_ERR_TRANSFER', `${o.url}: ${(e as Error).message}`, {}, { cause: e });
    } finally {
      reader.releaseLock();
    }
    if (index < run.index + run.count) throw new EdgektError('EDGEKT_ERR_TRANSFER', `${o.url}: range ended at block ${index} of ${run.index + run.count}`);
  } finally {
    clearTimeout(idle);
    o.signal?.removeEventListener('abort', onAbort);
  }
}
