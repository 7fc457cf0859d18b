import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTransferBench, startBroker, type Broker } from '../src/cli/commands/bench-agent-transfer.js';

let dir: string;
let broker: Broker;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-bench-agent-test-'));
  broker = await startBroker(dir);
});

afterAll(() => {
  broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('edgekt bench agent: the transfer part (figures sane, not timed)', () => {
  it('moves the same bytes through the block protocol and through mosquitto_pub/sub', async () => {
    const r = await runTransferBench({ broker, dir, mb: 1, trials: 1 });
    expect(r.bytes).toBeGreaterThan(2 ** 20); // weights.bin plus model.json
    expect(r.trials).toBe(1);
    expect([r.blockSize, r.window]).toEqual([64 * 1024, 8]);
    for (const side of [r.blocks, r.plain]) {
      expect(side.seconds.values).toHaveLength(1);
      expect(side.seconds.median).toBeGreaterThan(0);
      expect(side.mbPerSecond.median).toBeGreaterThan(0);
      // seconds are rounded to the millisecond: compare the rate with a relative tolerance
      const expected = r.bytes / 2 ** 20 / side.seconds.median;
      expect(Math.abs(side.mbPerSecond.median - expected) / expected).toBeLessThan(0.1);
    }
    expect(r.ratio).toBeGreaterThan(0);
  }, 60_000);
});
