import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readJobUnit } from '../src/cli/fed-bench/jobs.js';
import { ROOT, runCli } from './helpers/cli.js';

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

  it('children run on the parent\'s backend and exit when the parent is SIGKILLed', async () => {
    const cache = path.join(dir, 'cache');
    const parent = spawn(process.execPath, [path.join(ROOT, 'bin', 'edgekt.js'), '--backend', 'wasm', 'bench', 'federated', '--preset', 'tiny', '--transport', 'in-process', '--json', '--cache', cache, '--jobs', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    parent.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    const children = (): string[] => spawnSync('pgrep', ['-P', String(parent.pid)], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.length > 0);
    const alive = (pid: string): boolean => spawnSync('kill', ['-0', pid]).status === 0;
    const deadline = Date.now() + 150_000;
    let kids: string[] = [];
    while (Date.now() < deadline && (kids = children()).length < 2) await sleep(200);
    expect(kids.length, err).toBe(2);
    expect(spawnSync('ps', ['-o', 'args=', '-p', kids[0]!], { encoding: 'utf8' }).stdout).toContain('--backend wasm bench federated --job-unit');
    parent.kill('SIGKILL');
    const gone = Date.now() + 15_000;
    while (Date.now() < gone && kids.some(alive)) await sleep(200);
    expect(kids.filter(alive)).toEqual([]);
  }, 200_000);
});
