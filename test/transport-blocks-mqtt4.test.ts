import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createBlockServer,
  createFileBlockSink,
  createMemoryBlockLedger,
  createMemoryBlockSink,
  decodeBlockFrame,
  encodeBlockFrame,
  pullFile,
  type BlockServer,
  type PullFileOptions,
} from '../src/transport/blocks/index.js';
import { TOPIC_PREFIX, allowPullResponse, filters, topics } from '../src/transport/topics.js';
import { startAedes, type AedesBroker } from './helpers/aedes.js';
import { countBy, sha256, testFile, testSource, type TestFile, type TestSource } from './helpers/blocks.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';

const BLOCK = 64 * 1024;
const DEV = 'dev-a';
/** aedes has no shared subscriptions: the plain filter. */
const PULLS = `${TOPIC_PREFIX}/devices/+/pull`;

let broker: AedesBroker;
let serverClient: MqttClient;
let deviceClient: MqttClient;
const open: Array<{ close(): Promise<void> }> = [];

const connect = (id: string): Promise<MqttClient> =>
  mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: id, reconnectPeriod: 200, connectTimeout: 2000 });

function serve(source: TestSource): Promise<BlockServer> {
  const server = createBlockServer({ client: serverClient, requestFilter: PULLS, source, allowResponseTopic: allowPullResponse });
  open.push(server);
  return server.ready.then(() => server);
}

const pullOpts = (file: TestFile, over: Partial<PullFileOptions> = {}): PullFileOptions => ({
  client: deviceClient,
  requestTopic: topics.pull(DEV),
  responseTopicPrefix: topics.deviceBlocksPrefix(DEV),
  file,
  ledger: createMemoryBlockLedger(),
  sink: createMemoryBlockSink(file.size),
  ...over,
});

beforeAll(async () => {
  broker = await startAedes();
  serverClient = await connect('coordinator-1');
  deviceClient = await connect(DEV);
});
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});
afterAll(async () => {
  await deviceClient?.endAsync(true);
  await serverClient?.endAsync(true);
  await broker?.stop();
});

describe('EKB1 frame codec', () => {
  const header = { index: 3, sha256: sha256(Buffer.from('x')), correlation: Buffer.from('01234567').toString('base64') };

  it('round-trips header and bytes (including an empty block tail)', () => {
    for (const bytes of [Buffer.from([0, 1, 2, 255]), Buffer.alloc(0)]) {
      const f = decodeBlockFrame(encodeBlockFrame(header, bytes));
      expect(f?.header).toEqual(header);
      expect(f?.bytes.equals(bytes)).toBe(true);
    }
  });

  it('refuses what is not a whole, valid frame', () => {
    const good = encodeBlockFrame(header, Buffer.from('block'));
    const longHeader = Buffer.from(good);
    longHeader.writeUInt32BE(0xffff, 4);
    const badJson = Buffer.concat([good.subarray(0, 8), Buffer.from('{'.padEnd(good.readUInt32BE(4), ' ')), Buffer.from('block')]);
    const cases = [
      good.subarray(0, 6),
      good.subarray(0, 20),
      longHeader,
      badJson,
      Buffer.concat([Buffer.from('EKB2'), good.subarray(4)]),
      encodeBlockFrame({ ...header, index: -1 }, Buffer.alloc(1)),
      encodeBlockFrame({ ...header, correlation: '***' }, Buffer.alloc(1)),
      Buffer.from(JSON.stringify({ error: { code: 'EDGEKT_ERR_NOT_FOUND', message: 'x' } })),
    ];
    expect(cases.map((c) => decodeBlockFrame(c))).toEqual(cases.map(() => undefined));
  });
});

describe('MQTT block transfer on MQTT 3.1.1 (aedes)', () => {
  it('pulls a 5 MB file with window 8; every block requested once and framed', async () => {
    const file = testFile(5 * 1024 * 1024, BLOCK);
    const source = testSource([file]);
    await serve(source);
    const sink = createMemoryBlockSink(file.size);
    const seen: Buffer[] = [];
    const tap = (_t: string, payload: Buffer): void => void seen.push(payload);
    deviceClient.on('message', tap);
    try {
      await pullFile(pullOpts(file, { sink, window: 8 }));
    } finally {
      deviceClient.removeListener('message', tap);
    }
    expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
    expect(source.reads.length).toBe(80);
    expect(seen.length).toBe(80);
    expect(seen.every((p) => p.subarray(0, 4).toString('ascii') === 'EKB1')).toBe(true);
  });

  it('re-requests a block that arrives corrupt and the file verifies', async () => {
    const file = testFile(1024 * 1024, BLOCK);
    const source = testSource([file]);
    source.corrupt.set(5, 'once');
    await serve(source);
    const sink = createMemoryBlockSink(file.size);
    await pullFile(pullOpts(file, { sink }));
    expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
    expect(countBy(source.reads).get(5)).toBe(2);
    expect(source.reads.length).toBe(17);
  });

  it('errors travel as data with their correlation: an unknown artifact fails with EDGEKT_ERR_NOT_FOUND', async () => {
    const server = await serve(testSource([]));
    await expect(pullFile(pullOpts(testFile(4096, 1024), { timeoutMs: 2000, retries: 0 }))).rejects.toMatchObject({ code: 'EDGEKT_ERR_NOT_FOUND' });
    expect(server.stats().errors).toBeGreaterThan(0);
  });

  it("refuses a body response topic outside the requester's namespace: nothing published there", async () => {
    const file = testFile(4096, 1024);
    const server = await serve(testSource([file]));
    const foreign = topics.deviceBlocksPrefix('dev-b');
    const before = broker.published.length;
    const r = pullFile(pullOpts(file, { responseTopicPrefix: foreign, timeoutMs: 300, retries: 1 }));
    await expect(r).rejects.toMatchObject({ code: 'EDGEKT_ERR_TRANSFER' });
    const after = broker.published.slice(before);
    expect(after.filter((t) => t === topics.pull(DEV)).length).toBeGreaterThan(0);
    expect(after.filter((t) => t.startsWith(foreign))).toEqual([]);
    expect(server.stats().refused).toBeGreaterThan(0);
    expect(server.stats().blocksServed).toBe(0);
  });

  it('drops a request with neither properties nor a body route, and one whose body route is malformed', async () => {
    const server = await serve(testSource([]));
    const base = { sha256: sha256(Buffer.from('x')), index: 0, count: 1, blockSize: 1024 };
    const own = `${topics.deviceBlocksPrefix(DEV)}/x`;
    for (const body of [base, { ...base, responseTopic: own }, { ...base, responseTopic: own, correlation: 'not base64!' }, { ...base, responseTopic: `${own}/#`, correlation: 'AAAA' }]) {
      await deviceClient.publishAsync(topics.pull(DEV), JSON.stringify(body), { qos: 1 });
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(server.stats()).toMatchObject({ requests: 4, refused: 4, errors: 0 });
  });

  it('resumes from the ledger after a client restart: no finished block is fetched again', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-pull4-'));
    let second: MqttClient | undefined;
    try {
      const file = testFile(2 * 1024 * 1024, BLOCK);
      const source = testSource([file]);
      await serve(source);
      const ledger = createMemoryBlockLedger();
      const target = path.join(dir, 'weights.bin');
      const ctl = new AbortController();
      let atAbort: number[] = [];
      const first = await connect('dev-a-run1');
      const sink1 = await createFileBlockSink(target, file.size);
      const run1 = pullFile(pullOpts(file, { client: first, ledger, sink: sink1, window: 2, blocksPerRequest: 1, signal: ctl.signal, onProgress: (p) => {
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
      second = await connect('dev-a-run2');
      const sink2 = await createFileBlockSink(target, file.size);
      await pullFile(pullOpts(file, { client: second, ledger, sink: sink2 }));
      await sink2.close();
      expect(readFileSync(target).equals(file.data)).toBe(true);
      const later = source.reads.slice(readsBefore);
      expect(atAbort.length).toBeGreaterThanOrEqual(10);
      expect(later.filter((i) => atAbort.includes(i))).toEqual([]);
      expect(later.length).toBeLessThanOrEqual(32 - atAbort.length);
    } finally {
      await second?.endAsync(true);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('mixed protocol versions through mosquitto', () => {
  let mosq: Mosquitto;
  const clients: MqttClient[] = [];
  const at = async (version: 4 | 5, id: string): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(mosq.url, { protocolVersion: version, clientId: id, reconnectPeriod: 200, connectTimeout: 2000 });
    clients.push(c);
    return c;
  };
  const serveOn = async (client: MqttClient, source: TestSource): Promise<BlockServer> => {
    const server = createBlockServer({ client, requestFilter: filters.sharedPulls(), source, allowResponseTopic: allowPullResponse });
    open.push(server);
    await server.ready;
    return server;
  };

  beforeAll(async () => {
    mosq = await startMosquitto();
  });
  afterAll(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true);
    await mosq?.stop();
  });

  for (const [serverVersion, pullerVersion, form] of [[5, 4, 'frames'], [4, 5, 'frames'], [5, 5, 'properties']] as const) {
    it(`server on v${serverVersion}, puller on v${pullerVersion}: the file verifies, answered with ${form}`, async () => {
      const file = testFile(1024 * 1024, BLOCK);
      const source = testSource([file]);
      source.corrupt.set(3, 'once');
      await serveOn(await at(serverVersion, `coord-v${serverVersion}-${pullerVersion}`), source);
      const puller = await at(pullerVersion, `dev-a-v${serverVersion}-${pullerVersion}`);
      const seen: Array<{ framed: boolean; props: boolean }> = [];
      puller.on('message', (_t, payload, packet) => seen.push({ framed: payload.subarray(0, 4).toString('ascii') === 'EKB1', props: packet.properties?.correlationData !== undefined }));
      const sink = createMemoryBlockSink(file.size);
      await pullFile(pullOpts(file, { client: puller, sink }));
      expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
      expect(countBy(source.reads).get(3)).toBe(2);
      expect(seen.length).toBe(17);
      expect(seen.every((s) => s.framed === (form === 'frames') && s.props === (form === 'properties'))).toBe(true);
    });
  }

  it('MQTT 5 properties win over body fields: a foreign property topic is refused even with an own body topic', async () => {
    const file = testFile(4096, 1024);
    const server = await serveOn(await at(5, 'coord-props'), testSource([file]));
    const device = await at(5, 'dev-a-props');
    const spy = await at(5, 'spy-props');
    const seen: string[] = [];
    spy.on('message', (t) => seen.push(t));
    await spy.subscribeAsync(`${TOPIC_PREFIX}/devices/+/blocks/#`);
    const own = `${topics.deviceBlocksPrefix(DEV)}/own`;
    const foreign = `${topics.deviceBlocksPrefix('dev-b')}/x`;
    const req = { sha256: file.sha256, index: 0, count: 1, blockSize: 1024, correlation: 'AAAAAA==' };
    const correlationData = Buffer.from('AAAAAA==', 'base64');
    await device.publishAsync(topics.pull(DEV), JSON.stringify({ ...req, responseTopic: own }), { qos: 1, properties: { responseTopic: foreign, correlationData } });
    await device.publishAsync(topics.pull(DEV), JSON.stringify({ ...req, responseTopic: foreign }), { qos: 1, properties: { responseTopic: own, correlationData } });
    await new Promise((r) => setTimeout(r, 300));
    expect(server.stats()).toMatchObject({ requests: 2, refused: 1, blocksServed: 1 });
    expect(seen).toEqual([own]);
  });
});
