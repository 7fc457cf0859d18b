import type { Budgets, ResolvedBudgets } from '../../config/device-profile.js';
import type { Figures, IterationRecord } from '../budget.js';

export interface StageSummary {
  name: string;
  seconds: number;
  params: number;
  macs?: number;
}

/** Everything `edgekt compress` learned, as data (report.json); report.md is rendered from it. */
export interface CompressReport {
  version: 1;
  profile: string;
  backend: string;
  met: boolean;
  stopReason: string;
  budgetsSpec: Budgets;
  budgets: ResolvedBudgets;
  teacher: Figures & { macs?: number };
  student: Figures & { macs?: number };
  /** teacher / student: > 1 means the student is smaller or faster. */
  ratios: { params: number; modelSize: number; latencyP95: number; macs?: number };
  stages: StageSummary[];
  /** Index into history of the model written as the student. */
  chosen: number;
  history: IterationRecord[];
}

/** What buildReport needs: the report less what it derives (version, ratios). */
export type ReportInput = Omit<CompressReport, 'version' | 'ratios'>;

export function buildReport(i: ReportInput): CompressReport {
  const ratio = (a: number, b: number): number => (b > 0 ? a / b : Infinity);
  return {
    version: 1,
    ...i,
    ratios: {
      params: ratio(i.teacher.params, i.student.params),
      modelSize: ratio(i.teacher.modelSizeKB, i.student.modelSizeKB),
      latencyP95: ratio(i.teacher.latencyP95Ms, i.student.latencyP95Ms),
      ...(i.teacher.macs !== undefined && i.student.macs !== undefined ? { macs: ratio(i.teacher.macs, i.student.macs) } : {}),
    },
  };
}

const fmt = (v: number | null | undefined, digits = 2): string => (v === null || v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits));
const pct = (v: number | null): string => (v === null ? '–' : `${(v * 100).toFixed(2)} %`);

/** report.md: summary table, budgets, per-iteration history and the chart. */
export function renderMarkdown(r: CompressReport, chartFile = 'report.svg'): string {
  const L: string[] = [];
  L.push(`# edgekt compress report`, '');
  L.push(`Profile **${r.profile}**, backend ${r.backend}: **${r.met ? 'every budget met' : 'budget unreachable (closest model saved)'}** — ${r.stopReason}.`, '');
  L.push('| | teacher | student | ratio |', '|---|---:|---:|---:|');
  L.push(`| parameters | ${r.teacher.params} | ${r.student.params} | ${fmt(r.ratios.params, 1)}× |`);
  if (r.ratios.macs !== undefined) L.push(`| MACs | ${r.teacher.macs} | ${r.student.macs} | ${fmt(r.ratios.macs, 1)}× |`);
  L.push(`| size (KB) | ${fmt(r.teacher.modelSizeKB, 1)} | ${fmt(r.student.modelSizeKB, 1)} | ${fmt(r.ratios.modelSize, 1)}× |`);
  L.push(`| latency p50 (ms) | ${fmt(r.teacher.latencyP50Ms, 3)} | ${fmt(r.student.latencyP50Ms, 3)} | |`);
  L.push(`| latency p95 (ms) | ${fmt(r.teacher.latencyP95Ms, 3)} | ${fmt(r.student.latencyP95Ms, 3)} | ${fmt(r.ratios.latencyP95, 2)}× |`);
  L.push(`| peak memory (MB) | ${fmt(r.teacher.peakMemoryMB, 3)} | ${fmt(r.student.peakMemoryMB, 3)} | |`);
  L.push(`| accuracy | ${pct(r.teacher.accuracy)} | ${pct(r.student.accuracy)} | |`, '');
  L.push('## Budgets', '', '| budget | profile | limit here | student |', '|---|---:|---:|---:|');
  const b = r.budgets;
  const s = r.budgetsSpec;
  if (b.latencyP95Ms !== undefined) L.push(`| latency p95 (ms) | ${s.latencyP95} | ${fmt(b.latencyP95Ms, 3)} | ${fmt(r.student.latencyP95Ms, 3)} |`);
  if (b.peakMemoryMB !== undefined) L.push(`| peak memory (MB) | ${s.peakMemoryMB} | ${fmt(b.peakMemoryMB, 3)} | ${fmt(r.student.peakMemoryMB, 3)} |`);
  if (b.modelSizeKB !== undefined) L.push(`| size (KB) | ${s.modelSizeKB} | ${fmt(b.modelSizeKB, 1)} | ${fmt(r.student.modelSizeKB, 1)} |`);
  if (b.minAccuracy !== undefined) L.push(`| min accuracy | ${s.minAccuracy} | ${pct(b.minAccuracy)} | ${pct(r.student.accuracy)} |`);
  L.push('', '## Stages', '', '| stage | seconds | parameters |', '|---|---:|---:|');
  for (const st of r.stages) L.push(`| ${st.name} | ${fmt(st.seconds, 1)} | ${st.params} |`);
  L.push('', '## Pruning iterations', '', '| # | kind | removed channels | params | p95 (ms) | peak MB | size KB | accuracy | budgets |', '|---:|---|---:|---:|---:|---:|---:|---:|---|');
  r.history.forEach((h, i) => {
    const mark = i === r.chosen ? ' ← saved' : '';
    const ok = h.check.met ? 'all met' : h.check.violations.map((v) => v.budget).join(', ');
    L.push(`| ${h.iteration} | ${h.kind} | ${h.removedChannels} | ${h.figures.params} | ${fmt(h.figures.latencyP95Ms, 3)} | ${fmt(h.figures.peakMemoryMB, 3)} | ${fmt(h.figures.modelSizeKB, 1)} | ${pct(h.figures.accuracy)} | ${ok}${mark} |`);
  });
  L.push('', `![accuracy against latency per iteration](${chartFile})`, '');
  return L.join('\n');
}
