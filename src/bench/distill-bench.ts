/**
 * The distillation benchmark's bookkeeping: which methods, in which order, and the statistics
 * (mean ± std over seeds, loss against the teacher, the paper's relative claim). Training itself
 * is injected by the caller (the CLI wires compress/distill), so this stays free of compress/.
 */

export const DISTILL_METHODS = ['labels', 'kd', 'multilevel', 'multilevel-noise'] as const;
export type DistillMethod = (typeof DISTILL_METHODS)[number];

export const METHOD_LABELS: Record<DistillMethod, string> = {
  labels: '(a) hard labels only',
  kd: '(b) plain KD (Hinton: logits KD + CE)',
  multilevel: '(c) multi-level (hints + KD + CE), no noise',
  'multilevel-noise': '(d) multi-level + noisy teacher',
};

export interface MethodRun {
  method: DistillMethod;
  seed: number;
  /** Student top-1 accuracy on the test set, 0..1. */
  accuracy: number;
  seconds: number;
  /** Mean KD and hard-label loss per epoch (the last phase of each epoch): whether a run had converged. */
  epochLosses?: EpochLoss[];
}

export interface EpochLoss {
  kd: number | null;
  ce: number | null;
}

export interface MeanStd {
  mean: number;
  /** Sample standard deviation (n − 1); 0 for a single run. */
  std: number;
  n: number;
}

export interface MethodSummary {
  method: DistillMethod;
  label: string;
  accuracy: MeanStd;
  /** Teacher accuracy − student accuracy, per run. */
  lossVsTeacher: MeanStd;
  seconds: MeanStd;
}

export interface DistillClaim {
  /** Mean accuracy loss vs the teacher of (b) plain KD and (d) multi-level + noise. */
  lossKd: number;
  lossMultilevelNoise: number;
  /** (loss_b − loss_d) / loss_b; the paper reports ≥ 0.30. Null when loss_b ≤ 0 (undefined ratio). */
  relativeReduction: number | null;
  holds: boolean | null;
}

export interface DistillBenchResult {
  teacherAccuracy: number;
  runs: MethodRun[];
  methods: MethodSummary[];
  claim: DistillClaim | null;
}

export interface DistillBenchOptions {
  seeds: number[];
  methods?: readonly DistillMethod[];
  teacherAccuracy: number;
  /** Trains one student with one method and seed; returns its test accuracy. */
  run: (method: DistillMethod, seed: number) => Promise<{ accuracy: number; seconds: number; epochLosses?: EpochLoss[] }>;
  onRun?: (r: MethodRun, done: number, total: number) => void;
}

export function meanStd(values: number[]): MeanStd {
  const n = values.length;
  if (n === 0) return { mean: NaN, std: NaN, n };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

export function summarize(runs: MethodRun[], teacherAccuracy: number): Pick<DistillBenchResult, 'methods' | 'claim'> {
  const present = DISTILL_METHODS.filter((m) => runs.some((r) => r.method === m));
  const methods = present.map((method): MethodSummary => {
    const mine = runs.filter((r) => r.method === method);
    return {
      method,
      label: METHOD_LABELS[method],
      accuracy: meanStd(mine.map((r) => r.accuracy)),
      lossVsTeacher: meanStd(mine.map((r) => teacherAccuracy - r.accuracy)),
      seconds: meanStd(mine.map((r) => r.seconds)),
    };
  });
  const b = methods.find((m) => m.method === 'kd');
  const d = methods.find((m) => m.method === 'multilevel-noise');
  let claim: DistillClaim | null = null;
  if (b && d) {
    const lossKd = b.lossVsTeacher.mean;
    const lossMultilevelNoise = d.lossVsTeacher.mean;
    const relativeReduction = lossKd > 0 ? (lossKd - lossMultilevelNoise) / lossKd : null;
    claim = { lossKd, lossMultilevelNoise, relativeReduction, holds: relativeReduction === null ? null : relativeReduction >= 0.3 };
  }
  return { methods, claim };
}

/** Runs every method for every seed (seed-major, so an interrupted run stays balanced). */
export async function runDistillBench(o: DistillBenchOptions): Promise<DistillBenchResult> {
  const methods = o.methods ?? DISTILL_METHODS;
  const runs: MethodRun[] = [];
  const total = methods.length * o.seeds.length;
  for (const seed of o.seeds) {
    for (const method of methods) {
      const r = await o.run(method, seed);
      const run: MethodRun = { method, seed, accuracy: r.accuracy, seconds: r.seconds, ...(r.epochLosses ? { epochLosses: r.epochLosses } : {}) };
      runs.push(run);
      o.onRun?.(run, runs.length, total);
    }
  }
  return { teacherAccuracy: o.teacherAccuracy, runs, ...summarize(runs, o.teacherAccuracy) };
}

const pct = (v: number): string => (v * 100).toFixed(2);

/** Markdown table (one row per method) plus the claim line, as written to docs/benchmarks.md. */
export function formatDistillBench(r: DistillBenchResult): string[] {
  const lines = [
    `Teacher test accuracy: ${pct(r.teacherAccuracy)}%`,
    '',
    '| method | accuracy % (mean ± std) | loss vs teacher, points (mean ± std) | seeds | s/run |',
    '|---|---|---|---|---|',
    ...r.methods.map(
      (m) => `| ${m.label} | ${pct(m.accuracy.mean)} ± ${pct(m.accuracy.std)} | ${pct(m.lossVsTeacher.mean)} ± ${pct(m.lossVsTeacher.std)} | ${m.accuracy.n} | ${m.seconds.mean.toFixed(0)} |`,
    ),
  ];
  if (r.claim) {
    const c = r.claim;
    const rel = c.relativeReduction === null ? 'undefined (plain KD loses nothing)' : `${(c.relativeReduction * 100).toFixed(1)}%`;
    lines.push('', `Relative claim (loss_b − loss_d) / loss_b = (${pct(c.lossKd)} − ${pct(c.lossMultilevelNoise)}) / ${pct(c.lossKd)} = ${rel}; the paper says ≥ 30%: ${c.holds === null ? 'n/a' : c.holds ? 'holds' : 'does not hold'} here.`);
  }
  return lines;
}
