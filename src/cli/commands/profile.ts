import type { Command } from 'commander';
import si from 'systeminformation';
import { rankProfiles, type MachineFacts } from '../../config/device-profile.js';
import { loadAllProfiles, loadProfile } from '../../config/profile-files.js';
import { action, printJson, type CliContext } from '../context.js';

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
