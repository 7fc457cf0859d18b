/**
 * Ledger layout measurement: BLOB bitmap rewritten in place (what block-ledger.ts does) versus one row
 * per block, for a 5 MB / 64 KB transfer (80 blocks) and a 100 MB / 256 KB one (400 blocks), under
 * synchronous=FULL and NORMAL. Run: node --import tsx scripts/bench-block-ledger.ts
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBlockLedger } from '../src/store/block-ledger.js';
import { openDatabase, type Db } from '../src/store/sqlite.js';

function rowsLedger(db: Db, key: string) {
  db.exec('CREATE TABLE IF NOT EXISTS transfer_block_rows (transfer_key TEXT, idx INTEGER, PRIMARY KEY (transfer_key, idx)) WITHOUT ROWID');
  const ins = db.prepare('INSERT OR IGNORE INTO transfer_block_rows VALUES (?, ?)');
  const sel = db.prepare('SELECT idx FROM transfer_block_rows WHERE transfer_key = ? ORDER BY idx').pluck();
  return { mark: (i: number) => void ins.run(key, i), received: () => sel.all(key) as number[] };
}

function bytesOnDisk(db: Db, file: string): number {
  db.pragma('wal_checkpoint(TRUNCATE)');
  return statSync(file).size;
}

const dir = mkdtempSync(path.join(tmpdir(), 'edgekt-ledger-bench-'));
try {
  for (const sync of ['FULL', 'NORMAL']) {
    for (const [label, blocks] of [['5MB/64KB', 80], ['100MB/256KB', 400]] as const) {
      for (const layout of ['bitmap', 'rows'] as const) {
        const file = path.join(dir, `${layout}-${blocks}-${sync}.db`);
        const db = openDatabase(file);
        db.pragma(`synchronous = ${sync}`);
        const before = bytesOnDisk(db, file);
        db.pragma('wal_autocheckpoint = 0');
        const ledger = layout === 'bitmap' ? createBlockLedger(db, 'k', blocks) : rowsLedger(db, 'k');
        const order = Array.from({ length: blocks }, (_, i) => (i * 7919) % blocks); // out of order, like retries
        const t0 = performance.now();
        for (const i of order) ledger.mark(i);
        const markMs = (performance.now() - t0) / blocks;
        const walPerMark = statSync(`${file}-wal`).size / blocks;
        const t1 = performance.now();
        for (let r = 0; r < 100; r++) ledger.received();
        const recvMs = (performance.now() - t1) / 100;
        const grown = bytesOnDisk(db, file) - before;
        db.close();
        console.log(`${sync.padEnd(6)} ${label.padEnd(12)} ${layout.padEnd(6)} mark ${markMs.toFixed(3)} ms  received() ${recvMs.toFixed(3)} ms  WAL ${walPerMark.toFixed(0)} B/mark  file +${grown} B`);
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
