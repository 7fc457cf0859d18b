import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { registerBenchLatency } from './bench-latency.js';
import { registerBenchPaper } from './bench-paper.js';
import { registerBenchTrain } from './bench-train.js';
import { registerBenchDistill } from './bench-distill.js';
import { registerBenchFleet } from './bench-fleet.js';
import { registerBenchAgent } from './bench-agent.js';
import { registerBenchFederated } from './bench-federated.js';

/** Each `edgekt bench <name>` lives in its own bench-<name>.ts and is listed here. */
const BENCH_COMMANDS: Array<(bench: Command, ctx: CliContext) => void> = [
  registerBenchLatency,
  registerBenchPaper,
  registerBenchTrain,
  registerBenchDistill,
  registerBenchFleet,
  registerBenchAgent,
  registerBenchFederated,
];

export function registerBench(program: Command, ctx: CliContext): void {
  const bench = program
    .command('bench')
    .description('benchmarks (results belong in docs/benchmarks.md with the command that produced them)');
  for (const register of BENCH_COMMANDS) register(bench, ctx);
}
