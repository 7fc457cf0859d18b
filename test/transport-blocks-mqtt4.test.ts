import { describe, expect, it } from 'vitest';
import { createMemoryBlockSink, decodeBlockFrame, encodeBlockFrame, pullFile, type BlockServer } from '../src/transport/blocks/index.js';
import { TOPIC_PREFIX, filters, topics } from '../src/transport/topics.js';
import { startAedes, type AedesBroker } from './helpers/aedes.js';
import { DEV, expectCorruptBlockRefetched, expectResumeAfterRestart, useBlockRig } from './helpers/block-cases.js';
import { countBy, sha256, testFile, testSource, type TestSource } from './helpers/blocks.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';

const BLOCK = 64 * 1024;
/** aedes has no shared subscriptions: the plain filter. */
const PULLS = `${TOPIC_PREFIX}/devices/+/pull`;

const rig = useBlockRig<AedesBroker>({ start: startAedes, protocolVersion: 4, requestFilter: PULLS });
const serve = (source: TestSource): Promise<BlockServer> => rig.serve(source);
const pullOpts = rig.pullOpts;

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
    rig.device().on('message', tap);
    try {
      await pullFile(pullOpts(file, { sink, window: 8 }));
    } finally {
      rig.device().removeListener('message', tap);
    }
    expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
    expect(source.reads.length).toBe(80);
    expect(seen.length).toBe(80);
    expect(seen.every((p) => p.subarray(0, 4).toString('ascii') === 'EKB1')).toBe(true);
  });

  it('re-requests a block that arrives corrupt and the file verifies', () => expectCorruptBlockRefetched(rig));

  it('errors travel as data with their correlation: an unknown artifact fails with EDGEKT_ERR_NOT_FOUND', async () => {
    const server = await serve(testSource([]));
    await expect(pullFile(pullOpts(testFile(4096, 1024), { timeoutMs: 2000, retries: 0 }))).rejects.toMatchObject({ code: 'EDGEKT_ERR_NOT_FOUND' });
    expect(server.stats().errors).toBeGreaterThan(0);
  });

  it("refuses a body response topic outside the requester's namespace: nothing published there", async () => {
    const file = testFile(4096, 1024);
    const server = await serve(testSource([file]));
    const foreign = topics.deviceBlocksPrefix('dev-b');
    const before = rig.broker().published.length;
    const r = pullFile(pullOpts(file, { responseTopicPrefix: foreign, timeoutMs: 300, retries: 1 }));
    await expect(r).rejects.toMatchObject({ code: 'EDGEKT_ERR_TRANSFER' });
    const after = rig.broker().published.slice(before);
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
      await rig.device().publishAsync(topics.pull(DEV), JSON.stringify(body), { qos: 1 });
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(server.stats()).toMatchObject({ requests: 4, refused: 4, errors: 0 });
  });

  it('resumes from the ledger after a client restart: no finished block is fetched again', () => expectResumeAfterRestart(rig));
});

describe('mixed protocol versions through mosquitto', () => {
  const mixed = useBlockRig<Mosquitto>({ start: startMosquitto, protocolVersion: 5, requestFilter: filters.sharedPulls() });

  for (const [serverVersion, pullerVersion, form] of [[5, 4, 'frames'], [4, 5, 'frames'], [5, 5, 'properties']] as const) {
    it(`server on v${serverVersion}, puller on v${pullerVersion}: the file verifies, answered with ${form}`, async () => {
      const file = testFile(1024 * 1024, BLOCK);
      const source = testSource([file]);
      source.corrupt.set(3, 'once');
      await mixed.serve(source, { client: await mixed.connect(`coord-v${serverVersion}-${pullerVersion}`, serverVersion) });
      const puller = await mixed.connect(`dev-a-v${serverVersion}-${pullerVersion}`, pullerVersion);
      const seen: Array<{ framed: boolean; props: boolean }> = [];
      puller.on('message', (_t, payload, packet) => seen.push({ framed: payload.subarray(0, 4).toString('ascii') === 'EKB1', props: packet.properties?.correlationData !== undefined }));
      const sink = createMemoryBlockSink(file.size);
      await pullFile(mixed.pullOpts(file, { client: puller, sink }));
      expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
      expect(countBy(source.reads).get(3)).toBe(2);
      expect(seen.length).toBe(17);
      expect(seen.every((s) => s.framed === (form === 'frames') && s.props === (form === 'properties'))).toBe(true);
    });
  }

  it('MQTT 5 properties win over body fields: a foreign property topic is refused even with an own body topic', async () => {
    const file = testFile(4096, 1024);
    const server = await mixed.serve(testSource([file]));
    const device = mixed.device();
    const spy = await mixed.connect('spy-props');
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
