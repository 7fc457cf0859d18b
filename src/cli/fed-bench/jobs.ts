import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FED_CONDITIONS, type FedCondition } from '../../bench/federated-bench.js';
import { z } from 'zod';
import { EdgektError } from '../../core/errors.js';
import type { BackendName } from '../../runtime/backend.js';
import type { SeedRun } from './experiment.js';

/** `edgekt bench federated --jobs`: the seeds' work in a pool of child processes of the same command. */

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'edgekt.js');

/**
 * What a --jobs child runs: the parent's resolved settings narrowed to one seed and one half of the
 * conditions, the cache and transport, and where to write its raw results. Written by the parent as
 * JSON, read back by the child through `readJobUnit` (the child does not re-parse the parent's argv).
 */
export interface JobUnit<S extends { seeds: number[]; conditions?: FedCondition[] }> {
  settings: S;
  cacheDir: string;
  transport: 'mqtt' | 'in-process';
  out: string;
}

const JobUnitSchema = z.object({
  settings: z.object({ seeds: z.array(z.number().int().nonnegative()).min(1), conditions: z.array(z.enum(FED_CONDITIONS)).min(1).optional() }).passthrough(),
  cacheDir: z.string().min(1),
  transport: z.enum(['mqtt', 'in-process']),
  out: z.string().min(1),
});

/**
 * In a --jobs child: exit (through process.exit, so its broker goes too) when the parent's IPC
 * channel closes, i.e. when the parent is gone, however it died. Without it, a parent killed by
 * SIGKILL (a test runner's timeout) left its children training for minutes.
 */
export function watchParent(): void {
  if (!process.send) return;
  process.once('disconnect', () => process.exit(143));
  process.channel?.unref();
}

/** Reads a unit file written by runSeedsInChildren; a malformed one is EDGEKT_ERR_USAGE. */
export async function readJobUnit<S extends { seeds: number[]; conditions?: FedCondition[] }>(file: string): Promise<JobUnit<S>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `cannot read the --jobs unit ${file}: ${(e as Error).message}`);
  }
  const parsed = JobUnitSchema.safeParse(raw);
  if (!parsed.success) throw new EdgektError('EDGEKT_ERR_USAGE', `malformed --jobs unit ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data as unknown as JobUnit<S>;
}

/**
 * The two halves a seed is split into for --jobs, the longer first. Every condition but prefix
 * starts each client from the base, so round 1 is trained once per process (the memo): federated,
 * attackedFedAvg and withoutAttackers share it in the first half, localOnly and attacked in the
 * second. From the 2026-12-07 runs (6 rounds, withoutAttackers not asked for): about 850 s and 680 s
 * per seed, so 3 seeds on 2 processes end within about 2,400 s.
 */
const HALVES: ReadonlyArray<readonly FedCondition[]> = [
  ['federated', 'prefix', 'attackedFedAvg', 'withoutAttackers'],
  ['localOnly', 'attacked'],
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
export async function runSeedsInChildren<S extends { seeds: number[]; conditions?: FedCondition[] }>(
  base: Omit<JobUnit<S>, 'out'>,
  /** The parent's backend, given to each child as --backend. */
  backend: BackendName,
  jobs: number,
  log: (line: string) => void,
): Promise<SeedRun[]> {
  const { seeds, conditions } = base.settings;
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
    const runUnit = async (u: (typeof units)[number]): Promise<void> => {
      const out = path.join(dir, `seed-${u.seed}-${u.half}.json`);
      const unitFile = path.join(dir, `unit-${u.seed}-${u.half}.json`);
      const tag = `seed ${u.seed}/${u.half + 1}`;
      const unit: JobUnit<S> = { ...base, settings: { ...base.settings, seeds: [u.seed], conditions: [...u.conditions] }, out };
      await writeFile(unitFile, JSON.stringify(unit));
      await new Promise<void>((resolve, reject) => {
        // The IPC channel is only there so the child sees this process die, even by SIGKILL (watchParent).
        const child = spawn(process.execPath, [...process.execArgv, BIN, '--backend', backend, 'bench', 'federated', '--job-unit', unitFile], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
        const stopChild = (): void => void child.kill('SIGTERM');
        process.once('exit', stopChild);
        let tail = '';
        let last: string[] = [];
        const stderr = child.stderr!;
        stderr.setEncoding('utf8');
        stderr.on('data', (chunk: string) => {
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
          if (code !== 0) reject(new EdgektError('EDGEKT_ERR_INTERNAL', `bench federated child for ${tag} (${u.conditions.join(',')}) exited with ${code}: ${last.slice(-5).join(' | ')}`));
          else resolve();
        });
      });
      results.set(`${u.seed}/${u.half}`, (JSON.parse(await readFile(out, 'utf8')) as SeedRun[])[0]!);
    };
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
