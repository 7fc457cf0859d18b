import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { createBlockServer, createFileBlockSink, createMemoryBlockLedger, createMemoryBlockSink, pullFile, type BlockServer, type PullFileOptions } from '../../src/transport/blocks/index.js';
import { allowPullResponse, topics } from '../../src/transport/topics.js';
import { countBy, testFile, testSource, type TestFile, type TestSource } from './blocks.js';

export const DEV = 'dev-a';

export interface BrokerHandle {
  url: string;
  stop(): Promise<void>;
}

export interface BlockRigOptions<B extends BrokerHandle> {
  start(): Promise<B>;
  protocolVersion: 4 | 5;
  /** What block servers subscribe to (aedes has no `$share`). */
  requestFilter: string;
}

export interface ServeOptions {
  /** Another client than the rig's coordinator (e.g. at another protocol version). */
  client?: MqttClient;
  authorize?: (requestTopic: string, sha256: string) => boolean;
  maxBytesInFlight?: number;
}

/** One broker, a coordinator client and a device client; servers closed after each test. */
export interface BlockRig<B extends BrokerHandle = BrokerHandle> {
  broker(): B;
  device(): MqttClient;
  /** A fresh client on the broker, at the rig's protocol version unless told. */
  connect(id: string, protocolVersion?: 4 | 5): Promise<MqttClient>;
  /** A block server for `source`, subscribed. */
  serve(source: TestSource, o?: ServeOptions): Promise<BlockServer>;
  /** Pull options for the rig's device client. */
  pullOpts(file: TestFile, over?: Partial<PullFileOptions>): PullFileOptions;
}

/** Registers the vitest hooks that start and stop the rig for the calling test file. */
export function useBlockRig<B extends BrokerHandle>(o: BlockRigOptions<B>): BlockRig<B> {
  let broker: B | undefined;
  let serverClient: MqttClient | undefined;
  let deviceClient: MqttClient | undefined;
  const servers: BlockServer[] = [];
  const clients: MqttClient[] = [];
  const connect = async (id: string, protocolVersion = o.protocolVersion): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(broker!.url, { protocolVersion, clientId: id, reconnectPeriod: 200, connectTimeout: 2000 });
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    broker = await o.start();
    serverClient = await connect('coordinator-1');
    deviceClient = await connect(DEV);
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });
  afterAll(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true);
    await broker?.stop();
  });
  return {
    broker: () => broker!,
    device: () => deviceClient!,
    connect,
    async serve(source, so = {}) {
      const server = createBlockServer({ client: so.client ?? serverClient!, requestFilter: o.requestFilter, source, allowResponseTopic: allowPullResponse, authorize: so.authorize, ...(so.maxBytesInFlight ? { maxBytesInFlight: so.maxBytesInFlight } : {}) });
      servers.push(server);
      await server.ready;
      return server;
    },
    pullOpts: (file, over = {}) => pullOptions(deviceClient!, file, over),
  };
}

/** Pull options for `DEV` on `client`, with a memory ledger and sink unless overridden. */
export function pullOptions(client: MqttClient, file: TestFile, over: Partial<PullFileOptions> = {}): PullFileOptions {
  return {
    client,
    requestTopic: topics.pull(DEV),
    responseTopicPrefix: topics.deviceBlocksPrefix(DEV),
    file,
    ledger: createMemoryBlockLedger(),
    sink: createMemoryBlockSink(file.size),
    ...over,
  };
}

/** A block corrupt once (signed block list) is asked again, once, and the file verifies. */
export async function expectCorruptBlockRefetched(rig: BlockRig): Promise<void> {
  const file = testFile(1024 * 1024, 64 * 1024);
  const source = testSource([file]);
  source.corrupt.set(5, 'once');
  await rig.serve(source);
  const sink = createMemoryBlockSink(file.size);
  await pullFile(rig.pullOpts(file, { sink }));
  expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
  expect(countBy(source.reads).get(5)).toBe(2);
  expect(source.reads.length).toBe(17);
}

/**
 * A pull aborted after 10 blocks, its client ended, then resumed by a new client from the same
 * file sink and ledger: no block the ledger had at the abort is fetched again.
 */
export async function expectResumeAfterRestart(rig: BlockRig): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-pull-'));
  try {
    const file = testFile(2 * 1024 * 1024, 64 * 1024);
    const source = testSource([file]);
    await rig.serve(source);
    const ledger = createMemoryBlockLedger();
    const target = path.join(dir, 'weights.bin');
    const ctl = new AbortController();
    let atAbort: number[] = [];
    const first = await rig.connect(`${DEV}-run1`);
    const sink1 = await createFileBlockSink(target, file.size);
    const run1 = pullFile(pullOptions(first, file, { ledger, sink: sink1, window: 2, blocksPerRequest: 1, signal: ctl.signal, onProgress: (p) => {
      if (p.received >= 10 && !ctl.signal.aborted) {
        atAbort = ledger.received();
        ctl.abort();
      }
    } }));
    await expect(run1).rejects.toMatchObject({ code: 'EDGEKT_ERR_TRANSFER', details: { aborted: true } });
    await first.endAsync(true);
    await sink1.close();
    await new Promise((r) => setTimeout(r, 200));
    const readsBefore = source.reads.length;
    const second = await rig.connect(`${DEV}-run2`);
    const sink2 = await createFileBlockSink(target, file.size);
    await pullFile(pullOptions(second, file, { ledger, sink: sink2 }));
    await sink2.close();
    expect(readFileSync(target).equals(file.data)).toBe(true);
    const later = source.reads.slice(readsBefore);
    expect(atAbort.length).toBeGreaterThanOrEqual(10);
    expect(later.filter((i) => atAbort.includes(i))).toEqual([]);
    expect(later.length).toBeLessThanOrEqual(32 - atAbort.length);
    await second.endAsync(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
