import type { Command } from 'commander';
import { measureModelCost, measurePair } from '../../bench/latency.js';
import type { ModelCost } from '../../config/measurement.js';
import { loadModel } from '../../model/index.js';
import { action, parseIntOption, printJson, type CliContext } from '../context.js';

const ms = (v: number): string => v.toFixed(3);
const spread = (c: ModelCost): string =>
  c.latency ? `  (p95 over ${c.latency.trials} trials ${ms(c.latency.p95.min)}…${ms(c.latency.p95.max)}, IQR ${ms(c.latency.p95.q1)}–${ms(c.latency.p95.q3)})` : '';
const load = (c: ModelCost): string =>
  c.load ? `load avg ${c.load.loadAvg1Before?.toFixed(2) ?? '-'} → ${c.load.loadAvg1After?.toFixed(2) ?? '-'}${c.load.stealPct === null ? '' : `, steal ${c.load.stealPct.toFixed(1)} %`}` : '';

export function registerBenchLatency(bench: Command, ctx: CliContext): void {
  bench
    .command('latency')
    .description('batch-1 latency p50/p95/p99 (median over trials, spread) after warm-up, peak tensor memory and size; with --reference, both models in one interleaved run and their ratio')
    .requiredOption('--model <dir>', 'tfjs LayersModel directory (model.json + weights)')
    .option('--reference <dir>', 'a second model (e.g. the teacher) measured in alternating trials with --model')
    .option('--runs <n>', 'timed runs per trial', parseIntOption('runs'), 50)
    .option('--trials <n>', 'trials (the figures are medians over them)', parseIntOption('trials'), 5)
    .option('--warmup <n>', 'untimed warm-up runs', parseIntOption('warmup'), 5)
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (opts: { model: string; reference?: string; runs: number; trials: number; warmup: number; json?: boolean }) => {
        const info = await ctx.backend();
        const loaded = await loadModel(opts.model);
        const ref = opts.reference ? await loadModel(opts.reference) : null;
        try {
          const o = { runs: opts.runs, trials: opts.trials, warmup: opts.warmup };
          const pair = ref ? await measurePair(loaded.model, ref.model, o) : null;
          const cost = pair ? pair.candidate : await measureModelCost(loaded.model, o);
          const head = { model: opts.model, backend: info.backend, runs: opts.runs, trials: opts.trials, warmup: opts.warmup, macs: loaded.graph.totalMacs };
          const result = { ...head, ...cost, ...(pair && ref ? { reference: { model: opts.reference, macs: ref.graph.totalMacs, ...pair.reference }, ratioP95: pair.ratioP95, ratioP50: pair.ratioP50 } : {}) };
          if (opts.json) return printJson(ctx, result);
          ctx.out(`backend   ${info.backend} (${opts.trials} trials × ${opts.runs} runs after ${opts.warmup} warm-up, batch 1${ref ? ', model and reference alternating' : ''})`);
          ctx.out(`latency   p50 ${ms(cost.latencyP50Ms)} ms  p95 ${ms(cost.latencyP95Ms)} ms  p99 ${ms(cost.latencyP99Ms)} ms${spread(cost)}`);
          if (pair) {
            ctx.out(`reference p50 ${ms(pair.reference.latencyP50Ms)} ms  p95 ${ms(pair.reference.latencyP95Ms)} ms${spread(pair.reference)}`);
            ctx.out(`ratio     model / reference, same run: p50 ${pair.ratioP50.toFixed(3)}  p95 ${pair.ratioP95.toFixed(3)}`);
          }
          ctx.out(`memory    peak ${cost.peakMemoryMB.toFixed(3)} MB (tensors, weights included)`);
          ctx.out(`size      ${cost.params} params, ${cost.modelSizeKB.toFixed(1)} KB float32, ${head.macs} MACs`);
          if (cost.load) ctx.out(`machine   ${load(cost)}`);
        } finally {
          loaded.model.dispose();
          ref?.model.dispose();
        }
      }),
    );
}
