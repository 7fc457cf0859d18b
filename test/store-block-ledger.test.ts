import { afterEach, describe, expect, it } from 'vitest';
import { clearTransfer, createBlockLedger } from '../src/store/block-ledger.js';
import { codeOf } from './helpers/errors.js';
import { tempDb, type TempDb } from './helpers/store-db.js';

let t: TempDb | undefined;
afterEach(() => t?.cleanup());

describe('createBlockLedger', () => {
  it('records marks out of order, ignores repeats, and survives a reopen', () => {
    t = tempDb();
    const ledger = createBlockLedger(t.db, 'sha256:aa/65536', 80);
    expect(ledger.received()).toEqual([]);
    for (const i of [79, 3, 0, 3, 8, 7]) ledger.mark(i);
    expect(ledger.received()).toEqual([0, 3, 7, 8, 79]);
    t.db.close();
    const again = createBlockLedger(t.reopen(), 'sha256:aa/65536', 80);
    expect(again.received()).toEqual([0, 3, 7, 8, 79]);
  });

  it('keeps transfers apart, clears one, and stores 400 blocks in 50 bytes', () => {
    t = tempDb();
    const a = createBlockLedger(t.db, 'a', 400);
    const b = createBlockLedger(t.db, 'b', 9);
    for (let i = 0; i < 400; i += 2) a.mark(i);
    b.mark(8);
    expect(a.received()).toHaveLength(200);
    expect(b.received()).toEqual([8]);
    expect(t.db.prepare("SELECT length(bitmap) FROM transfer_blocks WHERE transfer_key = 'a'").pluck().get()).toBe(50);
    clearTransfer(t.db, 'a');
    expect(createBlockLedger(t.db, 'a', 400).received()).toEqual([]);
    expect(b.received()).toEqual([8]);
  });

  it('refuses an index out of range and a block count that differs from the stored one', () => {
    t = tempDb();
    const ledger = createBlockLedger(t.db, 'k', 10);
    expect(codeOf(() => ledger.mark(10))).toBe('EDGEKT_ERR_STORE');
    expect(codeOf(() => ledger.mark(-1))).toBe('EDGEKT_ERR_STORE');
    expect(codeOf(() => ledger.mark(1.5))).toBe('EDGEKT_ERR_STORE');
    expect(codeOf(() => createBlockLedger(t!.db, 'k', 11))).toBe('EDGEKT_ERR_STORE');
  });

  it('two handles on one transfer see each other’s marks (no stale in-memory copy)', () => {
    t = tempDb();
    const one = createBlockLedger(t.db, 'k', 16);
    const two = createBlockLedger(t.reopen(), 'k', 16);
    one.mark(1);
    two.mark(2);
    one.mark(3);
    expect(two.received()).toEqual([1, 2, 3]);
  });
});
