import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EdgektError } from '../core/errors.js';
import type { Checkpoint, CheckpointStore } from './checkpoint-store.js';

const META = 'meta.json';
const MODEL_JSON = 'model.json';
const WEIGHTS = 'weights.bin';
const TMP = '.tmp-';

function checkStage(stage: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(stage)) throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `bad checkpoint stage name "${stage}"`);
}

/**
 * Checkpoints as directories: ROOT/<stage>/{meta.json, model.json, weights.bin}, so a stage's
 * model is also a plain tfjs model directory. A save is written into a temporary directory and
 * renamed into place: a crash mid-save leaves the old checkpoint or none, never half of one.
 */
export function createDirCheckpointStore(root: string): CheckpointStore {
  const dirOf = (stage: string): string => path.join(root, stage);
  return {
    async save(stage: string, c: Checkpoint): Promise<void> {
      checkStage(stage);
      await mkdir(root, { recursive: true });
      const tmp = path.join(root, `${TMP}${stage}-${process.pid}`);
      await rm(tmp, { recursive: true, force: true });
      await mkdir(tmp);
      if (c.model) {
        await writeFile(path.join(tmp, WEIGHTS), c.model.weights);
        await writeFile(path.join(tmp, MODEL_JSON), c.model.modelJson);
      }
      await writeFile(path.join(tmp, META), JSON.stringify(c.meta));
      await rm(dirOf(stage), { recursive: true, force: true });
      await rename(tmp, dirOf(stage));
    },
    async load(stage: string): Promise<Checkpoint | null> {
      checkStage(stage);
      const dir = dirOf(stage);
      const metaFile = path.join(dir, META);
      if (!existsSync(metaFile)) return null;
      try {
        const meta: unknown = JSON.parse(await readFile(metaFile, 'utf8'));
        if (!existsSync(path.join(dir, MODEL_JSON))) return { meta, model: null };
        const modelJson = await readFile(path.join(dir, MODEL_JSON), 'utf8');
        const weights = new Uint8Array(await readFile(path.join(dir, WEIGHTS)));
        return { meta, model: { modelJson, weights } };
      } catch (e) {
        throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `checkpoint ${stage} in ${root} is unreadable: ${e instanceof Error ? e.message : String(e)}`, {}, { cause: e });
      }
    },
    async remove(stage: string): Promise<void> {
      checkStage(stage);
      await rm(dirOf(stage), { recursive: true, force: true });
    },
    async list(): Promise<string[]> {
      if (!existsSync(root)) return [];
      const names = await readdir(root, { withFileTypes: true });
      return names
        .filter((d) => d.isDirectory() && !d.name.startsWith(TMP) && existsSync(path.join(root, d.name, META)))
        .map((d) => d.name)
        .sort();
    },
    async clear(): Promise<void> {
      await rm(root, { recursive: true, force: true });
    },
  };
}
