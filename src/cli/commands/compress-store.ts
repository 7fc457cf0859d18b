import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../../core/errors.js';
import type { CheckpointStore } from '../../compress/pipeline.js';
import { loadModel, saveModel } from '../../model/index.js';

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/**
 * Checkpoints as directories: OUT/checkpoints/<stage>/{model/, meta.json}. meta.json is written
 * last, by rename, so a stage killed half-way has no meta.json and is simply redone.
 */
export function createDirCheckpointStore(root: string): CheckpointStore & { clear(): Promise<void> } {
  return {
    async save(stage: string, model: tf.LayersModel | null, meta: unknown): Promise<void> {
      const dir = path.join(root, stage);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      if (model) await saveModel(model, path.join(dir, 'model'));
      await writeAtomic(path.join(dir, 'meta.json'), JSON.stringify(meta));
    },
    async load(stage: string) {
      const dir = path.join(root, stage);
      const metaFile = path.join(dir, 'meta.json');
      if (!existsSync(metaFile)) return null;
      let meta: unknown;
      try {
        meta = JSON.parse(await readFile(metaFile, 'utf8'));
      } catch (e) {
        throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `${metaFile} is corrupt: ${e instanceof Error ? e.message : String(e)}`);
      }
      const modelDir = path.join(dir, 'model');
      if (!existsSync(path.join(modelDir, 'model.json'))) return { model: null, meta };
      try {
        return { model: (await loadModel(modelDir)).model, meta };
      } catch (e) {
        throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `checkpoint ${stage} holds an unreadable model: ${e instanceof Error ? e.message : String(e)}`, {}, { cause: e });
      }
    },
    async clear(): Promise<void> {
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Identity of a run: a resume must use the same teacher, data, profile and settings. */
export async function runFingerprint(teacherDir: string, settings: unknown): Promise<string> {
  const h = createHash('sha256');
  for (const f of (await readdir(teacherDir)).sort()) {
    if (f.endsWith('.json') || f.endsWith('.bin')) h.update(f).update(await readFile(path.join(teacherDir, f)));
  }
  h.update(JSON.stringify(settings));
  return h.digest('hex');
}

export async function checkRunIdentity(root: string, fingerprint: string, resume: boolean): Promise<void> {
  const file = path.join(root, 'run.json');
  if (resume && existsSync(file)) {
    const prev = JSON.parse(await readFile(file, 'utf8')) as { fingerprint?: string };
    if (prev.fingerprint !== fingerprint) {
      throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `${root} belongs to another run (teacher, data, profile or settings differ); drop --resume to start over`);
    }
    return;
  }
  await mkdir(root, { recursive: true });
  await writeAtomic(file, JSON.stringify({ fingerprint }));
}
