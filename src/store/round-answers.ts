import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import type { Db } from './sqlite.js';
import type { Outbox, OutboxMessage } from './outbox.js';

/** A round this device answered: with an update (and the file it serves) or a failure. */
export interface RoundAnswer {
  roundId: string;
  runKey: string;
  round: number;
  outcome: 'update' | 'failed';
  /** The update file the device serves (outcome `update`). */
  served: { file: string; sha256: string; size: number } | null;
  answeredAt: number;
}

export interface RoundAnswerStore {
  get(roundId: string): RoundAnswer | null;
  /** Highest round number answered for a run, or null. */
  lastRound(runKey: string): number | null;
  /**
   * Records the answer and enqueues its report in one transaction: a crash leaves both or
   * neither, so a restarted agent never reports a round twice nor forgets one it reported.
   * Returns false (and enqueues nothing) when the round was already answered.
   */
  answer(a: Omit<RoundAnswer, 'answeredAt'>, report: OutboxMessage): boolean;
  /** Update files to serve again after a restart (the coordinator may pull late). */
  served(limit?: number): RoundAnswer[];
}

const RowSchema = z.object({
  round_id: z.string(),
  run_key: z.string(),
  round: z.number().int(),
  outcome: z.enum(['update', 'failed']),
  file: z.string().nullable(),
  sha256: z.string().nullable(),
  size: z.number().int().nullable(),
  answered_at: z.number(),
});

function toAnswer(raw: unknown): RoundAnswer {
  const r = RowSchema.parse(raw);
  const served = r.file !== null && r.sha256 !== null && r.size !== null ? { file: r.file, sha256: r.sha256, size: r.size } : null;
  return { roundId: r.round_id, runKey: r.run_key, round: r.round, outcome: r.outcome, served, answeredAt: r.answered_at };
}

/** The agent's memory of federated rounds (migration 6): idempotency by roundId, staleness by run. */
export function createRoundAnswerStore(db: Db, o: { clock: Clock; outbox: Outbox }): RoundAnswerStore {
  const byId = db.prepare('SELECT * FROM round_answers WHERE round_id = ?');
  const last = db.prepare('SELECT max(round) FROM round_answers WHERE run_key = ?').pluck();
  const insert = db.prepare(
    `INSERT INTO round_answers (round_id, run_key, round, outcome, file, sha256, size, answered_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (round_id) DO NOTHING`,
  );
  const servedStmt = db.prepare("SELECT * FROM round_answers WHERE outcome = 'update' AND file IS NOT NULL ORDER BY answered_at DESC LIMIT ?");
  const answerTx = db.transaction((a: Omit<RoundAnswer, 'answeredAt'>, report: OutboxMessage): boolean => {
    const s = a.served;
    if (insert.run(a.roundId, a.runKey, a.round, a.outcome, s?.file ?? null, s?.sha256 ?? null, s?.size ?? null, o.clock.now()).changes === 0) return false;
    o.outbox.enqueue(report);
    return true;
  });
  return {
    get: (roundId) => {
      const raw = byId.get(roundId);
      return raw === undefined ? null : toAnswer(raw);
    },
    lastRound: (runKey) => z.number().int().nullable().parse(last.get(runKey) ?? null),
    answer: (a, report) => answerTx.immediate(a, report),
    served: (limit = 100) => servedStmt.all(limit).map(toAnswer),
  };
}
