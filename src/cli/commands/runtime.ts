import type { Command } from 'commander';
import si from 'systeminformation';
import { action, printJson, type CliContext } from '../context.js';

export function registerRuntime(program: Command, ctx: CliContext): void {
  program
    .command('runtime')
    .description('show the tfjs backend in use (and why), SIMD, threads and this machine')
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (opts: { json?: boolean }) => {
        const info = await ctx.backend();
        const [cpu, mem, os] = await Promise.all([si.cpu(), si.mem(), si.osInfo()]);
        const machine = {
          arch: os.arch,
          platform: `${os.distro} ${os.release}`.trim(),
          cpu: `${cpu.manufacturer} ${cpu.brand}`.trim(),
          cores: cpu.cores,
          physicalCores: cpu.physicalCores,
          memoryMB: Math.round(mem.total / 2 ** 20),
          node: process.version,
        };
        if (opts.json) return printJson(ctx, { ...info, machine });
        ctx.out(`backend   ${info.backend}`);
        ctx.out(`reason    ${info.reason}`);
        ctx.out(`tfjs      ${info.tfjsVersion}`);
        ctx.out(`simd      ${info.simd === null ? 'n/a' : info.simd ? 'yes' : 'no'}`);
        ctx.out(`threads   ${info.threads}`);
        ctx.out(`machine   ${machine.cpu}, ${machine.cores} cores, ${machine.memoryMB} MB, ${machine.arch}, ${machine.platform}, node ${machine.node}`);
      }),
    );
}
