import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import si from 'systeminformation';
import { EdgektError } from '../../core/errors.js';
import {
  BUILTIN_PROFILES,
  parseDeviceProfile,
  rankProfiles,
  type DeviceProfile,
  type MachineFacts,
} from '../../config/device-profile.js';
import { action, printJson, type CliContext } from '../context.js';

/** src/cli/commands and dist/cli/commands both sit three levels below the package root. */
export const PROFILE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'device-profiles');

function readProfileFile(file: string): DeviceProfile {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_PROFILE', `${file}: not readable JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  return parseDeviceProfile(json, path.basename(file));
}

/** A built-in name (device-profiles/NAME.json) or a path to a profile JSON file. */
export function loadProfile(nameOrFile: string): DeviceProfile {
  if (/^[a-z0-9][a-z0-9-]*$/.test(nameOrFile) && !existsSync(nameOrFile)) {
    const file = path.join(PROFILE_DIR, `${nameOrFile}.json`);
    if (!existsSync(file)) {
      throw new EdgektError('EDGEKT_ERR_PROFILE', `unknown profile "${nameOrFile}"; built in: ${BUILTIN_PROFILES.join(', ')}`);
    }
    return readProfileFile(file);
  }
  if (!existsSync(nameOrFile)) throw new EdgektError('EDGEKT_ERR_PROFILE', `profile file ${nameOrFile} does not exist`);
  return readProfileFile(nameOrFile);
}

export function loadAllProfiles(): DeviceProfile[] {
  return readdirSync(PROFILE_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => readProfileFile(path.join(PROFILE_DIR, f)));
}

export async function machineFacts(): Promise<MachineFacts & { board: string }> {
  const [cpu, mem, os, sys] = await Promise.all([si.cpu(), si.mem(), si.osInfo(), si.system()]);
  const board = `${sys.manufacturer} ${sys.model}`.trim();
  return {
    arch: os.arch,
    cpuModel: `${cpu.manufacturer} ${cpu.brand} ${board}`.trim(),
    memoryMB: Math.round(mem.total / 2 ** 20),
    board,
  };
}

export function registerProfile(program: Command, ctx: CliContext): void {
  const profile = program.command('profile').description('device profiles: budgets, runtime and training limits');
  profile
    .command('detect')
    .description('match this machine against the built-in device profiles')
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (opts: { json?: boolean }) => {
        const facts = await machineFacts();
        const ranked = rankProfiles(loadAllProfiles(), facts);
        const best = ranked[0]?.name ?? null;
        if (opts.json) return printJson(ctx, { machine: facts, profile: best, matches: ranked });
        ctx.out(`machine   ${facts.cpuModel}, ${facts.memoryMB} MB, ${facts.arch}`);
        ctx.out(`profile   ${best ?? '(none matches; pass --profile FILE)'}`);
        for (const m of ranked) ctx.out(`  ${m.name.padEnd(18)} score ${m.score}  ${m.reasons.join(', ')}`);
      }),
    );
  profile
    .command('show <name>')
    .description('print a profile (built-in name or a JSON file), validated')
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (name: string, opts: { json?: boolean }) => {
        const p = loadProfile(name);
        if (opts.json) return printJson(ctx, p);
        ctx.out(`${p.name}: ${p.description}`);
        ctx.out(`match     arch ${p.match.arch.join('|')}${p.match.cpuModel ? `, cpu /${p.match.cpuModel}/` : ''}${p.match.memoryMB ? `, memory ${p.match.memoryMB.min}-${p.match.memoryMB.max ?? '∞'} MB` : ''}`);
        const b = p.budgets;
        const unit = (v: number | string | undefined, u: string): string => (v === undefined ? '-' : typeof v === 'number' ? `${v} ${u}` : `${v} teacher`);
        ctx.out(`budgets   latencyP95 ${unit(b.latencyP95, 'ms')}, peakMemory ${unit(b.peakMemoryMB, 'MB')}, size ${unit(b.modelSizeKB, 'KB')}, minAccuracy ${unit(b.minAccuracy, '')}`.replace(/ ,/g, ','));
        ctx.out(`runtime   backend ${p.runtime.backend}, threads ${p.runtime.threads}`);
        const t = p.training;
        ctx.out(`training  batch ${t.batchSize}, max RSS ${t.maxRssMB} MB, max ${t.maxTemperatureC} °C, allowed "${t.allowedCron}"`);
      }),
    );
}
