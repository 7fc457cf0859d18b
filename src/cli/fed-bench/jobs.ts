import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FED_CONDITIONS, type FedCondition } from '../../bench/federated-bench.js';
import { EdgektError } from '../../core/errors.js';
import type { SeedRun } from './experiment.js';

/** `edgekt bench federated --jobs`: the seeds' work in a pool of child processes of the same command. */

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'edgekt.js');

/** argv of this command without the options a child gets its own values for. */
function childArgs(seeds: number[], conditions: readonly FedCondition[], out: string): string[] {
  const own = new Set(['--jobs', '--seeds', '--seed-runs-out', '--conditions']);
  const args: string[] = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.split('=')[0]!;
    if (own.has(name)) {
      if (!a.includes('=')) i++;
      continue;
    }
    if (a === '--json') continue;
    args.push(a);
  }
  return [...args, '--seeds', `${seeds.join(',')},`, '--conditions', conditions.join(','), '--jobs', '1', '--seed-runs-out', out];
}

/** The two halves a seed is split into for --jobs (about equal work: 767 s and 605 s per seed in the 2026-12-06 run). */
const HALVES: ReadonlyArray<readonly FedCondition[]> = [
  ['federated', 'prefix', 'localOnly'],
  ['attacked', 'attackedFedAvg', 'withoutAttackers'],
];

/** One seed's results from its halves: rows of each condition once (`none` runs in every half: kept from the first). */
function mergeSeedHalves(parts: readonly SeedRun[]): SeedRun {
  const [first] = parts;
  if (!first) throw new EdgektError('EDGEKT_ERR_INTERNAL', 'no results to merge');
  const seen = new Set<string>();
  const rows = parts.flatMap((p) => p.rows).filter((r) => {
    const key = `${r.condition}/${r.client}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return { ...first, rows, seconds: Object.assign({}, ...parts.map((p) => p.seconds)), attackClips: parts.flatMap((p) => p.attackClips) };
}

/**
 * Runs the seeds in child processes of this command, at most `jobs` at a time, each with its own
 * broker and transport. Each seed is split in two halves of its conditions (HALVES), so 3 seeds make
 * 6 units for 2 processes instead of 3 (a 2-seed process set the makespan before). Progress lines
 * are forwarded with a prefix; the results come back in the order of `seeds`. A seed's result does
 * not depend on which process ran it (the memo that shares round-1 training within a process only
 * saves time).
 */
export async function runSeedsInChildren(seeds: number[], conditions: readonly FedCondition[] | undefined, jobs: number, log: (line: string) => void): Promise<SeedRun[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edgekt-fedbench-jobs-'));
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeDir);
  try {
    const wanted = conditions ?? FED_CONDITIONS;
    const halves = HALVES.map((h) => h.filter((c) => wanted.includes(c))).filter((h) => h.length > 0);
    const halvesOrNone = halves.length > 0 ? halves : [['none'] as FedCondition[]];
    // Longest first: every seed's first half, then every seed's second half.
    const units = halvesOrNone.flatMap((h, k) => seeds.map((seed) => ({ seed, half: k, conditions: h })));
    log(`running ${units.length} units (seed × half of the conditions) in ${jobs} processes at a time`);
    const results = new Map<string, SeedRun>();
    let next = 0;
    const runUnit = (u: (typeof units)[number]): Promise<void> => new Promise<void>((resolve, reject) => {
      const out = path.join(dir, `seed-${u.seed}-${u.half}.json`);
      const tag = `seed ${u.seed}/${u.half + 1}`;
      const child = spawn(process.execPath, [...process.execArgv, BIN, ...childArgs([u.seed], u.conditions, out)], { stdio: ['ignore', 'ignore', 'pipe'] });
      const stopChild = (): void => void child.kill('SIGTERM');
      process.once('exit', stopChild);
      let tail = '';
      let last: string[] = [];
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        const lines = (tail + chunk).split('\n');
        tail = lines.pop() ?? '';
        for (const line of lines) {
          if (line.includes('[NODE-CRON]')) continue;
          last = [...last.slice(-19), line];
          log(`[${tag}] ${line.replace(/^\[\s*\d+ s\] /, '')}`);
        }
      });
      child.on('error', reject);
      child.on('close', (code) => {
        process.removeListener('exit', stopChild);
        if (code !== 0) return reject(new EdgektError('EDGEKT_ERR_INTERNAL', `bench federated child for ${tag} (${u.conditions.join(',')}) exited with ${code}: ${last.slice(-5).join(' | ')}`));
        readFile(out, 'utf8').then((t) => {
          results.set(`${u.seed}/${u.half}`, (JSON.parse(t) as SeedRun[])[0]!);
          resolve();
        }, reject);
      });
    });
    const worker = async (): Promise<void> => {
      while (next < units.length) await runUnit(units[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(jobs, units.length) }, () => worker()));
    return seeds.map((seed) => mergeSeedHalves(halvesOrNone.map((_, k) => results.get(`${seed}/${k}`)!)));
  } finally {
    process.removeListener('exit', removeDir);
    await rm(dir, { recursive: true, force: true });
  }
}
