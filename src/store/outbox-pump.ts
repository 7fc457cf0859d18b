import type { Clock } from '../core/clock.js';
import { EdgektError } from '../core/errors.js';
import type { Outbox, OutboxRow } from './outbox.js';

/** Timer boundary of the pump (tests inject a fake; the default uses unref'd setTimeout). */
export interface PumpTimers {
  /** Runs `fn` after `ms`; returns a cancel function. */
  set(fn: () => void, ms: number): () => void;
}

export interface OutboxPumpOptions {
  outbox: Outbox;
  /** Resolves when the broker acknowledged the row (PUBACK for QoS 1); rejects when it cannot. */
  publish: (row: OutboxRow) => Promise<void>;
  clock: Clock;
  /** Told about every failed attempt (row null when the store itself failed); the pump keeps retrying regardless. */
  onError: (error: unknown, row: OutboxRow | null, attempt: number) => void;
  /** Retry delay: initialMs · factor^(attempt-1), capped at maxMs. Defaults 500 ms, ×2, 30 s. */
  backoff?: { initialMs?: number; factor?: number; maxMs?: number };
  /** A publish that neither resolves nor rejects within this counts as failed. Default 30 s. */
  timeoutMs?: number;
  /** Rows read from the store at a time. Default 50. */
  batch?: number;
  timers?: PumpTimers;
}

export interface OutboxPumpStatus {
  running: boolean;
  /** Consecutive failed attempts on the head row (0 when healthy). */
  attempt: number;
  /** When the head row first failed (clock ms), null when healthy: how long reports have been stuck. */
  failingSince: number | null;
  lastDeliveredAt: number | null;
}

export interface OutboxPump {
  /** Wakes the pump: drains now if idle, and cuts a pending backoff short (call on enqueue and on reconnect). */
  kick(): void;
  /** Resolves once no row is pending and nothing is in flight (or the pump stopped). */
  whenIdle(): Promise<void>;
  /**
   * Stops retrying; resolves once the in-flight publish settles, or after `graceMs` (default 2 s)
   * abandons it: a publish on a dead socket with no reconnect never settles on its own. An abandoned
   * row stays pending and goes out again on the next start (at least once: receivers are idempotent
   * by key and sequence). Rows left pending stay in the store.
   */
  stop(graceMs?: number): Promise<void>;
  status(): OutboxPumpStatus;
}

const defaultTimers: PumpTimers = {
  set(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
};

/**
 * Drains the outbox one row at a time in id order: the next row is published only after the previous
 * one was acknowledged and marked, so the broker sees first deliveries in enqueue order and nothing is
 * skipped. A failure retries the same row with exponential backoff until it goes through (broker
 * outages only delay reports). One message in flight costs one round trip per row; the outbox carries
 * state changes and rate-limited progress, not telemetry, so that is enough.
 */
export function createOutboxPump(options: OutboxPumpOptions): OutboxPump {
  const timers = options.timers ?? defaultTimers;
  const initialMs = options.backoff?.initialMs ?? 500;
  const factor = options.backoff?.factor ?? 2;
  const maxMs = options.backoff?.maxMs ?? 30_000;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const batch = options.batch ?? 50;

  let loop: Promise<void> | null = null;
  let cancelRetry: (() => void) | null = null;
  let stopped = false;
  let attempt = 0;
  let failingSince: number | null = null;
  let lastDeliveredAt: number | null = null;
  let idleWaiters: Array<() => void> = [];
  let abandonInFlight: (() => void) | null = null;

  const settleIdle = (): void => {
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const w of waiters) w();
  };

  const withTimeout = (p: Promise<void>): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const cancel = timers.set(() => reject(new EdgektError('EDGEKT_ERR_PUBLISH_TIMEOUT', `publish not acknowledged in ${timeoutMs} ms`)), timeoutMs);
      abandonInFlight = () => (cancel(), reject(new EdgektError('EDGEKT_ERR_PUBLISH_ABANDONED', 'pump stopped with the publish in flight')));
      p.then(
        () => (cancel(), (abandonInFlight = null), resolve()),
        (e: unknown) => (cancel(), (abandonInFlight = null), reject(e)),
      );
    });

  // True when drained, false when it stopped on a failure (a retry is then scheduled).
  async function drain(): Promise<boolean> {
    while (!stopped) {
      const rows = options.outbox.pending(batch);
      if (rows.length === 0) return true;
      for (const row of rows) {
        if (stopped) return false;
        try {
          await withTimeout(options.publish(row));
          options.outbox.markDelivered(row.id);
        } catch (e) {
          if (stopped) return false;
          attempt += 1;
          failingSince ??= options.clock.now();
          options.onError(e, row, attempt);
          return false;
        }
        attempt = 0;
        failingSince = null;
        lastDeliveredAt = options.clock.now();
      }
    }
    return false;
  }

  function start(): void {
    if (stopped || loop) return;
    loop = drain().then(
      (drained) => {
        loop = null;
        if (drained || stopped) settleIdle();
        else scheduleRetry();
      },
      (e: unknown) => {
        // Only the store itself can throw here (publish errors are caught): report and retry.
        loop = null;
        attempt += 1;
        failingSince ??= options.clock.now();
        options.onError(e, null, attempt);
        scheduleRetry();
      },
    );
  }

  function scheduleRetry(): void {
    if (stopped) return settleIdle();
    const delay = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt - 1));
    cancelRetry = timers.set(() => {
      cancelRetry = null;
      start();
    }, delay);
  }

  return {
    kick() {
      if (stopped || loop) return;
      if (cancelRetry) {
        cancelRetry();
        cancelRetry = null;
      }
      start();
    },
    whenIdle() {
      if (stopped || (!loop && !cancelRetry && options.outbox.counts().pending === 0)) return Promise.resolve();
      const p = new Promise<void>((resolve) => idleWaiters.push(resolve));
      if (!loop && !cancelRetry) start();
      return p;
    },
    async stop(graceMs = 2000) {
      stopped = true;
      if (cancelRetry) {
        cancelRetry();
        cancelRetry = null;
      }
      if (loop) {
        const cancelGrace = timers.set(() => abandonInFlight?.(), graceMs);
        await loop;
        cancelGrace();
      }
      settleIdle();
    },
    status() {
      return { running: loop !== null, attempt, failingSince, lastDeliveredAt };
    },
  };
}
