import { afterEach, describe, expect, it } from 'vitest';
import { STORE_MIGRATIONS } from '../src/store/migrations.js';
import { migrate, schemaVersion, type Migration } from '../src/store/sqlite.js';
import { codeOf } from './helpers/errors.js';
import { tempDb, type TempDb } from './helpers/store-db.js';

let t: TempDb | undefined;
afterEach(() => t?.cleanup());

const extra: Migration = {
  version: STORE_MIGRATIONS.length + 1,
  name: 'telemetry',
  up: (db) => void db.exec('CREATE TABLE telemetry (at INTEGER NOT NULL, cpu REAL)'),
};

describe('openDatabase', () => {
  it('sets WAL, synchronous=FULL, foreign keys and a busy timeout, and migrates to the latest schema', () => {
    t = tempDb();
    expect(t.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(t.db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(t.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(t.db.pragma('busy_timeout', { simple: true })).toBe(5000);
    expect(schemaVersion(t.db)).toBe(STORE_MIGRATIONS.length);
    const tables = t.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    expect(tables).toEqual(expect.arrayContaining(['artifact_versions', 'checkpoints', 'jobs', 'outbox', 'transfer_blocks']));
  });

  it('reopening applies nothing twice; an appended migration runs once', () => {
    t = tempDb();
    t.db.close();
    const again = t.reopen({ migrations: [...STORE_MIGRATIONS, extra] });
    expect(schemaVersion(again)).toBe(extra.version);
    again.prepare('INSERT INTO telemetry VALUES (1, 0.5)').run();
    again.close();
    const third = t.reopen({ migrations: [...STORE_MIGRATIONS, extra] });
    expect(third.prepare('SELECT count(*) FROM telemetry').pluck().get()).toBe(1);
  });

  it('refuses a file written by a newer build', () => {
    t = tempDb({ migrations: [...STORE_MIGRATIONS, extra] });
    t.db.close();
    expect(codeOf(() => t!.reopen())).toBe('EDGEKT_ERR_STORE');
  });

  it('refuses migrations with a gap in their numbering', () => {
    t = tempDb();
    expect(codeOf(() => migrate(t!.db, [...STORE_MIGRATIONS, { ...extra, version: extra.version + 1 }]))).toBe('EDGEKT_ERR_STORE');
  });

  it('a migration that throws half-way leaves neither its tables nor its version', () => {
    t = tempDb();
    const broken: Migration = {
      ...extra,
      up(db) {
        db.exec('CREATE TABLE half (x INTEGER)');
        throw new Error('boom');
      },
    };
    expect(() => migrate(t!.db, [...STORE_MIGRATIONS, broken])).toThrow('boom');
    expect(schemaVersion(t.db)).toBe(STORE_MIGRATIONS.length);
    expect(t.db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'half'").pluck().get()).toBe(0);
  });
});
