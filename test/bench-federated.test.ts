import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FED_CONDITIONS } from '../src/bench/federated-bench.js';
import { runCli } from './helpers/cli.js';

const cache = mkdtempSync(path.join(os.tmpdir(), 'edgekt-fedbench-'));
afterAll(() => rmSync(cache, { recursive: true, force: true }));

describe('edgekt bench federated --preset tiny', () => {
  it('prints the groups with every condition, spread over 3 seeds, the settings and the seconds', () => {
    const r = runCli(['bench', 'federated', '--preset', 'tiny', '--transport', 'in-process', '--json', '--cache', cache], {}, 300_000);
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
    expect(out.settings).toMatchObject({ seeds: [0, 1, 2], alpha: 0.5, transport: 'in-process' });
    expect(out.seconds).toBeGreaterThan(0);
    // Every condition ran for every seed (progress lines on stderr).
    for (const seed of [0, 1, 2]) for (const c of FED_CONDITIONS) expect(r.stderr).toContain(`seed ${seed} ${c}: large`);
  });

  it('runs only the conditions asked for, on the seeds listed; refuses an unknown condition with a usage error', () => {
    const r = runCli(['bench', 'federated', '--preset', 'tiny', '--transport', 'in-process', '--json', '--cache', cache, '--seeds', '2,1', '--conditions', 'withoutAttackers'], {}, 300_000);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { groups: Array<Record<string, { perSeed: number[] }>>; settings: { seeds: number[] } };
    expect(out.settings.seeds).toEqual([2, 1]);
    expect(out.groups[0]!.withoutAttackers!.perSeed.every((a) => a >= 0 && a <= 1)).toBe(true);
    expect(r.stderr).toContain('seed 2 withoutAttackers: large');
    expect(r.stderr).not.toContain('seed 2 federated: large');
    expect(r.stderr).not.toContain('seed 0 ');
    const bad = runCli(['bench', 'federated', '--preset', 'tiny', '--transport', 'in-process', '--cache', cache, '--conditions', 'federated,nope']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('EDGEKT_ERR_USAGE');
  });
});
