import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteCheckpointStore } from '../src/store/sqlite-checkpoint-store.js';
import { checkpointStoreContract } from './contracts/checkpoint-store.contract.js';
import { tempDb, type TempDb } from './helpers/store-db.js';

checkpointStoreContract('sqlite', async () => {
  const t = tempDb();
  return {
    store: createSqliteCheckpointStore(t.db, 'run-1'),
    reopen: async () => createSqliteCheckpointStore(t.reopen(), 'run-1'),
    cleanup: async () => t.cleanup(),
  };
});

describe('createSqliteCheckpointStore', () => {
  let t: TempDb | undefined;
  afterEach(() => t?.cleanup());

  it('keeps runs apart: clear of one run leaves the other', async () => {
    t = tempDb();
    const a = createSqliteCheckpointStore(t.db, 'job-a');
    const b = createSqliteCheckpointStore(t.db, 'job-b');
    await a.save('distill', { meta: 1, model: null });
    await b.save('distill', { meta: 2, model: null });
    await a.clear();
    expect(await a.list()).toEqual([]);
    expect((await b.load('distill'))?.meta).toBe(2);
  });

  it('a save that fails leaves the previous checkpoint whole', async () => {
    t = tempDb();
    const store = createSqliteCheckpointStore(t.db, 'r');
    await store.save('prune-000', { meta: { i: 0 }, model: { modelJson: '{"a":1}', weights: new Uint8Array(300_000).fill(7) } });
    await expect(store.save('prune-000', { meta: undefined, model: { modelJson: '{}', weights: new Uint8Array(1) } })).rejects.toMatchObject({
      code: 'EDGEKT_ERR_CHECKPOINT',
    });
    const got = await store.load('prune-000');
    expect(got?.meta).toEqual({ i: 0 });
    expect(got?.model?.weights.byteLength).toBe(300_000);
    expect(got?.model?.modelJson).toBe('{"a":1}');
  });
});
