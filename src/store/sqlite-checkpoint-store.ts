import { z } from 'zod';
import { EdgektError } from '../core/errors.js';
import type { Checkpoint, CheckpointStore } from './checkpoint-store.js';
import type { Db } from './sqlite.js';

const RowSchema = z.object({
  meta: z.string(),
  model_json: z.string().nullable(),
  weights: z.instanceof(Uint8Array).nullable(),
});

/**
 * The agent's checkpoints: one row per (run, stage) with the model bytes inline. A save is one
 * INSERT … ON CONFLICT DO UPDATE in one transaction, so a crash leaves the old checkpoint or the new
 * one, and a job's stages live in the same file (and the same backups) as the job itself.
 */
export function createSqliteCheckpointStore(db: Db, runId: string): CheckpointStore {
  const upsert = db.prepare(
    `INSERT INTO checkpoints (run_id, stage, meta, model_json, weights) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (run_id, stage) DO UPDATE SET meta = excluded.meta, model_json = excluded.model_json, weights = excluded.weights`,
  );
  const select = db.prepare('SELECT meta, model_json, weights FROM checkpoints WHERE run_id = ? AND stage = ?');
  const del = db.prepare('DELETE FROM checkpoints WHERE run_id = ? AND stage = ?');
  const names = db.prepare('SELECT stage FROM checkpoints WHERE run_id = ? ORDER BY stage').pluck();
  const clear = db.prepare('DELETE FROM checkpoints WHERE run_id = ?');
  const save = db.transaction((stage: string, cp: Checkpoint) => {
    const meta = JSON.stringify(cp.meta);
    if (meta === undefined) throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `checkpoint ${stage}: meta is not JSON-serialisable`, { runId, stage });
    const weights = cp.model ? Buffer.from(cp.model.weights.buffer, cp.model.weights.byteOffset, cp.model.weights.byteLength) : null;
    upsert.run(runId, stage, meta, cp.model?.modelJson ?? null, weights);
  });

  return {
    async load(stage) {
      const raw = select.get(runId, stage);
      if (raw === undefined) return null;
      const r = RowSchema.safeParse(raw);
      if (!r.success) throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `checkpoint ${stage} of ${runId} fails its schema`, { runId, stage });
      let meta: unknown;
      try {
        meta = JSON.parse(r.data.meta) as unknown;
      } catch {
        throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `checkpoint ${stage} of ${runId}: meta is not JSON`, { runId, stage });
      }
      const { model_json: modelJson, weights } = r.data;
      const model = modelJson !== null && weights !== null ? { modelJson, weights: new Uint8Array(weights) } : null;
      return { meta, model };
    },
    async save(stage, checkpoint) {
      save.immediate(stage, checkpoint);
    },
    async remove(stage) {
      del.run(runId, stage);
    },
    async list() {
      return z.array(z.string()).parse(names.all(runId));
    },
    async clear() {
      clear.run(runId);
    },
  };
}
