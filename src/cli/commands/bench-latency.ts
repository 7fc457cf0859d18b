import type { Command } from 'commander';
import { measureModelCost } from '../../bench/latency.js';
import { loadModel } from '../../model/index.js';
import { action, parseIntOption, printJson, type CliContext } from '../context.js';

export function registerBenchLatency(bench: Command, ctx: CliContext): void {
  bench
    .command('latency')
    .description('batch-1 latency p50/p95/p99 after warm-up, peak tensor memory and size of a model')
    .requiredOption('--model <dir>', 'tfjs LayersModel directory (model.json + weights)')
    .option('--runs <n>', 'timed runs', parseIntOption('runs'), 50)
    .option('--warmup <n>', 'untimed warm-up runs', parseIntOption('warmup'), 5)
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (opts: { model: string; runs: number; warmup: number; json?: boolean }) => {
        const info = await ctx.backend();
        const loaded = await loadModel(opts.model);
        try {
          const cost = await measureModelCost(loaded.model, { runs: opts.runs, warmup: opts.warmup });
          const result = { model: opts.model, backend: info.backend, runs: opts.runs, warmup: opts.warmup, macs: loaded.graph.totalMacs, ...cost };
          if (opts.json) return printJson(ctx, result);
          ctx.out(`backend   ${info.backend} (${opts.runs} runs after ${opts.warmup} warm-up, batch 1)`);
          ctx.out(`latency   p50 ${cost.latencyP50Ms.toFixed(3)} ms  p95 ${cost.latencyP95Ms.toFixed(3)} ms  p99 ${cost.latencyP99Ms.toFixed(3)} ms`);
          ctx.out(`memory    peak ${cost.peakMemoryMB.toFixed(3)} MB (tensors, weights included)`);
          ctx.out(`size      ${cost.params} params, ${cost.modelSizeKB.toFixed(1)} KB float32, ${result.macs} MACs`);
        } finally {
          loaded.model.dispose();
        }
      }),
    );
}
