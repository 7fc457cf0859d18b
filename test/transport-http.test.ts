import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryBlockLedger, createMemoryBlockSink, pullFileHttp } from '../src/transport/blocks/index.js';
import { countBy, testFile } from './helpers/blocks.js';

const BLOCK = 4096;
const file = testFile(200 * 1024 + 123, BLOCK);
const corrupt = testFile(file.size, BLOCK);
/** Every range asked for, as [start, end]. */
const ranges: Array<[number, number]> = [];
let breakNext = 0;
let server: http.Server;
let base: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const data = req.url === '/corrupt.bin' ? corrupt.data : req.url === '/file.bin' ? file.data : null;
    if (!data) return res.writeHead(404).end();
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m) return res.writeHead(200, { 'content-length': data.length }).end(data);
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]), data.length - 1);
    ranges.push([start, end]);
    res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${data.length}`, 'content-length': end - start + 1 });
    if (breakNext > 0) {
      // Send 2.5 blocks, then cut the connection: an interrupted download.
      breakNext--;
      res.write(data.subarray(start, start + Math.floor(2.5 * BLOCK)), () => res.destroy());
      return;
    }
    res.end(data.subarray(start, end + 1));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('HTTP range pull', () => {
  it('pulls a file in ranges, verifying blocks and the whole file', async () => {
    ranges.length = 0;
    const sink = createMemoryBlockSink(file.size);
    const progress: number[] = [];
    await pullFileHttp({ url: `${base}/file.bin`, file, ledger: createMemoryBlockLedger(), sink, blocksPerRequest: 16, onProgress: (p) => progress.push(p.received) });
    expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
    expect(ranges.length).toBe(Math.ceil(file.blocks!.length / 16));
    expect(progress.at(-1)).toBe(file.blocks!.length);
  });

  it('resumes after an interruption: the retry starts at the first block not yet stored', async () => {
    ranges.length = 0;
    breakNext = 1;
    const ledger = createMemoryBlockLedger();
    const sink = createMemoryBlockSink(file.size);
    await pullFileHttp({ url: `${base}/file.bin`, file, ledger, sink, window: 1, blocksPerRequest: 64 });
    expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
    expect(ranges[0]).toEqual([0, file.size - 1]);
    expect(ranges[1]![0]).toBe(2 * BLOCK);
    const stored = countBy(ledger.marks);
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
  });

  it('resumes across calls from the same ledger: only missing blocks are asked for', async () => {
    ranges.length = 0;
    breakNext = 1;
    const ledger = createMemoryBlockLedger();
    const sink = createMemoryBlockSink(file.size);
    const first = pullFileHttp({ url: `${base}/file.bin`, file, ledger, sink, window: 1, blocksPerRequest: 64, retries: 0 });
    await expect(first).rejects.toMatchObject({ code: 'EDGEKT_ERR_TRANSFER' });
    expect(ledger.received()).toEqual([0, 1]);
    await pullFileHttp({ url: `${base}/file.bin`, file, ledger, sink, window: 1, blocksPerRequest: 64 });
    expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
    expect(ranges.slice(1).every(([s]) => s >= 2 * BLOCK)).toBe(true);
  });

  it('refuses bytes that do not match the signed block hashes (EDGEKT_ERR_HASH) and a missing file (EDGEKT_ERR_NOT_FOUND)', async () => {
    const info = { sha256: file.sha256, size: file.size, blockSize: BLOCK, blocks: file.blocks };
    await expect(pullFileHttp({ url: `${base}/corrupt.bin`, file: info, ledger: createMemoryBlockLedger(), sink: createMemoryBlockSink(file.size), hashRetries: 1 })).rejects.toMatchObject({ code: 'EDGEKT_ERR_HASH' });
    await expect(pullFileHttp({ url: `${base}/corrupt.bin`, file: { ...info, blocks: undefined }, ledger: createMemoryBlockLedger(), sink: createMemoryBlockSink(file.size) })).rejects.toMatchObject({ code: 'EDGEKT_ERR_HASH' });
    await expect(pullFileHttp({ url: `${base}/nope.bin`, file, ledger: createMemoryBlockLedger(), sink: createMemoryBlockSink(file.size) })).rejects.toMatchObject({ code: 'EDGEKT_ERR_NOT_FOUND' });
  });
});
