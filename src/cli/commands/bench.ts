import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { lazyCommands, type LazyCommand } from '../lazy-commands.js';

/** Each `edgekt bench <name>` lives in its own bench-<name>.ts and is listed here (imported only when it runs). */
const BENCH_COMMANDS: readonly LazyCommand<Command>[] = [
  { name: 'latency', load: async () => (await import('./bench-latency.js')).registerBenchLatency },
  { name: 'arch', load: async () => (await import('./bench-arch.js')).registerBenchArch },
  { name: 'paper', load: async () => (await import('./bench-paper.js')).registerBenchPaper },
  { name: 'train', load: async () => (await import('./bench-train.js')).registerBenchTrain },
  { name: 'parallel', load: async () => (await import('./bench-parallel.js')).registerBenchParallel },
  { name: 'distill', load: async () => (await import('./bench-distill.js')).registerBenchDistill },
  { name: 'fleet', load: async () => (await import('./bench-fleet.js')).registerBenchFleet },
  { name: 'fleet-sim', load: async () => (await import('./bench-fleet.js')).registerBenchFleet },
  { name: 'agent', load: async () => (await import('./bench-agent.js')).registerBenchAgent },
  { name: 'federated', load: async () => (await import('./bench-federated.js')).registerBenchFederated },
];

export async function registerBench(program: Command, ctx: CliContext, rest: string[] = []): Promise<void> {
  const bench = program
    .command('bench')
    .description('benchmarks (results belong in docs/benchmarks.md with the command that produced them)');
  // fleet and fleet-sim share a module: register it once when neither is named.
  const seen = new Set<unknown>();
  const once: LazyCommand<Command>[] = BENCH_COMMANDS.map((c) => ({
    name: c.name,
    load: async () => {
      const register = await c.load();
      if (seen.has(register)) return () => undefined;
      seen.add(register);
      return register;
    },
  }));
  await lazyCommands(bench, ctx, once, rest);
}
