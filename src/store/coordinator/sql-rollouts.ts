import { z } from 'zod';
import type { Clock } from '../../core/clock.js';
import { EdgektError } from '../../core/errors.js';
import { jobErrorSchema, parsedJson, rolloutSpecSchema, rolloutStateSchema, type RolloutState } from './schemas.js';
import { checkLimit, chunks, decodeCursor, int, intCol, intOrNull, json, jsonOrNull, jsonText, marks, parseColumn, parseRow, strCol, toPage, type SqlDriver, type SqlRow, type SqlValue } from './sql-driver.js';
import type { CoordinatorStore, Execution, Rollout, RolloutLease } from './types.js';

const rolloutRow = z.object({
  id: z.string(), spec: jsonText(rolloutSpecSchema), state: rolloutStateSchema,
  created_at: int, updated_at: int, started_at: intOrNull, finished_at: intOrNull,
});

const leaseRow = z.object({ rollout_id: z.string(), owner: z.string(), fence: int, expires_at: int });

const progressColumn = jsonText(parsedJson).nullable();
const errorColumn = jsonText(jobErrorSchema).nullable();

const stateCountRow = z.object({ state: z.string(), n: int });
const TERMINAL: readonly RolloutState[] = ['aborted', 'completed', 'canceled'];
const EXEC_COLUMNS = 'rollout_id, device_id, job_id, state, seq, attempts, progress, dispatched_at, updated_at, error';

function toRollout(row: SqlRow | undefined): Rollout {
  const r = parseRow(rolloutRow, row, 'rollouts');
  return { id: r.id, spec: r.spec, state: r.state, createdAt: r.created_at, updatedAt: r.updated_at, startedAt: r.started_at, finishedAt: r.finished_at };
}

function toLease(row: SqlRow | undefined): RolloutLease {
  const r = parseRow(leaseRow, row, 'rollout_leases');
  return { rolloutId: r.rollout_id, owner: r.owner, fence: r.fence, expiresAt: r.expires_at };
}

/** Scalar columns checked by hand (this runs for every execution a tick reads), JSON columns by zod. */
export function toExecution(row: SqlRow | undefined): Execution {
  if (!row) throw new EdgektError('EDGEKT_ERR_STORE_DATA', 'a executions row failed validation: no row', { table: 'executions' });
  const t = 'executions';
  return {
    rolloutId: strCol(row, 'rollout_id', t), deviceId: strCol(row, 'device_id', t), jobId: strCol(row, 'job_id', t), state: strCol(row, 'state', t),
    seq: intCol(row, 'seq', t), attempts: intCol(row, 'attempts', t),
    progress: parseColumn(progressColumn, row, 'progress', t),
    dispatchedAt: intCol(row, 'dispatched_at', t), updatedAt: intCol(row, 'updated_at', t),
    error: parseColumn(errorColumn, row, 'error', t),
  };
}

type RolloutOps = Pick<
  CoordinatorStore,
  | 'createRollout' | 'getRollout' | 'listRollouts' | 'setRolloutState'
  | 'acquireRolloutLease' | 'releaseRolloutLease' | 'getRolloutLease'
  | 'dispatchExecutions' | 'retryExecution' | 'getExecution' | 'listExecutions' | 'countExecutions' | 'applyJobUpdate'
>;

export function createRolloutOps(db: SqlDriver, clock: Clock): RolloutOps {
  /** Inside tx: the lease must still be this owner's, with this fence, and unexpired. PostgreSQL holds a share lock until commit, so a takeover waits. */
  async function checkLease(tx: SqlDriver, lease: RolloutLease): Promise<void> {
    const lock = tx.dialect === 'postgres' ? ' FOR SHARE' : '';
    const rows = await tx.query(
      `SELECT fence FROM rollout_leases WHERE rollout_id = ? AND owner = ? AND fence = ? AND expires_at > ?${lock}`,
      [lease.rolloutId, lease.owner, lease.fence, clock.now()],
    );
    if (rows.length === 0) {
      throw new EdgektError('EDGEKT_ERR_LEASE_LOST', `lease on rollout ${lease.rolloutId} is no longer held by ${lease.owner}`, {
        rolloutId: lease.rolloutId, owner: lease.owner, fence: lease.fence,
      });
    }
  }

  const ops: RolloutOps = {
    async createRollout({ id, spec, state = 'scheduled' }) {
      const parsed = rolloutSpecSchema.safeParse(spec);
      if (!parsed.success) throw new EdgektError('EDGEKT_ERR_ROLLOUT_SPEC', `rollout ${id}: ${parsed.error.message}`, { id });
      const now = clock.now();
      const rows = await db.query(
        `INSERT INTO rollouts (id, spec, state, created_at, updated_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, NULL)
         ON CONFLICT (id) DO NOTHING RETURNING *`,
        [id, json(parsed.data), state, now, now, state === 'running' ? now : null],
      );
      if (rows.length === 0) throw new EdgektError('EDGEKT_ERR_STORE_CONFLICT', `rollout ${id} already exists`, { id });
      return toRollout(rows[0]);
    },

    async getRollout(id) {
      const [row] = await db.query('SELECT * FROM rollouts WHERE id = ?', [id]);
      return row ? toRollout(row) : null;
    },

    async listRollouts({ states }) {
      if (states && states.length === 0) return [];
      const rows = states
        ? await db.query(`SELECT * FROM rollouts WHERE state IN ${marks(states.length)} ORDER BY created_at, id`, [...states])
        : await db.query('SELECT * FROM rollouts ORDER BY created_at, id');
      return rows.map(toRollout);
    },

    async setRolloutState(id, to, from) {
      const now = clock.now();
      const guard = from ? ` AND state IN ${marks(from.length)}` : '';
      if (from && from.length === 0) return null;
      const rows = await db.query(
        `UPDATE rollouts SET state = ?, updated_at = ?, started_at = COALESCE(started_at, ?), finished_at = COALESCE(?, finished_at)
         WHERE id = ?${guard} RETURNING *`,
        [to, now, to === 'running' ? now : null, TERMINAL.includes(to) ? now : null, id, ...(from ?? [])],
      );
      return rows[0] ? toRollout(rows[0]) : null;
    },

    async acquireRolloutLease(rolloutId, owner, ttlMs) {
      const now = clock.now();
      const rows = await db.query(
        `INSERT INTO rollout_leases (rollout_id, owner, fence, expires_at) VALUES (?, ?, 1, ?)
         ON CONFLICT (rollout_id) DO UPDATE SET
           fence = CASE WHEN rollout_leases.owner = excluded.owner THEN rollout_leases.fence ELSE rollout_leases.fence + 1 END,
           owner = excluded.owner, expires_at = excluded.expires_at
         WHERE rollout_leases.owner = excluded.owner OR rollout_leases.expires_at <= ?
         RETURNING rollout_id, owner, fence, expires_at`,
        [rolloutId, owner, now + ttlMs, now],
      );
      return rows[0] ? toLease(rows[0]) : null;
    },

    async releaseRolloutLease(lease) {
      const rows = await db.query(
        'UPDATE rollout_leases SET expires_at = ? WHERE rollout_id = ? AND owner = ? AND fence = ? RETURNING rollout_id',
        [0, lease.rolloutId, lease.owner, lease.fence],
      );
      return rows.length === 1;
    },

    async getRolloutLease(rolloutId) {
      const [row] = await db.query('SELECT rollout_id, owner, fence, expires_at FROM rollout_leases WHERE rollout_id = ?', [rolloutId]);
      return row ? toLease(row) : null;
    },

    async dispatchExecutions(lease, jobs) {
      return db.transaction(async (tx) => {
        await checkLease(tx, lease);
        const now = clock.now();
        const created: Execution[] = [];
        for (const part of chunks(jobs, 300)) {
          const params = part.flatMap((j): SqlValue[] => [lease.rolloutId, j.deviceId, j.jobId, now, now]);
          const rows = await tx.query(
            `INSERT INTO executions (rollout_id, device_id, job_id, state, seq, attempts, dispatched_at, updated_at)
             VALUES ${part.map(() => "(?, ?, ?, 'dispatched', 0, 1, ?, ?)").join(', ')}
             ON CONFLICT DO NOTHING RETURNING ${EXEC_COLUMNS}`,
            params,
          );
          created.push(...rows.map(toExecution));
        }
        return created.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
      });
    },

    async retryExecution(lease, deviceId, newJobId) {
      return db.transaction(async (tx) => {
        await checkLease(tx, lease);
        const now = clock.now();
        const rows = await tx.query(
          `UPDATE executions SET job_id = ?, state = 'dispatched', seq = 0, attempts = attempts + 1, progress = NULL, error = NULL,
             dispatched_at = ?, updated_at = ?
           WHERE rollout_id = ? AND device_id = ? RETURNING ${EXEC_COLUMNS}`,
          [newJobId, now, now, lease.rolloutId, deviceId],
        );
        return rows[0] ? toExecution(rows[0]) : null;
      });
    },

    async getExecution(jobId) {
      const [row] = await db.query(`SELECT ${EXEC_COLUMNS} FROM executions WHERE job_id = ?`, [jobId]);
      return row ? toExecution(row) : null;
    },

    async listExecutions(rolloutId, { states }, page) {
      const limit = checkLimit(page.limit);
      if (states && states.length === 0) return { items: [], nextCursor: null };
      const sql = ['rollout_id = ?'];
      const params: SqlValue[] = [rolloutId];
      if (states) (sql.push(`state IN ${marks(states.length)}`), params.push(...states));
      const after = decodeCursor(page.cursor);
      if (after !== null) (sql.push('device_id > ?'), params.push(after));
      const rows = await db.query(`SELECT ${EXEC_COLUMNS} FROM executions WHERE ${sql.join(' AND ')} ORDER BY device_id LIMIT ?`, [...params, limit + 1]);
      return toPage(rows.map(toExecution), limit, (e) => e.deviceId);
    },

    async countExecutions(rolloutId) {
      const rows = await db.query('SELECT state, COUNT(*) AS n FROM executions WHERE rollout_id = ? GROUP BY state', [rolloutId]);
      const out: Record<string, number> = {};
      for (const row of rows) {
        const r = parseRow(stateCountRow, row, 'executions');
        out[r.state] = r.n;
      }
      return out;
    },

    async applyJobUpdate(u) {
      const rows = await db.query(
        `UPDATE executions SET seq = ?, state = ?, progress = COALESCE(?, progress), error = COALESCE(?, error), updated_at = ?
         WHERE job_id = ? AND seq < ? RETURNING ${EXEC_COLUMNS}`,
        [u.seq, u.state, jsonOrNull(u.progress), jsonOrNull(u.error), u.at, u.jobId, u.seq],
      );
      if (rows[0]) return { applied: true, execution: toExecution(rows[0]) };
      return { applied: false, execution: await ops.getExecution(u.jobId) };
    },
  };
  return ops;
}
