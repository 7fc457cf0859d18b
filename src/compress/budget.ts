import type * as tf from '@tensorflow/tfjs';
import type { ModelCost, ResolvedBudgets } from '../config/device-profile.js';
import { systemClock, type Clock } from '../core/clock.js';
import { applyPlan, buildDependencyGraph, groupImportance, pruneStep, type ImportanceKind, type PrunePlan } from './prune/index.js';

/**
 * Measures a model on this device. bench/ implements it (createLatencyProbe); compress/ only sees
 * this interface, so tests can pass a deterministic fake.
 */
export interface CostProbe {
  measure(model: tf.LayersModel): Promise<ModelCost>;
}

export interface Figures extends ModelCost {
  /** Top-1 accuracy on the evaluation split, or null without labels. */
  accuracy: number | null;
}

export type BudgetName = 'latencyP95Ms' | 'peakMemoryMB' | 'modelSizeKB' | 'minAccuracy';

export interface BudgetViolation {
  budget: BudgetName;
  limit: number;
  value: number;
}

export interface BudgetCheck {
  met: boolean;
  /** Resource budgets only (latency, memory, size): what pruning can still improve. */
  resourcesMet: boolean;
  violations: BudgetViolation[];
  /** Sum of relative excesses over the violated budgets; 0 when met. Ranks "closest" models. */
  distance: number;
}

/** Compares measured figures with absolute budgets. */
export function checkBudgets(f: Figures, b: ResolvedBudgets): BudgetCheck {
  const violations: BudgetViolation[] = [];
  const over = (budget: BudgetName, value: number, limit: number | undefined): void => {
    if (limit !== undefined && value > limit) violations.push({ budget, limit, value });
  };
  over('latencyP95Ms', f.latencyP95Ms, b.latencyP95Ms);
  over('peakMemoryMB', f.peakMemoryMB, b.peakMemoryMB);
  over('modelSizeKB', f.modelSizeKB, b.modelSizeKB);
  if (b.minAccuracy !== undefined && (f.accuracy === null || f.accuracy < b.minAccuracy)) {
    violations.push({ budget: 'minAccuracy', limit: b.minAccuracy, value: f.accuracy ?? 0 });
  }
  const distance = violations.reduce(
    (a, v) => a + (v.budget === 'minAccuracy' ? (v.limit - v.value) / v.limit : (v.value - v.limit) / v.limit),
    0,
  );
  return { met: violations.length === 0, resourcesMet: violations.every((v) => v.budget === 'minAccuracy'), violations, distance };
}

export interface FineTuneRequest {
  iteration: number;
  /** 'brief' after each pruning step, 'final' once the resource budgets hold. */
  kind: 'brief' | 'final';
}

/** Trains the student in place (KD from the teacher, or plain CE): swapped by the pipeline. */
export type FineTuner = (student: tf.LayersModel, request: FineTuneRequest) => Promise<void>;

export interface IterationRecord {
  iteration: number;
  kind: 'start' | 'prune' | 'final';
  /** The plan applied in this iteration (null for start/final): replayable history. */
  plan: PrunePlan | null;
  removedChannels: number;
  figures: Figures;
  check: BudgetCheck;
  seconds: number;
  /** Latency-aware mode: the lookup tables this iteration's ranking used. */
  latencyTables?: LatencyTable[];
}

export interface PruneLoopOptions {
  budgets: ResolvedBudgets;
  probe: CostProbe;
  fineTune: FineTuner;
  evaluate: (model: tf.LayersModel) => number | null;
  /** Share of the remaining prunable channels cut per iteration. Default 0.1. */
  stepFraction?: number;
  maxIterations?: number;
  importance?: ImportanceKind;
  minChannels?: number;
  roundTo?: number;
  skipLayers?: readonly string[];
  /** Extra measurements (keeping the fastest) before a latency violation is believed. Default 2. */
  remeasure?: number;
  /**
   * NetAdapt-style: before each cut, measure every group's latency at several channel counts
   * (LatencyTable) and rank channels by importance lost per millisecond saved.
   */
  latencyAware?: boolean;
  /** Called after each record with the model it describes (checkpoints, progress); may throw to abort. */
  onIteration?: (record: IterationRecord, model: tf.LayersModel, history: readonly IterationRecord[]) => Promise<void> | void;
  /** Resume: the history so far, the model of its last record and the closest model so far. */
  resume?: { history: IterationRecord[]; model: tf.LayersModel; closest: tf.LayersModel | null };
  clock?: Clock;
}

export interface PruneLoopResult {
  /** The final model when every budget holds, otherwise the closest one. The caller owns it. */
  model: tf.LayersModel;
  met: boolean;
  history: IterationRecord[];
  /** Index in history of the returned model's record. */
  chosen: number;
  stopReason: string;
}

/**
 * NetAdapt-style lookup table of one channel group: batch-1 latency p50 of the whole model with only
 * this group cut to `keep` channels (the most important ones), measured on this device, at several
 * channel counts. `keep === size` is the uncut model.
 */
export interface LatencyTable {
  key: string;
  size: number;
  points: Array<{ keep: number; latencyMs: number }>;
}

/** Shares of a group's channels kept in the lookup tables' measurements. */
export const LATENCY_TABLE_KEEP = [0.75, 0.5, 0.25] as const;

/** Measures a lookup table per prunable group (several channel counts each; see LatencyTable). */
export async function latencyTables(model: tf.LayersModel, probe: CostProbe, o: Pick<PruneLoopOptions, 'skipLayers' | 'importance' | 'minChannels' | 'roundTo'>): Promise<LatencyTable[]> {
  const graph = buildDependencyGraph(model, { skipLayers: o.skipLayers ?? [] });
  const base = (await probe.measure(model)).latencyP50Ms;
  const minKeep = o.minChannels ?? 4;
  const roundTo = Math.max(1, o.roundTo ?? 1);
  const tables: LatencyTable[] = [];
  for (const gi of groupImportance(model, graph, o.importance ?? 'l1')) {
    const size = gi.scores.length;
    const order = Array.from(gi.scores.keys()).sort((a, b) => gi.scores[b]! - gi.scores[a]!);
    const counts = new Set<number>();
    for (const share of LATENCY_TABLE_KEEP) {
      const keep = Math.max(minKeep, Math.round((share * size) / roundTo) * roundTo);
      if (keep < size) counts.add(keep);
    }
    const points = [{ keep: size, latencyMs: base }];
    for (const keep of [...counts].sort((a, b) => b - a)) {
      const idx = order.slice(0, keep).sort((a, b) => a - b);
      const variant = await applyPlan(model, { version: 1, groups: [{ key: gi.key, size, keep: idx }] }, { skipLayers: o.skipLayers ?? [] });
      try {
        points.push({ keep, latencyMs: (await probe.measure(variant)).latencyP50Ms });
      } finally {
        variant.dispose();
      }
    }
    if (points.length > 1) tables.push({ key: gi.key, size, points });
  }
  return tables;
}

/**
 * Milliseconds a table says cutting `removed` channels saves, interpolating linearly between its
 * measured channel counts (and extrapolating the last segment); never below 0.
 */
export function latencySaved(t: LatencyTable, removed: number): number {
  const pts = [...t.points].sort((a, b) => b.keep - a.keep);
  const base = pts[0]!.latencyMs;
  const keep = t.size - removed;
  let i = 1;
  while (i < pts.length - 1 && pts[i]!.keep > keep) i++;
  const a = pts[i - 1]!;
  const b = pts[i]!;
  const lat = a.keep === b.keep ? b.latencyMs : a.latencyMs + ((a.keep - keep) / (a.keep - b.keep)) * (b.latencyMs - a.latencyMs);
  return Math.max(0, base - lat);
}

/** Per-channel latency cost of each group for a step that cuts `fraction` of its channels. */
export function costPerChannelFrom(tables: readonly LatencyTable[], fraction: number): Map<string, number> {
  const costs = new Map<string, number>();
  for (const t of tables) {
    const removed = Math.max(1, Math.round(fraction * t.size));
    costs.set(t.key, Math.max(1e-4, latencySaved(t, removed) / removed));
  }
  return costs;
}

/**
 * Share of channels to cut next. The configured step, except when the model size is the only
 * resource budget still violated: size follows from the channel counts, so cut about what is needed
 * (parameters taken to scale with channels^1.5, between depthwise/first-layer ~c and pointwise ~c²,
 * plus 10 %) instead of overshooting by a whole step. Never below 1 %.
 */
export function nextStepFraction(check: BudgetCheck, step: number): number {
  const resource = check.violations.filter((v) => v.budget !== 'minAccuracy');
  if (resource.length !== 1 || resource[0]!.budget !== 'modelSizeKB') return step;
  const { limit, value } = resource[0]!;
  const needed = 1 - Math.pow(limit / value, 1 / 1.5);
  return Math.min(step, Math.max(0.01, 1.1 * needed));
}

/**
 * Global iterative pruning against measured budgets: cut the least important channels, fine-tune
 * briefly, measure on this device, repeat until the resource budgets hold; then fine-tune longer
 * and check every budget. Returns the final model if it meets them, else the closest one seen.
 */
export async function runPruneLoop(start: tf.LayersModel, o: PruneLoopOptions): Promise<PruneLoopResult> {
  const clock = o.clock ?? systemClock;
  const maxIterations = o.maxIterations ?? 30;
  const history: IterationRecord[] = o.resume ? [...o.resume.history] : [];
  let current = o.resume?.model ?? start;
  let closest: tf.LayersModel | null = o.resume?.closest ?? null;
  let closestIndex = history.length ? history.reduce((b, r, i, h) => (r.check.distance < h[b]!.check.distance ? i : b), 0) : -1;
  const owned = new Set<tf.LayersModel>([current, ...(closest ? [closest] : [])]);
  owned.delete(start);
  /** Frees a model the loop created once nothing refers to it any more. */
  const release = (m: tf.LayersModel | null): void => {
    if (!m || m === start || m === current || m === closest || !owned.has(m)) return;
    m.dispose();
    owned.delete(m);
  };

  const figuresOf = async (m: tf.LayersModel): Promise<Figures> => {
    let cost = await o.probe.measure(m);
    // Background load only ever adds latency: confirm a latency violation before believing it.
    for (let i = 0; i < (o.remeasure ?? 2) && o.budgets.latencyP95Ms !== undefined && cost.latencyP95Ms > o.budgets.latencyP95Ms; i++) {
      const again = await o.probe.measure(m);
      if (again.latencyP95Ms < cost.latencyP95Ms) cost = again;
    }
    return { ...cost, accuracy: o.evaluate(m) };
  };
  const record = async (r: Omit<IterationRecord, 'check' | 'seconds'>, t0: number, m: tf.LayersModel): Promise<IterationRecord> => {
    const full: IterationRecord = { ...r, check: checkBudgets(r.figures, o.budgets), seconds: (clock.hrMs() - t0) / 1000 };
    history.push(full);
    if (closestIndex < 0 || full.check.distance < history[closestIndex]!.check.distance) {
      closestIndex = history.length - 1;
      const old = closest;
      closest = m;
      release(old);
    }
    await o.onIteration?.(full, m, history);
    return full;
  };

  let last: IterationRecord;
  let stopReason = 'resource budgets hold';
  try {
    if (history.length === 0) {
      const t0 = clock.hrMs();
      last = await record({ iteration: 0, kind: 'start', plan: null, removedChannels: 0, figures: await figuresOf(current) }, t0, current);
    } else last = history[history.length - 1]!;

    while (last.kind !== 'final' && !last.check.resourcesMet) {
      if (last.iteration >= maxIterations) {
        stopReason = `stopped after ${maxIterations} iterations`;
        break;
      }
      const t0 = clock.hrMs();
      const tables = o.latencyAware ? await latencyTables(current, o.probe, o) : undefined;
      const cut = async (fraction: number): ReturnType<typeof pruneStep> =>
        pruneStep(current, {
          fraction,
          importance: o.importance,
          minChannels: o.minChannels,
          roundTo: o.roundTo,
          skipLayers: o.skipLayers,
          costPerChannel: tables ? costPerChannelFrom(tables, fraction) : undefined,
        });
      const configured = o.stepFraction ?? 0.1;
      const fraction = nextStepFraction(last.check, configured);
      let step = await cut(fraction);
      // A just-enough step can round to no channel at all in a small model: take a whole step then.
      if (step.removedChannels === 0 && fraction < configured) {
        step.model.dispose();
        step = await cut(configured);
      }
      if (step.removedChannels === 0) {
        step.model.dispose();
        stopReason = 'nothing left to prune within the limits';
        break;
      }
      owned.add(step.model);
      const iteration = last.iteration + 1;
      await o.fineTune(step.model, { iteration, kind: 'brief' });
      const prev = current;
      current = step.model;
      last = await record({ iteration, kind: 'prune', plan: step.plan, removedChannels: step.removedChannels, figures: await figuresOf(current), ...(tables ? { latencyTables: tables } : {}) }, t0, current);
      release(prev);
    }
    if (last.kind !== 'final' && last.check.resourcesMet) {
      const t0 = clock.hrMs();
      await o.fineTune(current, { iteration: last.iteration + 1, kind: 'final' });
      last = await record({ iteration: last.iteration + 1, kind: 'final', plan: null, removedChannels: 0, figures: await figuresOf(current) }, t0, current);
    }
  } catch (e) {
    // An abort (or failure) mid-loop: free every model the loop made; checkpoints hold the progress.
    for (const m of owned) if (m !== start) m.dispose();
    throw e;
  }
  if (last.kind === 'final') stopReason = last.check.met ? 'every budget holds' : 'resource budgets hold but accuracy does not';
  const met = last.check.met;
  const chosenModel = met ? current : closest ?? current;
  const chosen = met ? history.length - 1 : closestIndex;
  for (const m of owned) if (m !== chosenModel && m !== start) m.dispose();
  return { model: chosenModel, met, history, chosen, stopReason };
}
