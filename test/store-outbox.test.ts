import { afterEach, describe, expect, it } from 'vitest';
import { createOutbox, type Outbox, type OutboxRow } from '../src/store/outbox.js';
import { createOutboxPump, type PumpTimers } from '../src/store/outbox-pump.js';
import { manualClock, tempDb, type TempDb } from './helpers/store-db.js';

let t: TempDb | undefined;
afterEach(() => t?.cleanup());

function setup(keepDelivered?: number): Outbox {
  t = tempDb();
  return createOutbox(t.db, { clock: manualClock(), keepDelivered });
}

const msg = (key: string, payload: string | Uint8Array = `p-${key}`) => ({ topic: `t/${key}`, payload, qos: 1 as const, retain: false, key });

/** Fake timer boundary: records delays; `fire()` runs the due callbacks now. */
function fakeTimers(): PumpTimers & { delays: number[]; fire(): void } {
  let pending: Array<{ fn: () => void; live: boolean }> = [];
  const delays: number[] = [];
  return {
    delays,
    set(fn, ms) {
      const entry = { fn, live: true };
      if (ms < 60_000) delays.push(ms); // publish timeouts (60 s below) are not retries
      pending.push(entry);
      return () => void (entry.live = false);
    },
    fire() {
      const due = pending;
      pending = [];
      for (const e of due) if (e.live) e.fn();
    },
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('createOutbox', () => {
  it('ignores a duplicate key, keeps order, and round-trips text and binary payloads', () => {
    const outbox = setup();
    expect(outbox.enqueue(msg('a')).created).toBe(true);
    const bin = Uint8Array.from([0, 255, 7]);
    outbox.enqueue({ ...msg('b', bin), qos: 0, retain: true });
    const dup = outbox.enqueue(msg('a', 'other'));
    expect(dup.created).toBe(false);
    const rows = outbox.pending();
    expect(rows.map((r) => r.key)).toEqual(['a', 'b']);
    expect(dup.id).toBe(rows[0]!.id);
    expect(rows[0]!.payload).toBe('p-a');
    expect(rows[1]!.payload).toBeInstanceOf(Uint8Array);
    expect(Array.from(rows[1]!.payload as Uint8Array)).toEqual([0, 255, 7]);
    expect(rows[1]).toMatchObject({ qos: 0, retain: true, topic: 't/b' });
  });

  it('markDelivered removes a row from pending and prunes delivered rows beyond keepDelivered', () => {
    const outbox = setup(2);
    for (const k of ['a', 'b', 'c', 'd', 'e']) outbox.enqueue(msg(k));
    for (const r of outbox.pending(4)) outbox.markDelivered(r.id);
    outbox.markDelivered(outbox.pending()[0]!.id - 1); // again: idempotent
    expect(outbox.pending().map((r) => r.key)).toEqual(['e']);
    expect(outbox.counts()).toEqual({ pending: 1, delivered: 2 });
    expect(t!.db.prepare('SELECT key FROM outbox ORDER BY id').pluck().all()).toEqual(['c', 'd', 'e']);
  });
});

describe('createOutboxPump', () => {
  it('while publish fails it retries the head row with growing backoff, then delivers every row once, in order', async () => {
    const outbox = setup();
    for (let i = 0; i < 5; i++) outbox.enqueue(msg(`k${i}`));
    const published: string[] = [];
    let failures = 5;
    const errors: number[] = [];
    const timers = fakeTimers();
    const pump = createOutboxPump({
      outbox,
      clock: manualClock(),
      timers,
      timeoutMs: 60_000,
      backoff: { initialMs: 100, factor: 2, maxMs: 1000 },
      publish: async (row: OutboxRow) => {
        if (failures-- > 0) throw new Error('broker down');
        published.push(row.key);
      },
      onError: (_e, row, attempt) => {
        errors.push(attempt);
        expect(row?.key).toBe('k0');
      },
    });
    pump.kick();
    for (let i = 0; i < 10; i++) {
      await tick();
      timers.fire();
    }
    await pump.whenIdle();
    expect(timers.delays).toEqual([100, 200, 400, 800, 1000]);
    expect(errors).toEqual([1, 2, 3, 4, 5]);
    expect(published).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    expect(outbox.counts().pending).toBe(0);
    expect(pump.status()).toMatchObject({ attempt: 0, failingSince: null });
  });

  it('a publish that never settles times out with EDGEKT_ERR_PUBLISH_TIMEOUT and is retried', async () => {
    const outbox = setup();
    outbox.enqueue(msg('a'));
    let calls = 0;
    const codes: unknown[] = [];
    const pump = createOutboxPump({
      outbox,
      clock: manualClock(),
      timeoutMs: 20,
      backoff: { initialMs: 1 },
      publish: () => (++calls === 1 ? new Promise<void>(() => {}) : Promise.resolve()),
      onError: (e) => codes.push((e as { code?: string }).code),
    });
    await pump.whenIdle();
    expect(codes).toEqual(['EDGEKT_ERR_PUBLISH_TIMEOUT']);
    expect(calls).toBe(2);
    expect(outbox.counts().pending).toBe(0);
  });

  it('kick wakes an idle pump for new rows and cuts a backoff short; stop leaves undelivered rows pending', async () => {
    const outbox = setup();
    const published: string[] = [];
    let down = false;
    const timers = fakeTimers();
    const pump = createOutboxPump({
      outbox,
      clock: manualClock(),
      timers,
      timeoutMs: 60_000,
      publish: async (row) => {
        if (down) throw new Error('down');
        published.push(row.key);
      },
      onError: () => {},
    });
    outbox.enqueue(msg('a'));
    pump.kick();
    await pump.whenIdle();
    down = true;
    outbox.enqueue(msg('b'));
    pump.kick();
    await tick();
    expect(pump.status().attempt).toBe(1);
    down = false;
    pump.kick(); // reconnect: no need to wait for the 500 ms backoff
    await pump.whenIdle();
    expect(published).toEqual(['a', 'b']);
    down = true;
    outbox.enqueue(msg('c'));
    pump.kick();
    await tick();
    await pump.stop();
    timers.fire();
    await tick();
    expect(outbox.pending().map((r) => r.key)).toEqual(['c']);
  });

  it('stop abandons a publish that never settles after its grace (a dead socket), leaving the row pending', async () => {
    const outbox = setup();
    const timers = fakeTimers();
    const errors: unknown[] = [];
    const pump = createOutboxPump({ outbox, clock: manualClock(), timers, timeoutMs: 60_000, publish: () => new Promise<void>(() => {}), onError: (e) => errors.push(e) });
    outbox.enqueue(msg('a'));
    pump.kick();
    await tick();
    let stopped = false;
    const stopping = pump.stop(2000).then(() => void (stopped = true));
    await tick();
    expect(stopped).toBe(false); // within the grace it waits for the in-flight publish
    expect(timers.delays).toContain(2000);
    timers.fire();
    await stopping;
    expect(stopped).toBe(true);
    expect(errors).toEqual([]); // abandoning on stop is not a delivery failure
    expect(outbox.pending().map((r) => r.key)).toEqual(['a']);
  });
});
