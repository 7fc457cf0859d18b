import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FED_CONDITIONS } from '../src/bench/federated-bench.js';
import { runCli, runCliAsync } from './helpers/cli.js';

const cache = mkdtempSync(path.join(os.tmpdir(), 'edgekt-fedbench-'));
afterAll(() => rmSync(cache, { recursive: true, force: true }));

describe('edgekt bench federated --preset tiny', () => {
  let first: { groups: Array<Record<string, unknown>> } | undefined;
  it('prints the groups with every condition, spread over 3 seeds, the settings and the seconds (seeds in 2 processes)', async () => {
    const r = await runCliAsync(['bench', 'federated', '--preset', 'tiny', '--transport', 'in-process', '--json', '--cache', cache, '--jobs', '2'], {}, 300_000);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      groups: Array<Record<string, unknown> & { name: string; params: number; clients: string[] }>;
      clients: Array<Record<string, number | string>>;
      settings: { seeds: number[]; alpha: number; transport: string; groups: unknown[] };
      seconds: number;
    };
    expect(out.groups.map((g) => g.name)).toEqual(['large', 'medium', 'small']);
    expect(out.groups.reduce((a, g) => a + g.clients.length, 0)).toBeGreaterThanOrEqual(8);
    // Three budget groups, three architectures.
    expect(new Set(out.groups.map((g) => g.params)).size).toBe(3);
    for (const g of out.groups) {
      for (const c of FED_CONDITIONS) {
        const s = g[c] as { mean: number; spread: number; perSeed: number[] };
        expect(s.perSeed).toHaveLength(3);
        expect(s.mean).toBeGreaterThanOrEqual(0);
        expect(s.mean).toBeLessThanOrEqual(1);
        expect(s.spread).toBeGreaterThanOrEqual(0);
      }
    }
    expect(out.clients).toHaveLength(8);
    expect(out.settings).toMatchObject({ seeds: [0, 1, 2], alpha: 0.5, transport: 'in-process', jobs: 2 });
    expect(out.seconds).toBeGreaterThan(0);
    first = out;
    // Every condition ran for every seed (progress lines on stderr).
    for (const seed of [0, 1, 2]) for (const c of FED_CONDITIONS) expect(r.stderr).toContain(`seed ${seed} ${c}: large`);
  }, 300_000);

  it('runs only the conditions asked for, on the seeds listed, the same in one process as in two; refuses an unknown condition with a usage error', async () => {
    const r = await runCliAsync(['bench', 'federated', '--preset', 'tiny', '--transport', 'in-process', '--json', '--cache', cache, '--seeds', '2,1', '--conditions', 'withoutAttackers', '--jobs', '1'], {}, 300_000);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { groups: Array<Record<string, { perSeed: number[] }>>; settings: { seeds: number[] } };
    expect(out.settings.seeds).toEqual([2, 1]);
    expect(out.groups[0]!.withoutAttackers!.perSeed.every((a) => a >= 0 && a <= 1)).toBe(true);
    expect(r.stderr).toContain('seed 2 withoutAttackers: large');
    expect(r.stderr).not.toContain('seed 2 federated: large');
    expect(r.stderr).not.toContain('seed 0 ');
    // Seeds 1 and 2 of the 2-process run above: a seed's result does not depend on the process that ran it.
    const two = first!;
    for (const [i, seed] of [2, 1].entries()) {
      expect(out.groups.map((g) => g.withoutAttackers!.perSeed[i])).toEqual(two.groups.map((g) => (g.withoutAttackers as { perSeed: number[] }).perSeed[seed]));
    }
    const bad = runCli(['bench', 'federated', '--preset', 'tiny', '--transport', 'in-process', '--cache', cache, '--conditions', 'federated,nope']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('EDGEKT_ERR_USAGE');
  });
});
