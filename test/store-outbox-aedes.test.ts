import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/core/clock.js';
import { createOutbox } from '../src/store/outbox.js';
import { createOutboxPump } from '../src/store/outbox-pump.js';
import { tempDb, type TempDb } from './helpers/store-db.js';

let t: TempDb | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  t?.cleanup();
});

/** An embedded broker on `port` (0 = any free one) that records every payload it accepts, before PUBACK. */
async function startBroker(port: number, seen: string[]): Promise<{ port: number; stop(): Promise<void> }> {
  const broker = await Aedes.createBroker({
    authorizePublish: (_client, packet, done) => {
      seen.push(packet.payload.toString());
      done(null);
    },
  });
  const server = net.createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    async stop() {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('outbox pump against a real broker (aedes over TCP)', () => {
  it('delivers every row at least once and in order across two broker restarts', async () => {
    t = tempDb();
    const outbox = createOutbox(t.db, { clock: systemClock });
    const seen: string[] = [];
    let broker = await startBroker(0, seen);
    const port = broker.port;
    cleanups.push(() => broker.stop());

    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 50, connectTimeout: 2000, clientId: 'agent-test' });
    cleanups.push(() => client.endAsync(true));
    client.on('error', () => {}); // ECONNREFUSED while the broker is down
    let failures = 0;
    const pump = createOutboxPump({
      outbox,
      clock: systemClock,
      timeoutMs: 300,
      backoff: { initialMs: 20, maxMs: 200 },
      publish: async (row) => {
        await client.publishAsync(row.topic, Buffer.from(row.payload), { qos: 1, retain: row.retain });
      },
      onError: () => void failures++,
    });
    cleanups.push(() => pump.stop());

    // Rows 20–29 and 40–49 are enqueued while the broker is down.
    const keys = Array.from({ length: 60 }, (_, i) => `job-1:${i + 1}`);
    let down = false;
    for (const [i, key] of keys.entries()) {
      if (i === 20 || i === 40) {
        await broker.stop();
        down = true;
      }
      if (i === 30 || i === 50) {
        broker = await startBroker(port, seen);
        down = false;
      }
      outbox.enqueue({ topic: 'edgekt/v1/devices/pi-1/jobs/job-1/update', payload: key, qos: 1, retain: false, key });
      pump.kick();
      await sleep(down ? 40 : 5);
    }
    await pump.whenIdle();

    const firstSeen = seen.filter((k, i) => seen.indexOf(k) === i);
    expect(firstSeen).toEqual(keys);
    expect(outbox.counts().pending).toBe(0);
    expect(failures).toBeGreaterThan(0); // the outages were real: some publishes failed or timed out
  });
});
