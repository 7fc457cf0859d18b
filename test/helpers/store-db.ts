import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Clock } from '../../src/core/clock.js';
import { openDatabase, type Db, type OpenDatabaseOptions } from '../../src/store/sqlite.js';

/** A real SQLite file in a fresh temp dir; `reopen` is a new connection to the same file. */
export interface TempDb {
  dir: string;
  file: string;
  db: Db;
  reopen(options?: OpenDatabaseOptions): Db;
  cleanup(): void;
}

export function tempDb(options?: OpenDatabaseOptions): TempDb {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgekt-store-'));
  const file = path.join(dir, 'agent.db');
  const opened: Db[] = [];
  const open = (o?: OpenDatabaseOptions): Db => {
    const db = openDatabase(file, o);
    opened.push(db);
    return db;
  };
  return {
    dir,
    file,
    db: open(options),
    reopen: open,
    cleanup() {
      for (const db of opened) if (db.open) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A clock that moves only when told to. */
export function manualClock(start = 1_700_000_000_000): Clock & { advance(ms: number): void } {
  let t = start;
  return { now: () => t, hrMs: () => t, advance: (ms) => void (t += ms) };
}
