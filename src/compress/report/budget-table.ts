import type { Budgets, ResolvedBudgets } from '../../config/device-profile.js';
import { budgetRows, type BudgetName, type IterationRecord } from '../budget.js';

/** Where an accuracy figure comes from: budgets are checked on one split only. */
export interface SplitInfo {
  split: 'validation' | 'test';
  samples: number;
}

/** One row of the report's budget table: a budget against the saved model's own figures. */
export interface BudgetRow {
  budget: BudgetName;
  /** As the profile writes it ("0.5x", 25, 0.9). */
  spec: string | number | null;
  /** The limit applied to the saved model (relative latency: the factor × the teacher of the same run). */
  limit: number;
  value: number | null;
  met: boolean;
  /** How value was obtained, e.g. "validation, 1000 samples" or "side by side with the teacher, 5 trials". */
  source: string;
}

/** What the report says about the saved model, computed from its budget table alone. */
export interface Verdict {
  met: boolean;
  missed: BudgetName[];
}

const SPEC_KEY: Record<BudgetName, keyof Budgets> = {
  latencyP95Ms: 'latencyP95',
  peakMemoryMB: 'peakMemoryMB',
  modelSizeKB: 'modelSizeKB',
  minAccuracy: 'minAccuracy',
};

/**
 * The budget table of the saved model: every value from its own history record (the figures the
 * loop decided on), so the table, the student row and the verdict cannot describe different models.
 */
export function budgetTableOf(saved: IterationRecord, budgets: ResolvedBudgets, spec: Budgets, accuracyOn: SplitInfo): BudgetRow[] {
  const f = saved.figures;
  const trials = f.latency ? `, median of ${f.latency.trials} trials` : '';
  const latencySource = f.reference
    ? `p95 side by side with the ${f.reference.role === 'teacher' ? 'teacher' : 'unpruned student'} (${f.reference.latencyP95Ms.toFixed(3)} ms, same run${trials})`
    : `p95${trials}`;
  return budgetRows(f, budgets).map((r) => ({
    ...r,
    spec: spec[SPEC_KEY[r.budget]] ?? null,
    source: r.budget === 'latencyP95Ms' ? latencySource : r.budget === 'minAccuracy' ? `${accuracyOn.split}, ${accuracyOn.samples} samples` : 'measured',
  }));
}

/** The verdict line's content: met iff every row of the table is met. Pure. */
export function verdictOf(table: readonly BudgetRow[]): Verdict {
  const missed = table.filter((r) => !r.met).map((r) => r.budget);
  return { met: missed.length === 0, missed };
}

const NAMES: Record<BudgetName, string> = { latencyP95Ms: 'latency p95', peakMemoryMB: 'peak memory', modelSizeKB: 'size', minAccuracy: 'accuracy' };

/** The report's headline, from the verdict only. */
export function verdictText(v: Verdict): string {
  return v.met ? 'every budget met' : `budget unreachable: the saved (closest) model misses ${v.missed.map((b) => NAMES[b]).join(', ')}`;
}
