import { z } from 'zod';
import type { Clock } from '../../core/clock.js';
import { EdgektError } from '../../core/errors.js';
import { parsedJsonObject } from './schemas.js';
import { checkLimit, decodeCursor, int, intOrNull, json, jsonText, parseRow, toPage, type SqlDriver, type SqlRow, type SqlValue } from './sql-driver.js';
import type { Artifact, CoordinatorStore, Result, Round, RoundUpdate } from './types.js';

const artifactRow = z.object({
  sha256: z.string(), kind: z.string(), name: z.string(), version: int, size: int, location: z.string(),
  manifest: jsonText(parsedJsonObject), created_at: int,
});

const resultRow = z.object({
  n: int, job_id: z.string(), device_id: z.string(), rollout_id: z.string().nullable(), report: jsonText(parsedJsonObject),
  student_sha256: z.string(), student_manifest: jsonText(parsedJsonObject), recorded_at: int,
});

const roundRow = z.object({
  id: z.string(), run_id: z.string().nullable(), round_number: int, config: jsonText(parsedJsonObject), state: z.string(), deadline: intOrNull,
  result: jsonText(parsedJsonObject).nullable(), created_at: int, updated_at: int,
});

const roundUpdateRow = z.object({
  round_id: z.string(), device_id: z.string(), metadata: jsonText(parsedJsonObject), payload_location: z.string(), received_at: int,
});

const versionRow = z.object({ v: int });

function toArtifact(row: SqlRow | undefined): Artifact {
  const r = parseRow(artifactRow, row, 'artifacts');
  return { sha256: r.sha256, kind: r.kind, name: r.name, version: r.version, size: r.size, location: r.location, manifest: r.manifest, createdAt: r.created_at };
}

function toResult(row: SqlRow | undefined): Result & { n: number } {
  const r = parseRow(resultRow, row, 'results');
  return {
    n: r.n, jobId: r.job_id, deviceId: r.device_id, rolloutId: r.rollout_id, report: r.report,
    studentSha256: r.student_sha256, studentManifest: r.student_manifest, recordedAt: r.recorded_at,
  };
}

export function toRound(row: SqlRow | undefined): Round {
  const r = parseRow(roundRow, row, 'rounds');
  return { id: r.id, runId: r.run_id, roundNumber: r.round_number, config: r.config, state: r.state, deadline: r.deadline, result: r.result, createdAt: r.created_at, updatedAt: r.updated_at };
}

function toRoundUpdate(row: SqlRow | undefined): RoundUpdate {
  const r = parseRow(roundUpdateRow, row, 'round_updates');
  return { roundId: r.round_id, deviceId: r.device_id, metadata: r.metadata, payloadLocation: r.payload_location, receivedAt: r.received_at };
}

type ResultOps = Pick<
  CoordinatorStore,
  | 'putArtifact' | 'getArtifact' | 'listArtifacts' | 'nextArtifactVersion'
  | 'recordResult' | 'getResult' | 'listResults'
  | 'createRound' | 'getRound' | 'setRoundState' | 'addRoundUpdate' | 'listRoundUpdates'
>;

export function createResultOps(db: SqlDriver, clock: Clock): ResultOps {
  const ops: ResultOps = {
    async putArtifact(a) {
      let rows: SqlRow[];
      try {
        rows = await db.query(
          `INSERT INTO artifacts (sha256, kind, name, version, size, location, manifest, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (sha256) DO NOTHING RETURNING *`,
          [a.sha256, a.kind, a.name, a.version, a.size, a.location, json(a.manifest), clock.now()],
        );
      } catch (e) {
        if (!db.isUniqueViolation(e)) throw e;
        throw new EdgektError('EDGEKT_ERR_STORE_CONFLICT', `artifact ${a.name} version ${a.version} already exists`, { name: a.name, version: a.version });
      }
      if (rows[0]) return { inserted: true, artifact: toArtifact(rows[0]) };
      return { inserted: false, artifact: (await ops.getArtifact(a.sha256))! };
    },

    async getArtifact(sha256) {
      const [row] = await db.query('SELECT * FROM artifacts WHERE sha256 = ?', [sha256]);
      return row ? toArtifact(row) : null;
    },

    async listArtifacts({ name, kind }) {
      const sql: string[] = [];
      const params: SqlValue[] = [];
      if (name !== undefined) (sql.push('name = ?'), params.push(name));
      if (kind !== undefined) (sql.push('kind = ?'), params.push(kind));
      const rows = await db.query(`SELECT * FROM artifacts ${sql.length ? `WHERE ${sql.join(' AND ')}` : ''} ORDER BY name, version`, params);
      return rows.map(toArtifact);
    },

    async nextArtifactVersion(name) {
      const [row] = await db.query('SELECT COALESCE(MAX(version), 0) + 1 AS v FROM artifacts WHERE name = ?', [name]);
      return parseRow(versionRow, row, 'artifacts').v;
    },

    async recordResult(r) {
      const rows = await db.query(
        `INSERT INTO results (job_id, device_id, rollout_id, report, student_sha256, student_manifest, recorded_at)
         VALUES (?, ?, (SELECT rollout_id FROM executions WHERE job_id = ?), ?, ?, ?, ?)
         ON CONFLICT (job_id) DO NOTHING RETURNING job_id`,
        [r.jobId, r.deviceId, r.jobId, json(r.report), r.studentSha256, json(r.studentManifest), clock.now()],
      );
      return { inserted: rows.length === 1 };
    },

    async getResult(jobId) {
      const [row] = await db.query('SELECT * FROM results WHERE job_id = ?', [jobId]);
      if (!row) return null;
      const { n: _n, ...result } = toResult(row);
      return result;
    },

    async listResults(filter, page) {
      const limit = checkLimit(page.limit);
      const sql: string[] = [];
      const params: SqlValue[] = [];
      if (filter.rolloutId !== undefined) (sql.push('rollout_id = ?'), params.push(filter.rolloutId));
      if (filter.deviceId !== undefined) (sql.push('device_id = ?'), params.push(filter.deviceId));
      const after = decodeCursor(page.cursor);
      if (after !== null) (sql.push('n > ?'), params.push(Number(after)));
      const rows = await db.query(`SELECT * FROM results ${sql.length ? `WHERE ${sql.join(' AND ')}` : ''} ORDER BY n LIMIT ?`, [...params, limit + 1]);
      const { items, nextCursor } = toPage(rows.map(toResult), limit, (r) => r.n);
      return { items: items.map(({ n: _n, ...rest }) => rest), nextCursor };
    },

    async createRound(input) {
      const now = clock.now();
      const rows = await db.query(
        `INSERT INTO rounds (id, run_id, round_number, config, state, deadline, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO NOTHING RETURNING *`,
        [input.id, input.runId ?? null, input.roundNumber, json(input.config), input.state, input.deadline, now, now],
      );
      if (!rows[0]) throw new EdgektError('EDGEKT_ERR_STORE_CONFLICT', `round ${input.id} already exists`, { id: input.id });
      return toRound(rows[0]);
    },

    async getRound(id) {
      const [row] = await db.query('SELECT * FROM rounds WHERE id = ?', [id]);
      return row ? toRound(row) : null;
    },

    async setRoundState(id, state) {
      const [row] = await db.query('UPDATE rounds SET state = ?, updated_at = ? WHERE id = ? RETURNING *', [state, clock.now(), id]);
      return row ? toRound(row) : null;
    },

    async addRoundUpdate(u) {
      const rows = await db.query(
        `INSERT INTO round_updates (round_id, device_id, metadata, payload_location, received_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (round_id, device_id) DO NOTHING RETURNING round_id`,
        [u.roundId, u.deviceId, json(u.metadata), u.payloadLocation, clock.now()],
      );
      return { inserted: rows.length === 1 };
    },

    async listRoundUpdates(roundId) {
      const rows = await db.query('SELECT * FROM round_updates WHERE round_id = ? ORDER BY device_id', [roundId]);
      return rows.map(toRoundUpdate);
    },
  };
  return ops;
}
