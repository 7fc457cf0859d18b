import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createSqliteCoordinatorStore } from '../src/store/coordinator/sqlite.js';
import { coordinatorStoreContract, fakeClock, SHA, status } from './contracts/coordinator-store.contract.js';

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
  it('checks execution rows column by column: a bad scalar or JSON column fails with a code', async () => {
    const { file, remove } = tempFile();
    try {
      const store = await createSqliteCoordinatorStore(file, { clock: fakeClock() });
      const raw = new Database(file);
      raw.pragma('foreign_keys = OFF'); // rows written by hand, as corruption would be
      const ins = raw.prepare("INSERT INTO executions (rollout_id, device_id, job_id, state, seq, attempts, progress, dispatched_at, updated_at, error) VALUES ('r', ?, ?, 'running', 1, ?, NULL, 5, 6, ?)");
      ins.run('a', 'j-a', 2, null);
      ins.run('b', 'j-b', 'two', null);
      ins.run('c', 'j-c', 1.5, null);
      ins.run('d', 'j-d', 1, 'not json');
      raw.close();
      expect(await store.getExecution('j-a')).toEqual({ rolloutId: 'r', deviceId: 'a', jobId: 'j-a', state: 'running', seq: 1, attempts: 2, progress: null, dispatchedAt: 5, updatedAt: 6, error: null });
      for (const j of ['j-b', 'j-c', 'j-d']) await expect(store.getExecution(j)).rejects.toMatchObject({ code: 'EDGEKT_ERR_STORE_DATA' });
      await store.close();
    } finally {
      remove();
    }
  });
});

describe('sqlite coordinator store: single statements batched into one transaction', () => {
  it('keeps each statement its own outcome (one conflict rejects alone), commits the rest, and keeps call order around transactions', async () => {
    const { file, remove } = tempFile();
    try {
      const store = await createSqliteCoordinatorStore(file, { clock: fakeClock() });
      await store.upsertDevices([status('d1'), status('d2')]);
      const art = (n: number, version: number) => ({ sha256: SHA(n), kind: 'student', name: 'batch', version, size: 1, location: `l${n}`, manifest: {} });
      // Issued in one turn: they queue up behind each other and run as one batch.
      const outcomes = await Promise.allSettled([
        store.putArtifact(art(1, 1)),
        store.putArtifact(art(2, 1)), // same name + version as the first: a unique violation
        store.putArtifact(art(3, 2)),
        store.recordTelemetry('d1', { cpuLoadPercent: 1 }, 10),
        store.markOffline('d2', Date.now() + 1),
      ]);
      expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
      expect((outcomes[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'EDGEKT_ERR_STORE_CONFLICT' });
      expect(outcomes.slice(3).map((o) => (o as PromiseFulfilledResult<unknown>).value)).toEqual([true, true]);
      // A statement issued after a transaction sees what the transaction wrote.
      const [, afterUpsert] = await Promise.all([store.upsertDevices([status('d3')]), store.getDevice('d3')]);
      expect(afterUpsert?.id).toBe('d3');
      await store.close();
      const raw = new Database(file, { readonly: true });
      expect(raw.prepare('SELECT sha256 FROM artifacts ORDER BY sha256').all()).toEqual([{ sha256: SHA(1) }, { sha256: SHA(3) }]);
      expect(raw.prepare('SELECT online, telemetry_at FROM devices WHERE id IN (?, ?) ORDER BY id').all('d1', 'd2')).toEqual([{ online: 1, telemetry_at: 10 }, { online: 0, telemetry_at: null }]);
      raw.close();
    } finally {
      remove();
    }
  });
});
