import { describe, expect, it } from 'vitest';
import { createMemoryBlockLedger, createMemoryBlockSink, pullFile, type BlockServer, type PullProgress } from '../src/transport/blocks/index.js';
import { filters, topics } from '../src/transport/topics.js';
import { DEV, expectCorruptBlockRefetched, expectResumeAfterRestart, useBlockRig } from './helpers/block-cases.js';
import { countBy, testFile, testSource, type TestFile, type TestSource } from './helpers/blocks.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';

const BLOCK = 64 * 1024;

const rig = useBlockRig<Mosquitto>({ start: startMosquitto, protocolVersion: 5, requestFilter: filters.sharedPulls() });
const serve = (source: TestSource, authorize?: (requestTopic: string, sha256: string) => boolean): Promise<BlockServer> => rig.serve(source, { authorize });
const pullOpts = rig.pullOpts;

describe('MQTT block transfer (mosquitto)', () => {
  it('pulls a 5 MB file with window 8; every block requested once; progress reaches total', async () => {
    const file = testFile(5 * 1024 * 1024, BLOCK);
    const source = testSource([file]);
    await serve(source);
    const sink = createMemoryBlockSink(file.size);
    const progress: PullProgress[] = [];
    const t0 = performance.now();
    await pullFile(pullOpts(file, { sink, window: 8, onProgress: (p) => progress.push(p) }));
    const seconds = (performance.now() - t0) / 1000;
    console.log(`5 MB over loopback mosquitto: ${seconds.toFixed(2)} s, ${(5 / seconds).toFixed(1)} MB/s`);
    expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
    expect(progress[0]).toEqual({ received: 0, total: 80 });
    expect(progress.at(-1)).toEqual({ received: 80, total: 80 });
    expect(progress.every((p, i) => i === 0 || p.received >= progress[i - 1]!.received)).toBe(true);
    expect(source.reads.length).toBe(80);
  });

  it('re-requests a block that arrives corrupt (signed block list) and the file verifies', () => expectCorruptBlockRefetched(rig));

  it('without a block list, a corrupt block is caught by the file hash and fetched again in a second pass', async () => {
    const file = testFile(256 * 1024, BLOCK);
    const source = testSource([file]);
    source.corrupt.set(2, 'once');
    await serve(source);
    const sink = createMemoryBlockSink(file.size);
    await pullFile(pullOpts({ ...file, blocks: undefined }, { sink }));
    expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
    expect(source.reads.length).toBe(8);
  });

  it('fails with EDGEKT_ERR_HASH when a block stays corrupt (with and without a block list)', async () => {
    const file = testFile(256 * 1024, BLOCK);
    const source = testSource([file]);
    source.corrupt.set(1, 'always');
    await serve(source);
    await expect(pullFile(pullOpts(file, { hashRetries: 2 }))).rejects.toMatchObject({ code: 'EDGEKT_ERR_HASH' });
    expect(countBy(source.reads).get(1)).toBe(3);
    await expect(pullFile(pullOpts({ ...file, blocks: undefined }))).rejects.toMatchObject({ code: 'EDGEKT_ERR_HASH' });
  });

  it('errors travel as data: an unknown or unauthorised artifact fails with EDGEKT_ERR_NOT_FOUND, a bad block size with EDGEKT_ERR_TOO_LARGE', async () => {
    const file = testFile(4096, 1024);
    const cases: Array<[TestSource, ((t: string, sha: string) => boolean) | undefined, TestFile, string]> = [
      [testSource([]), undefined, file, 'EDGEKT_ERR_NOT_FOUND'],
      [testSource([file]), (requestTopic) => requestTopic !== topics.pull(DEV), file, 'EDGEKT_ERR_NOT_FOUND'],
      [testSource([file]), undefined, { ...file, blockSize: 100, blocks: undefined }, 'EDGEKT_ERR_TOO_LARGE'],
    ];
    for (const [source, authorize, info, code] of cases) {
      const server = await serve(source, authorize);
      await expect(pullFile(pullOpts(info))).rejects.toMatchObject({ code });
      const st = server.stats();
      expect(st.errors).toBeGreaterThan(0);
      expect(st.errors).toBe(st.requests);
      expect(source.reads).toEqual([]);
      await server.close();
    }
  });

  it("refuses a response topic outside the requester's namespace (no reply, counted)", async () => {
    const file = testFile(4096, 1024);
    const server = await serve(testSource([file]));
    const spy = await rig.connect('spy');
    const seen: string[] = [];
    spy.on('message', (t) => seen.push(t));
    await spy.subscribeAsync(`${topics.deviceBlocksPrefix('dev-b')}/#`);
    try {
      const r = pullFile(pullOpts(file, { responseTopicPrefix: topics.deviceBlocksPrefix('dev-b'), timeoutMs: 300, retries: 1 }));
      await expect(r).rejects.toMatchObject({ code: 'EDGEKT_ERR_TRANSFER' });
      expect(seen).toEqual([]);
      expect(server.stats().refused).toBeGreaterThan(0);
      expect(server.stats().blocksServed).toBe(0);
    } finally {
      await spy.endAsync(true);
    }
  });

  it('resumes after a client restart from the file sink and ledger: no finished block is fetched again', () => expectResumeAfterRestart(rig));

  it('survives mosquitto killed mid-transfer and restarted on the same port: finished blocks never requested twice', async () => {
    const file = testFile(5 * 1024 * 1024, BLOCK);
    const source = testSource([file]);
    await serve(source);
    const ledger = createMemoryBlockLedger();
    const sink = createMemoryBlockSink(file.size);
    let atKill: number[] | undefined;
    let restarted: Promise<void> | undefined;
    const reconnects: string[] = [];
    rig.device().on('reconnect', () => reconnects.push('device'));
    await pullFile(pullOpts(file, { ledger, sink, window: 4, blocksPerRequest: 2, timeoutMs: 1500, retries: 10, onProgress: (p) => {
      if (!atKill && p.received >= 20) {
        atKill = ledger.received();
        restarted = rig.broker().kill().then(() => new Promise((r) => setTimeout(r, 500))).then(() => rig.broker().start());
      }
    } }));
    await restarted;
    expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
    expect(reconnects.length).toBeGreaterThan(0);
    expect(atKill!.length).toBeGreaterThanOrEqual(20);
    expect(atKill!.length).toBeLessThan(80);
    const counts = countBy(source.reads);
    expect(atKill!.filter((i) => counts.get(i) !== 1)).toEqual([]);
    expect(new Set(source.reads).size).toBe(80);
  });
});
