import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readJobUnit } from '../src/cli/fed-bench/jobs.js';
import { runCli } from './helpers/cli.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-fedjobs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, body: string): string => {
  const f = path.join(dir, name);
  writeFileSync(f, body);
  return f;
};

describe('bench federated --jobs unit files', () => {
  it('a well-formed unit keeps every setting, the ones the schema does not name included', async () => {
    const f = write('ok.json', JSON.stringify({ settings: { seeds: [2], conditions: ['attacked'], rounds: 7, trimBeta: 0.1 }, cacheDir: '/c', transport: 'mqtt', out: '/o.json' }));
    const u = await readJobUnit<{ seeds: number[]; rounds: number; trimBeta: number }>(f);
    expect(u).toEqual({ settings: { seeds: [2], conditions: ['attacked'], rounds: 7, trimBeta: 0.1 }, cacheDir: '/c', transport: 'mqtt', out: '/o.json' });
  });

  it.each([
    ['not JSON', '{seeds'],
    ['no seeds', JSON.stringify({ settings: { seeds: [] }, cacheDir: '/c', transport: 'mqtt', out: '/o' })],
    ['an unknown condition', JSON.stringify({ settings: { seeds: [0], conditions: ['nope'] }, cacheDir: '/c', transport: 'mqtt', out: '/o' })],
    ['an unknown transport', JSON.stringify({ settings: { seeds: [0] }, cacheDir: '/c', transport: 'grpc', out: '/o' })],
  ])('%s is EDGEKT_ERR_USAGE', async (_name, body) => {
    const f = write(`bad-${Math.random().toString(36).slice(2)}.json`, body);
    await expect(readJobUnit(f)).rejects.toMatchObject({ code: 'EDGEKT_ERR_USAGE' });
  });

  it('the CLI exits non-zero with the code on a malformed unit', () => {
    const r = runCli(['bench', 'federated', '--job-unit', write('cli-bad.json', '[]')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('EDGEKT_ERR_USAGE');
  });
});
