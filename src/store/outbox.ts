import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import { EdgektError } from '../core/errors.js';
import type { Db } from './sqlite.js';

export type Qos = 0 | 1 | 2;

/** A message to publish later. `key` makes enqueueing idempotent: a second row with the same key is ignored. */
export interface OutboxMessage {
  topic: string;
  payload: string | Uint8Array;
  qos: Qos;
  retain: boolean;
  key: string;
}

export interface OutboxRow extends OutboxMessage {
  /** Enqueue order: pending rows are returned and must be published in ascending id. */
  id: number;
  createdAt: number;
}

export interface OutboxOptions {
  clock: Clock;
  /**
   * Delivered rows kept (the newest) for inspection; older ones are deleted. Key de-duplication holds
   * while a row is kept, which is enough for job updates: their keys (`${jobId}:${seq}`) only grow.
   * Default 1000.
   */
  keepDelivered?: number;
}

export interface Outbox {
  /** Durable when it returns (or when the enclosing transaction commits). */
  enqueue(message: OutboxMessage): { id: number; created: boolean };
  /** Oldest undelivered rows first. */
  pending(limit?: number): OutboxRow[];
  /** Called after the broker acknowledged the row; idempotent. Prunes delivered rows beyond `keepDelivered`. */
  markDelivered(id: number): void;
  counts(): { pending: number; delivered: number };
}

const RowSchema = z.object({
  id: z.number().int(),
  key: z.string(),
  topic: z.string(),
  payload: z.instanceof(Uint8Array),
  is_text: z.union([z.literal(0), z.literal(1)]),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)]),
  retain: z.union([z.literal(0), z.literal(1)]),
  created_at: z.number(),
});

function toRow(raw: unknown): OutboxRow {
  const r = RowSchema.safeParse(raw);
  if (!r.success) throw new EdgektError('EDGEKT_ERR_STORE', `outbox row fails its schema: ${r.error.message}`);
  const { id, key, topic, payload, is_text, qos, retain, created_at } = r.data;
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return {
    id,
    key,
    topic,
    payload: is_text === 1 ? bytes.toString('utf8') : new Uint8Array(bytes),
    qos,
    retain: retain === 1,
    createdAt: created_at,
  };
}

/**
 * The durable queue between the agent's state and the broker. Rows are written in the same SQLite
 * transaction as the state they report (see jobs.ts), so a crash can lose neither; the pump
 * (outbox-pump.ts) publishes them in order and marks them delivered on PUBACK. Delivery is at least
 * once: a row published but not yet marked when the process dies is published again, and receivers
 * de-duplicate by the key carried in the payload.
 */
export function createOutbox(db: Db, options: OutboxOptions): Outbox {
  const keep = Math.max(0, Math.floor(options.keepDelivered ?? 1000));
  const insert = db.prepare(
    `INSERT INTO outbox (key, topic, payload, is_text, qos, retain, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
  );
  const byKey = db.prepare('SELECT id FROM outbox WHERE key = ?').pluck();
  const pendingStmt = db.prepare('SELECT * FROM outbox WHERE delivered_at IS NULL ORDER BY id LIMIT ?');
  const mark = db.prepare('UPDATE outbox SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL');
  const prune = db.prepare(
    `DELETE FROM outbox WHERE delivered_at IS NOT NULL AND id <= (
       SELECT id FROM outbox WHERE delivered_at IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET ?)`,
  );
  const countStmt = db.prepare('SELECT count(*) FILTER (WHERE delivered_at IS NULL) AS p, count(*) FILTER (WHERE delivered_at IS NOT NULL) AS d FROM outbox');
  const markTx = db.transaction((id: number) => {
    if (mark.run(options.clock.now(), id).changes > 0) prune.run(keep);
  });

  return {
    enqueue(m) {
      const isText = typeof m.payload === 'string';
      const bytes = typeof m.payload === 'string' ? Buffer.from(m.payload, 'utf8') : Buffer.from(m.payload);
      const res = insert.run(m.key, m.topic, bytes, isText ? 1 : 0, m.qos, m.retain ? 1 : 0, options.clock.now());
      if (res.changes > 0) return { id: Number(res.lastInsertRowid), created: true };
      const id = z.number().int().parse(byKey.get(m.key));
      return { id, created: false };
    },
    pending(limit = 100) {
      return pendingStmt.all(Math.max(1, Math.floor(limit))).map(toRow);
    },
    markDelivered(id) {
      markTx.immediate(id);
    },
    counts() {
      const c = z.object({ p: z.number(), d: z.number() }).parse(countStmt.get());
      return { pending: c.p, delivered: c.d };
    },
  };
}
