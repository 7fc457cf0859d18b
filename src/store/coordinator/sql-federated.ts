import { z } from 'zod';
import type { Clock } from '../../core/clock.js';
import { EdgektError } from '../../core/errors.js';
import { parsedJsonObject } from './schemas.js';
import { int, json, jsonOrNull, jsonText, marks, parseRow, type SqlDriver, type SqlRow, type SqlValue } from './sql-driver.js';
import { toRound } from './sql-results.js';
import type { CoordinatorStore, FederatedLease, FederatedRun } from './types.js';

const runRow = z.object({
  id: z.string(), spec: jsonText(parsedJsonObject), state: z.string(), round_number: int, attempt: int, global_sha256: z.string(),
  server_state: jsonText(parsedJsonObject).nullable(), created_at: int, updated_at: int,
});

function toRun(row: SqlRow | undefined): FederatedRun {
  const r = parseRow(runRow, row, 'federated_runs');
  return {
    id: r.id, spec: r.spec, state: r.state, roundNumber: r.round_number, attempt: r.attempt, globalSha256: r.global_sha256,
    serverState: r.server_state, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

const leaseRow = z.object({ run_id: z.string(), owner: z.string(), fence: int, expires_at: int });
function toLease(row: SqlRow | undefined): FederatedLease {
  const r = parseRow(leaseRow, row, 'federated_leases');
  return { runId: r.run_id, owner: r.owner, fence: r.fence, expiresAt: r.expires_at };
}

const inStates = (column: string, states: readonly string[] | undefined, sql: string[], params: SqlValue[]): void => {
  if (!states) return;
  if (states.length === 0) sql.push('1 = 0');
  else (sql.push(`${column} IN ${marks(states.length)}`), params.push(...states));
};

type FederatedOps = Pick<CoordinatorStore, 'listRounds' | 'finishRound' | 'createFederatedRun' | 'getFederatedRun' | 'listFederatedRuns' | 'updateFederatedRun' | 'acquireFederatedLease' | 'releaseFederatedLease'>;

/** Federated runs and the round queries the round driver needs (rounds themselves live in sql-results). */
export function createFederatedOps(db: SqlDriver, clock: Clock): FederatedOps {
  return {
    async listRounds(filter) {
      const sql: string[] = [];
      const params: SqlValue[] = [];
      if (filter.runId !== undefined) (sql.push('run_id = ?'), params.push(filter.runId));
      inStates('state', filter.states, sql, params);
      const rows = await db.query(`SELECT * FROM rounds ${sql.length ? `WHERE ${sql.join(' AND ')}` : ''} ORDER BY created_at, round_number, id`, params);
      return rows.map(toRound);
    },

    async finishRound(id, state, result, from) {
      const params: SqlValue[] = [state, json(result), clock.now(), id];
      const sql: string[] = [];
      inStates('state', from, sql, params);
      const [row] = await db.query(`UPDATE rounds SET state = ?, result = ?, updated_at = ? WHERE id = ? AND ${sql.join(' AND ')} RETURNING *`, params);
      return row ? toRound(row) : null;
    },

    async createFederatedRun(input) {
      const now = clock.now();
      const rows = await db.query(
        `INSERT INTO federated_runs (id, spec, state, round_number, attempt, global_sha256, server_state, created_at, updated_at)
         VALUES (?, ?, 'running', ?, 1, ?, NULL, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING *`,
        [input.id, json(input.spec), input.roundNumber ?? 0, input.globalSha256, now, now],
      );
      if (!rows[0]) throw new EdgektError('EDGEKT_ERR_STORE_CONFLICT', `federated run ${input.id} already exists`, { id: input.id });
      return toRun(rows[0]);
    },

    async getFederatedRun(id) {
      const [row] = await db.query('SELECT * FROM federated_runs WHERE id = ?', [id]);
      return row ? toRun(row) : null;
    },

    async listFederatedRuns(filter) {
      const sql: string[] = [];
      const params: SqlValue[] = [];
      inStates('state', filter.states, sql, params);
      const rows = await db.query(`SELECT * FROM federated_runs ${sql.length ? `WHERE ${sql.join(' AND ')}` : ''} ORDER BY created_at, id`, params);
      return rows.map(toRun);
    },

    async updateFederatedRun(id, patch, from) {
      const set: string[] = ['updated_at = ?'];
      const params: SqlValue[] = [clock.now()];
      if (patch.state !== undefined) (set.push('state = ?'), params.push(patch.state));
      if (patch.roundNumber !== undefined) (set.push('round_number = ?'), params.push(patch.roundNumber));
      if (patch.attempt !== undefined) (set.push('attempt = ?'), params.push(patch.attempt));
      if (patch.globalSha256 !== undefined) (set.push('global_sha256 = ?'), params.push(patch.globalSha256));
      if (patch.serverState !== undefined) (set.push('server_state = ?'), params.push(jsonOrNull(patch.serverState)));
      const where: string[] = ['id = ?'];
      params.push(id);
      inStates('state', from, where, params);
      const [row] = await db.query(`UPDATE federated_runs SET ${set.join(', ')} WHERE ${where.join(' AND ')} RETURNING *`, params);
      return row ? toRun(row) : null;
    },

    async acquireFederatedLease(runId, owner, ttlMs) {
      const now = clock.now();
      const rows = await db.query(
        `INSERT INTO federated_leases (run_id, owner, fence, expires_at) VALUES (?, ?, 1, ?)
         ON CONFLICT (run_id) DO UPDATE SET
           fence = CASE WHEN federated_leases.owner = excluded.owner THEN federated_leases.fence ELSE federated_leases.fence + 1 END,
           owner = excluded.owner, expires_at = excluded.expires_at
         WHERE federated_leases.owner = excluded.owner OR federated_leases.expires_at <= ?
         RETURNING run_id, owner, fence, expires_at`,
        [runId, owner, now + ttlMs, now],
      );
      return rows[0] ? toLease(rows[0]) : null;
    },

    async releaseFederatedLease(lease) {
      // Expire rather than delete, so the fence keeps growing across owners.
      const rows = await db.query('UPDATE federated_leases SET expires_at = 0 WHERE run_id = ? AND owner = ? AND fence = ? RETURNING run_id', [lease.runId, lease.owner, lease.fence]);
      return rows.length === 1;
    },
  };
}
