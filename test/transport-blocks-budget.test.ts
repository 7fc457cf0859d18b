import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { createMemoryBlockSink, pullFile } from '../src/transport/blocks/index.js';
import { TOPIC_PREFIX, topics } from '../src/transport/topics.js';
import { startAedes, type AedesBroker } from './helpers/aedes.js';
import { pullOptions, useBlockRig } from './helpers/block-cases.js';
import { testFile, testSource } from './helpers/blocks.js';

const BLOCK = 64 * 1024;
const PULLS = `${TOPIC_PREFIX}/devices/+/pull`;

const rig = useBlockRig<AedesBroker>({ start: startAedes, protocolVersion: 4, requestFilter: PULLS });

/**
 * Counts, from outside the server, the blocks it holds: read from its source and not yet
 * acknowledged by the broker (the callback of the block's publish). Returns the peak so far.
 */
function watchBlocksInHand(client: MqttClient, source: { read: (sha: string, off: number, len: number) => Promise<Uint8Array> }): () => number {
  let inHand = 0;
  let peak = 0;
  const read = source.read.bind(source);
  source.read = async (sha, off, len) => {
    const bytes = await read(sha, off, len);
    peak = Math.max(peak, ++inHand);
    return bytes;
  };
  const publish = client.publish.bind(client) as (...args: unknown[]) => MqttClient;
  (client as unknown as { publish: (...args: unknown[]) => MqttClient }).publish = (topic, payload, opts, cb) => {
    const isBlock = Buffer.isBuffer(payload) && payload.length >= BLOCK;
    return publish(topic, payload, opts, (...a: unknown[]) => {
      if (isBlock) inHand--;
      (cb as ((...x: unknown[]) => void) | undefined)?.(...a);
    });
  };
  return () => peak;
}

describe('block server memory (aedes)', () => {
  it('holds at most maxBytesInFlight of blocks however many devices pull at once; every pull verifies', async () => {
    const file = testFile(2 * 1024 * 1024, BLOCK);
    const source = testSource([file]);
    const server = await rig.connect('budget-server');
    const peakBlocks = watchBlocksInHand(server, source);
    const budget = 1024 * 1024;
    const s = await rig.serve(source, { client: server, maxBytesInFlight: budget });
    const devices = Array.from({ length: 24 }, (_, i) => `dev-budget-${i}`);
    // 24 devices × 8 requests × 4 blocks of 64 KB: 48 MB asked for at once.
    const sinks = devices.map(() => createMemoryBlockSink(file.size));
    await Promise.all(devices.map((id, i) => pullFile({
      ...pullOptions(rig.device(), file, { sink: sinks[i]!, window: 8, blocksPerRequest: 4, timeoutMs: 20_000 }),
      requestTopic: topics.pull(id), responseTopicPrefix: topics.deviceBlocksPrefix(id),
    })));
    for (const sink of sinks) expect(Buffer.from(sink.bytes).equals(file.data)).toBe(true);
    expect(source.reads.length).toBe(24 * 32);
    expect(peakBlocks() * BLOCK).toBeLessThanOrEqual(budget);
    expect(s.stats().peakBytesInFlight).toBeLessThanOrEqual(budget);
  }, 60_000);
});
