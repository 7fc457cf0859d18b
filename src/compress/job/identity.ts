import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { EdgektError } from '../../core/errors.js';
import type { CheckpointStore } from '../../store/checkpoint-store.js';

/** The checkpoint stage holding the run's identity (a stage, so every store keeps it). */
export const RUN_STAGE = 'run';

const RunMetaSchema = z.strictObject({ fingerprint: z.string().regex(/^[0-9a-f]{64}$/) });

/**
 * Identity of a run: the teacher's files, every setting, the resolved profile and the backend. A
 * resume on another backend would mix measurements taken on two runtimes, so it counts as another run.
 */
export async function runFingerprint(teacherDir: string, parts: { settings: unknown; profile: unknown; backend: string }): Promise<string> {
  const h = createHash('sha256');
  let files: string[];
  try {
    files = (await readdir(teacherDir)).sort();
  } catch {
    throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', `teacher directory ${teacherDir} is not readable`, { dir: teacherDir });
  }
  for (const f of files) {
    if (f.endsWith('.json') || f.endsWith('.bin')) h.update(f).update(await readFile(path.join(teacherDir, f)));
  }
  h.update(JSON.stringify(parts));
  return h.digest('hex');
}

/**
 * A fresh run clears the store and records its fingerprint; a resume must find the same one
 * (EDGEKT_ERR_CHECKPOINT otherwise, also for an unreadable record).
 */
export async function checkRunIdentity(store: CheckpointStore, fingerprint: string, resume: boolean): Promise<void> {
  if (resume) {
    const prev = await store.load(RUN_STAGE);
    if (prev) {
      const parsed = RunMetaSchema.safeParse(prev.meta);
      if (!parsed.success) throw new EdgektError('EDGEKT_ERR_CHECKPOINT', 'the run identity checkpoint is corrupt; start over without resume');
      if (parsed.data.fingerprint !== fingerprint) {
        throw new EdgektError('EDGEKT_ERR_CHECKPOINT', 'the checkpoints belong to another run (teacher, data, profile, settings or backend differ); start over without resume');
      }
      return;
    }
  } else {
    await store.clear();
  }
  await store.save(RUN_STAGE, { meta: { fingerprint } satisfies z.infer<typeof RunMetaSchema>, model: null });
}
