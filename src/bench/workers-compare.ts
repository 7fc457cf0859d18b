/**
 * The same training run with one thread and with W workers, interleaved (the order alternates
 * between repeats) so slow drifts of a shared machine fall on both sides alike. Training itself is
 * injected by the caller (the CLI wires compress/distill), so this stays free of compress/.
 */
import { median } from '../core/stats.js';
import { meanStd, type MeanStd } from './distill-bench.js';

export interface TimedRun {
  workers: number;
  repeat: number;
  seconds: number;
  steps: number;
}

export interface WorkersCompareResult {
  workers: number;
  runs: TimedRun[];
  /** Per repeat: seconds with one thread ÷ seconds with W workers. */
  ratios: number[];
  ratio: MeanStd & { median: number; min: number; max: number };
  msPerStep: { one: MeanStd; many: MeanStd };
}

export interface WorkersCompareOptions {
  workers: number;
  repeats: number;
  run: (workers: number, repeat: number) => Promise<{ seconds: number; steps: number }>;
  onRun?: (r: TimedRun) => void;
}


export async function runWorkersCompare(o: WorkersCompareOptions): Promise<WorkersCompareResult> {
  const runs: TimedRun[] = [];
  for (let repeat = 0; repeat < o.repeats; repeat++) {
    const order = repeat % 2 === 0 ? [1, o.workers] : [o.workers, 1];
    for (const workers of order) {
      const r = await o.run(workers, repeat);
      const run = { workers, repeat, ...r };
      runs.push(run);
      o.onRun?.(run);
    }
  }
  const side = (w: number) => runs.filter((r) => r.workers === w);
  const ratios = side(1).map((r) => r.seconds / side(o.workers).find((m) => m.repeat === r.repeat)!.seconds);
  const msPerStep = (rs: TimedRun[]) => meanStd(rs.map((r) => (r.seconds * 1000) / r.steps));
  return {
    workers: o.workers,
    runs,
    ratios,
    ratio: { ...meanStd(ratios), median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) },
    msPerStep: { one: msPerStep(side(1)), many: msPerStep(side(o.workers)) },
  };
}

/** Markdown lines for docs/benchmarks.md. */
export function formatWorkersCompare(r: WorkersCompareResult): string[] {
  const f = (m: MeanStd) => `${m.mean.toFixed(0)} ± ${m.std.toFixed(0)}`;
  return [
    '| repeat | 1 thread, s | ' + `${r.workers} workers, s | ratio |`,
    '|---|---|---|---|',
    ...r.ratios.map((ratio, i) => {
      const one = r.runs.find((x) => x.repeat === i && x.workers === 1)!;
      const many = r.runs.find((x) => x.repeat === i && x.workers === r.workers)!;
      return `| ${i + 1} | ${one.seconds.toFixed(1)} | ${many.seconds.toFixed(1)} | ${ratio.toFixed(2)}× |`;
    }),
    '',
    `Speed-up ${r.ratio.median.toFixed(2)}× median (mean ${r.ratio.mean.toFixed(2)} ± ${r.ratio.std.toFixed(2)}, range ${r.ratio.min.toFixed(2)}–${r.ratio.max.toFixed(2)}, ${r.ratios.length} pairs); ms/step ${f(r.msPerStep.one)} on 1 thread, ${f(r.msPerStep.many)} on ${r.workers} workers.`,
  ];
}
