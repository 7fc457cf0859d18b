import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDirCheckpointStore } from '../src/store/dir-checkpoint-store.js';
import { checkpointStoreContract } from './contracts/checkpoint-store.contract.js';
import { tmpDir } from './helpers/data-fixtures.js';

checkpointStoreContract('directories', async () => {
  const root = path.join(tmpDir('edgekt-ckpt-'), 'checkpoints');
  return {
    store: createDirCheckpointStore(root),
    reopen: async () => createDirCheckpointStore(root),
    cleanup: () => rm(path.dirname(root), { recursive: true, force: true }),
  };
});

describe('directory checkpoint store', () => {
  it('ignores a half-written save and a stage without meta.json; a corrupt meta is EDGEKT_ERR_CHECKPOINT', async () => {
    const root = tmpDir('edgekt-ckpt-');
    const store = createDirCheckpointStore(root);
    await store.save('lighten', { meta: { a: 1 }, model: { modelJson: '{}', weights: new Uint8Array([1, 2]) } });
    // What a crash mid-save leaves: a temporary directory, and a stage directory without meta.json.
    mkdirSync(path.join(root, '.tmp-distill-1'));
    writeFileSync(path.join(root, '.tmp-distill-1', 'meta.json'), '{}');
    mkdirSync(path.join(root, 'prune-000'));
    expect(await store.list()).toEqual(['lighten']);
    expect(await store.load('prune-000')).toBeNull();
    expect(existsSync(path.join(root, 'lighten', 'model.json'))).toBe(true);
    writeFileSync(path.join(root, 'lighten', 'meta.json'), '{not json');
    await expect(store.load('lighten')).rejects.toMatchObject({ code: 'EDGEKT_ERR_CHECKPOINT' });
    await expect(store.save('../escape', { meta: 1, model: null })).rejects.toMatchObject({ code: 'EDGEKT_ERR_CHECKPOINT' });
  });
});
