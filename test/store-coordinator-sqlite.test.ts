import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createSqliteCoordinatorStore } from '../src/store/coordinator/sqlite.js';
import { coordinatorStoreContract, fakeClock, status } from './contracts/coordinator-store.contract.js';

function tempFile(): { file: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-cstore-'));
  return { file: path.join(dir, 'coordinator.db'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

coordinatorStoreContract('sqlite', async (clock) => {
  const { file, remove } = tempFile();
  const store = await createSqliteCoordinatorStore(file, { clock });
  const opened = [store];
  return {
    store,
    async open() {
      const s = await createSqliteCoordinatorStore(file, { clock });
      opened.push(s);
      return s;
    },
    async cleanup() {
      for (const s of opened) await s.close().catch(() => undefined);
      remove();
    },
  };
});

describe('sqlite coordinator store file', () => {
  it('is in WAL mode at user_version 3, and refuses a newer schema', async () => {
    const { file, remove } = tempFile();
    try {
      const store = await createSqliteCoordinatorStore(file);
      await store.upsertDevices([status('a')]);
      await store.close();
      const raw = new Database(file);
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.pragma('user_version', { simple: true })).toBe(3);
      raw.pragma('user_version = 99');
      raw.close();
      await expect(createSqliteCoordinatorStore(file)).rejects.toMatchObject({ code: 'EDGEKT_ERR_STORE_SCHEMA' });
    } finally {
      remove();
    }
  });

  it('parses persisted JSON on the way out: a corrupt row fails with a code, not a cast', async () => {
    const { file, remove } = tempFile();
    try {
      const store = await createSqliteCoordinatorStore(file, { clock: fakeClock() });
      await store.upsertDevices([status('a'), status('b')]);
      const raw = new Database(file);
      raw.prepare("UPDATE devices SET capacity = 'not json' WHERE id = 'a'").run();
      raw.prepare("UPDATE devices SET versions = '{\"agent\": 3}' WHERE id = 'b'").run();
      raw.close();
      await expect(store.getDevice('a')).rejects.toMatchObject({ code: 'EDGEKT_ERR_STORE_DATA' });
      await expect(store.getDevice('b')).rejects.toMatchObject({ code: 'EDGEKT_ERR_STORE_DATA' });
      await store.close();
    } finally {
      remove();
    }
  });
});
