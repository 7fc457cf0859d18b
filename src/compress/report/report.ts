import type { Budgets, ResolvedBudgets } from '../../config/device-profile.js';
import type { LoadContext } from '../../config/measurement.js';
import type { Figures, IterationRecord } from '../budget.js';
import { budgetTableOf, verdictOf, verdictText, type BudgetRow, type SplitInfo, type Verdict } from './budget-table.js';

export interface StageSummary {
  name: string;
  seconds: number;
  params: number;
  macs?: number;
}

/** A model's row in the report. */
export interface ReportSide extends Figures {
  macs?: number;
  /** Top-1 accuracy on the held-out test split, measured once at the end; no budget uses it. */
  testAccuracy: number | null;
}

/** Everything `edgekt compress` learned, as data (report.json); report.md is rendered from it. */
export interface CompressReport {
  version: 2;
  profile: string;
  backend: string;
  /** verdict.met: the saved model meets every budget. */
  met: boolean;
  /** Computed from budgetTable alone (verdictOf). */
  verdict: Verdict;
  /** Why the pruning loop stopped: a fact about the run, not about the saved model. */
  stopReason: string;
  budgetsSpec: Budgets;
  budgets: ResolvedBudgets;
  /** The split of every `accuracy` (history, budget table, both rows); `testAccuracy` is on `testOn`. */
  accuracyOn: SplitInfo;
  testOn: SplitInfo;
  /** The teacher as measured when the budgets were resolved. */
  teacher: ReportSide;
  /** The saved model: the figures of history[chosen], with its MACs and test accuracy. */
  student: ReportSide;
  /** Every budget against the saved model's figures. */
  budgetTable: BudgetRow[];
  /** teacher / student: > 1 means the student is smaller or faster. Latency: same run when measured side by side. */
  ratios: { params: number; modelSize: number; latencyP95: number; macs?: number };
  stages: StageSummary[];
  /** Index into history of the model written as the student. */
  chosen: number;
  history: IterationRecord[];
}

/** What buildReport needs; the student row, budget table, verdict and ratios are derived. */
export type ReportInput = Pick<CompressReport, 'profile' | 'backend' | 'stopReason' | 'budgetsSpec' | 'budgets' | 'accuracyOn' | 'testOn' | 'teacher' | 'stages' | 'chosen' | 'history'> & {
  /** What the history cannot say about the saved model: its MACs and test accuracy. */
  student: { macs?: number; testAccuracy: number | null };
};

/** Builds the report so every student figure, the budget table and the verdict describe history[chosen]. */
export function buildReport(i: ReportInput): CompressReport {
  const saved = i.history[i.chosen]!;
  const student: ReportSide = { ...saved.figures, ...i.student };
  const budgetTable = budgetTableOf(saved, i.budgets, i.budgetsSpec, i.accuracyOn);
  const verdict = verdictOf(budgetTable);
  const ratio = (a: number, b: number): number => (b > 0 ? a / b : Infinity);
  const sameRun = student.reference?.role === 'teacher' ? student.reference : undefined;
  return {
    version: 2,
    ...i,
    met: verdict.met,
    verdict,
    student,
    budgetTable,
    ratios: {
      params: ratio(i.teacher.params, student.params),
      modelSize: ratio(i.teacher.modelSizeKB, student.modelSizeKB),
      latencyP95: sameRun ? ratio(1, sameRun.ratioP95) : ratio(i.teacher.latencyP95Ms, student.latencyP95Ms),
      ...(i.teacher.macs !== undefined && student.macs !== undefined ? { macs: ratio(i.teacher.macs, student.macs) } : {}),
    },
  };
}

const fmt = (v: number | null | undefined, digits = 2): string => (v === null || v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits));
const pct = (v: number | null): string => (v === null ? '–' : `${(v * 100).toFixed(2)} %`);
const load = (l: LoadContext | undefined | null): string =>
  l ? `${fmt(l.loadAvg1Before)} → ${fmt(l.loadAvg1After)}${l.stealPct === null ? '' : `, steal ${fmt(l.stealPct, 1)} %`}` : '–';
const split = (s: SplitInfo): string => `${s.split}, ${s.samples}`;

/** report.md: summary table, budgets, per-iteration history and the chart. */
export function renderMarkdown(r: CompressReport, chartFile = 'report.svg'): string {
  const L: string[] = [];
  const t = r.teacher;
  const s = r.student;
  L.push(`# edgekt compress report`, '');
  L.push(`Profile **${r.profile}**, backend ${r.backend}: **${verdictText(r.verdict)}** (saved: iteration ${r.history[r.chosen]?.iteration} ${r.history[r.chosen]?.kind}; the loop stopped: ${r.stopReason}).`, '');
  L.push('| | teacher | student (saved) | ratio |', '|---|---:|---:|---:|');
  L.push(`| parameters | ${t.params} | ${s.params} | ${fmt(r.ratios.params, 1)}× |`);
  if (r.ratios.macs !== undefined) L.push(`| MACs | ${t.macs} | ${s.macs} | ${fmt(r.ratios.macs, 1)}× |`);
  L.push(`| size (KB) | ${fmt(t.modelSizeKB, 1)} | ${fmt(s.modelSizeKB, 1)} | ${fmt(r.ratios.modelSize, 1)}× |`);
  if (s.reference?.role === 'teacher') {
    L.push(`| latency p50 (ms), same run | ${fmt(s.reference.latencyP50Ms, 3)} | ${fmt(s.latencyP50Ms, 3)} | ${fmt(1 / s.reference.ratioP50, 2)}× |`);
    L.push(`| latency p95 (ms), same run | ${fmt(s.reference.latencyP95Ms, 3)} | ${fmt(s.latencyP95Ms, 3)} | ${fmt(r.ratios.latencyP95, 2)}× |`);
    L.push(`| teacher p95 (ms) when budgets were resolved | ${fmt(t.latencyP95Ms, 3)} | | |`);
  } else {
    L.push(`| latency p50 (ms) | ${fmt(t.latencyP50Ms, 3)} | ${fmt(s.latencyP50Ms, 3)} | |`);
    L.push(`| latency p95 (ms) | ${fmt(t.latencyP95Ms, 3)} | ${fmt(s.latencyP95Ms, 3)} | ${fmt(r.ratios.latencyP95, 2)}× |`);
  }
  if (s.latency) L.push(`| student p95 across trials (ms) | | ${fmt(s.latency.p95.min, 3)} … ${fmt(s.latency.p95.max, 3)} (IQR ${fmt(s.latency.p95.q1, 3)}–${fmt(s.latency.p95.q3, 3)}) | |`);
  L.push(`| peak memory (MB) | ${fmt(t.peakMemoryMB, 3)} | ${fmt(s.peakMemoryMB, 3)} | |`);
  L.push(`| load avg 1 min while measured | ${load(t.load)} | ${load(s.load)} | |`);
  L.push(`| accuracy (${split(r.accuracyOn)} samples; budgets use it) | ${pct(t.accuracy)} | ${pct(s.accuracy)} | |`);
  L.push(`| accuracy (${split(r.testOn)} samples; at the end) | ${pct(t.testAccuracy)} | ${pct(s.testAccuracy)} | |`, '');
  L.push('## Budgets (the saved model)', '', '| budget | profile | limit here | student | met | from |', '|---|---:|---:|---:|---|---|');
  for (const row of r.budgetTable) {
    const acc = row.budget === 'minAccuracy';
    const digits = row.budget === 'modelSizeKB' ? 1 : 3;
    const v = (x: number | null): string => (acc ? pct(x) : fmt(x, digits));
    L.push(`| ${row.budget} | ${row.spec ?? '–'} | ${v(row.limit)} | ${v(row.value)} | ${row.met ? 'yes' : '**no**'} | ${row.source} |`);
  }
  L.push('', '## Stages', '', '| stage | seconds | parameters |', '|---|---:|---:|');
  for (const st of r.stages) L.push(`| ${st.name} | ${fmt(st.seconds, 1)} | ${st.params} |`);
  L.push('', `## Pruning iterations (accuracy: ${split(r.accuracyOn)} samples)`, '');
  L.push('| # | kind | removed channels | params | p95 (ms) | reference p95 (ms) | latency readings | load avg | peak MB | size KB | accuracy | budgets |', '|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|');
  r.history.forEach((h, i) => {
    const mark = i === r.chosen ? ' ← saved' : '';
    const ok = h.check.met ? 'all met' : h.check.violations.map((v) => v.budget).join(', ');
    const d = h.latencyDecision;
    const readings = d ? `${d.readings.length}${d.readings.length > 1 ? (d.confirmed ? ', violation confirmed' : ', violation not confirmed') : ''}` : '–';
    L.push(`| ${h.iteration} | ${h.kind} | ${h.removedChannels} | ${h.figures.params} | ${fmt(h.figures.latencyP95Ms, 3)} | ${fmt(h.figures.reference?.latencyP95Ms, 3)} | ${readings} | ${fmt(h.figures.load?.loadAvg1After)} | ${fmt(h.figures.peakMemoryMB, 3)} | ${fmt(h.figures.modelSizeKB, 1)} | ${pct(h.figures.accuracy)} | ${ok}${mark} |`);
  });
  L.push('', `![accuracy against latency per iteration](${chartFile})`, '');
  return L.join('\n');
}
