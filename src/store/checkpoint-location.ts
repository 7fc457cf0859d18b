import { z } from 'zod';
import { EdgektError } from '../core/errors.js';
import type { CheckpointStore } from './checkpoint-store.js';
import { createDirCheckpointStore } from './dir-checkpoint-store.js';
import { createSqliteCheckpointStore } from './sqlite-checkpoint-store.js';
import { openDatabase } from './sqlite.js';

/**
 * Where a job's checkpoints live, as plain data: a worker thread receives this and opens its own
 * store (a store object cannot cross threads). Adding a store adds a member here and a case below.
 */
export const CheckpointLocationSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('dir'), root: z.string().min(1) }),
  /** The agent's job store: one SQLite file, one run per job (the worker opens its own connection). */
  z.strictObject({ kind: z.literal('sqlite'), file: z.string().min(1), runId: z.string().min(1) }),
]);
export type CheckpointLocation = z.infer<typeof CheckpointLocationSchema>;

/** Opens the store a location names. */
export function openCheckpointStore(location: unknown): CheckpointStore {
  const r = CheckpointLocationSchema.safeParse(location);
  if (!r.success) throw new EdgektError('EDGEKT_ERR_USAGE', `bad checkpoint location: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const loc = r.data;
  switch (loc.kind) {
    case 'dir':
      return createDirCheckpointStore(loc.root);
    case 'sqlite':
      return createSqliteCheckpointStore(openDatabase(loc.file), loc.runId);
  }
}
