import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import { EdgektError } from '../core/errors.js';
import type { Db } from './sqlite.js';

export interface VersionStore {
  /** The last accepted manifest version of an artifact name, or null if none was ever accepted. */
  lastAccepted(name: string): number | null;
  /**
   * Records `version` as accepted for `name`; throws EDGEKT_ERR_MANIFEST_VERSION unless it is strictly
   * newer. Strict, because a duplicate delivery of the same job is caught earlier (JobStore.receive is
   * idempotent by jobId): an equal version under a new jobId is a replay. Call it in the same
   * `db.transaction` as `JobStore.receive` so acceptance and the job row commit together.
   */
  accept(name: string, version: number, jobId?: string): void;
}

const RowSchema = z.object({ version: z.number().int() });

/** Anti-rollback memory (TUF's monotonic version rule): survives restarts because it lives in the store. */
export function createVersionStore(db: Db, options: { clock: Clock }): VersionStore {
  const select = db.prepare('SELECT version FROM artifact_versions WHERE name = ?');
  const upsert = db.prepare(
    `INSERT INTO artifact_versions (name, version, job_id, accepted_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (name) DO UPDATE SET version = excluded.version, job_id = excluded.job_id, accepted_at = excluded.accepted_at`,
  );
  const last = (name: string): number | null => {
    const raw = select.get(name);
    return raw === undefined ? null : RowSchema.parse(raw).version;
  };
  const accept = db.transaction((name: string, version: number, jobId: string | null) => {
    const prev = last(name);
    if (!Number.isSafeInteger(version) || (prev !== null && version <= prev)) {
      throw new EdgektError('EDGEKT_ERR_MANIFEST_VERSION', `${name}: version ${version} is not newer than ${prev ?? 'none'}`, {
        name,
        version,
        lastAccepted: prev,
      });
    }
    upsert.run(name, version, jobId, options.clock.now());
  });
  return {
    lastAccepted: last,
    accept: (name, version, jobId) => accept.immediate(name, version, jobId ?? null),
  };
}
