import type * as tf from '@tensorflow/tfjs';
import type { ResolvedBudgets } from '../config/device-profile.js';
import type { ModelCost, PairedCost } from '../config/measurement.js';
import { systemClock, type Clock } from '../core/clock.js';
import { latencyLimitOf, measureForDecision, type LatencyDecision, type SideBySide } from './latency-check.js';
import { costPerChannelFrom, latencyTables, type LatencyTable } from './latency-tables.js';
import { pruneStep, type ImportanceKind, type PrunePlan } from './prune/index.js';

export * from './latency-tables.js';
export * from './latency-check.js';

/**
 * Measures a model on this device. bench/ implements it (createLatencyProbe); compress/ only sees
 * this interface, so tests can pass a deterministic fake.
 */
export interface CostProbe {
  /** Robust figures of one model: medians over several trials, spread and load kept. */
  measure(model: tf.LayersModel): Promise<ModelCost>;
  /**
   * The candidate and a reference in alternating trials of one run, so both see the same load:
   * what every latency budget decision rests on.
   */
  compare(candidate: tf.LayersModel, reference: tf.LayersModel): Promise<PairedCost>;
}

export interface Figures extends ModelCost {
  /** Top-1 accuracy on the loop's evaluation split (validation when there is one), or null without labels. */
  accuracy: number | null;
  /** The reference measured in the same interleaved run (present when a latency budget applies). */
  reference?: SideBySide;
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

/** One budget against one model's figures: the limit that applies to them and the figure held to it. */
export interface BudgetRowCheck {
  budget: BudgetName;
  limit: number;
  /** null: no figure (accuracy without labels), which misses the budget. */
  value: number | null;
  met: boolean;
}

/**
 * Each budget that is set, checked against the figures: latency against the limit that applies to
 * them (a relative budget × the teacher of the same run), accuracy as a minimum, the rest as maxima.
 */
export function budgetRows(f: Figures, b: ResolvedBudgets): BudgetRowCheck[] {
  const rows: BudgetRowCheck[] = [];
  const max = (budget: BudgetName, value: number, limit: number | undefined): void => {
    if (limit !== undefined) rows.push({ budget, limit, value, met: value <= limit });
  };
  max('latencyP95Ms', f.latencyP95Ms, latencyLimitOf(f, b));
  max('peakMemoryMB', f.peakMemoryMB, b.peakMemoryMB);
  max('modelSizeKB', f.modelSizeKB, b.modelSizeKB);
  if (b.minAccuracy !== undefined) rows.push({ budget: 'minAccuracy', limit: b.minAccuracy, value: f.accuracy, met: f.accuracy !== null && f.accuracy >= b.minAccuracy });
  return rows;
}

/** Compares measured figures with the budgets (see budgetRows). */
export function checkBudgets(f: Figures, b: ResolvedBudgets): BudgetCheck {
  const violations: BudgetViolation[] = budgetRows(f, b)
    .filter((r) => !r.met)
    .map((r) => ({ budget: r.budget, limit: r.limit, value: r.value ?? 0 }));
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
  /** With a latency budget: the side-by-side readings the latency verdict rests on. */
  latencyDecision?: LatencyDecision;
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
  /**
   * The model relative budgets refer to (the teacher): every latency decision measures the
   * candidate side by side with it. Without it, the start model is the side-by-side reference and
   * relative latency budgets fall back to their resolved absolute limit.
   */
  teacher?: tf.LayersModel;
  /** Side-by-side re-measures a latency violation must survive before it is believed. Default 2. */
  confirmations?: number;
  /**
   * NetAdapt-style: before each cut, measure every group's latency at several channel counts
   * (LatencyTable) and rank channels by importance lost per millisecond saved.
   */
  latencyAware?: boolean;
  /**
   * More final fine-tunes when the final model misses only the accuracy budget: each continues
   * training the same model, and they stop as soon as one gains no accuracy. Default 2.
   */
  extraFinals?: number;
  /** Called after each record with the model it describes (checkpoints, progress); may throw to abort. */
  onIteration?: (record: IterationRecord, model: tf.LayersModel, history: readonly IterationRecord[]) => Promise<void> | void;
  /** Resume: the history so far, the model of its last record and the closest model so far. */
  resume?: { history: IterationRecord[]; model: tf.LayersModel; closest: tf.LayersModel | null };
  clock?: Clock;
}

export interface PruneLoopResult {
  /** The final model when every budget holds, otherwise the closest one. The caller owns it. */
  model: tf.LayersModel;
  /** history[chosen].check.met: the verdict of the returned model, never of another iteration. */
  met: boolean;
  history: IterationRecord[];
  /** Index in history of the returned model's record. */
  chosen: number;
  stopReason: string;
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

/** True until a final fine-tune gains no accuracy over the one before it. */
function gainedAccuracy(finals: readonly IterationRecord[]): boolean {
  if (finals.length < 2) return true;
  const [a, b] = [finals[finals.length - 2]!.figures.accuracy, finals[finals.length - 1]!.figures.accuracy];
  return a === null || b === null || b > a;
}

/**
 * Index of the closest record so far (least distance, first wins), as the loop tracks it: the final
 * fine-tune trains the last pruned model in place, so when that model was the closest its record no
 * longer describes its weights, and the final record (same model, better trained) takes its place.
 * -1 for an empty history.
 */
export function closestIndexOf(history: readonly IterationRecord[]): number {
  let ci = -1;
  history.forEach((r, i) => {
    if (ci < 0 || r.check.distance < history[ci]!.check.distance || (r.kind === 'final' && ci === i - 1)) ci = i;
  });
  return ci;
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
  let closestIndex = closestIndexOf(history);
  const owned = new Set<tf.LayersModel>([current, ...(closest ? [closest] : [])]);
  owned.delete(start);
  /** Frees a model the loop created once nothing refers to it any more. */
  const release = (m: tf.LayersModel | null): void => {
    if (!m || m === start || m === current || m === closest || !owned.has(m)) return;
    m.dispose();
    owned.delete(m);
  };

  const judge = { probe: o.probe, budgets: o.budgets, reference: o.teacher ?? start, role: o.teacher ? ('teacher' as const) : ('start' as const), confirmations: o.confirmations ?? 2 };
  /** Figures of a model and how its latency verdict was reached (side by side, confirmed). */
  const measured = async (m: tf.LayersModel): Promise<Pick<IterationRecord, 'figures' | 'latencyDecision'>> => {
    const r = await measureForDecision(m, judge);
    const figures: Figures = { ...r.cost, accuracy: o.evaluate(m), ...(r.reference ? { reference: r.reference } : {}) };
    return { figures, ...(r.latencyDecision ? { latencyDecision: r.latencyDecision } : {}) };
  };
  const record = async (r: Omit<IterationRecord, 'check' | 'seconds'>, t0: number, m: tf.LayersModel): Promise<IterationRecord> => {
    const full: IterationRecord = { ...r, check: checkBudgets(r.figures, o.budgets), seconds: (clock.hrMs() - t0) / 1000 };
    history.push(full);
    if (closestIndex < 0 || full.check.distance < history[closestIndex]!.check.distance || closest === m) {
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
      last = await record({ iteration: 0, kind: 'start', plan: null, removedChannels: 0, ...(await measured(current)) }, t0, current);
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
      last = await record({ iteration, kind: 'prune', plan: step.plan, removedChannels: step.removedChannels, ...(await measured(current)), ...(tables ? { latencyTables: tables } : {}) }, t0, current);
      release(prev);
    }
    if (last.kind !== 'final' && last.check.resourcesMet) {
      const t0 = clock.hrMs();
      await o.fineTune(current, { iteration: last.iteration + 1, kind: 'final' });
      last = await record({ iteration: last.iteration + 1, kind: 'final', plan: null, removedChannels: 0, ...(await measured(current)) }, t0, current);
    }
    // Accuracy is the one budget more training can still win: go on while it misses and gains.
    const finals = history.filter((r) => r.kind === 'final');
    while (last.kind === 'final' && !last.check.met && last.check.resourcesMet && finals.length <= (o.extraFinals ?? 2) && gainedAccuracy(finals)) {
      const t0 = clock.hrMs();
      await o.fineTune(current, { iteration: last.iteration + 1, kind: 'final' });
      last = await record({ iteration: last.iteration + 1, kind: 'final', plan: null, removedChannels: 0, ...(await measured(current)) }, t0, current);
      finals.push(last);
    }
  } catch (e) {
    // An abort (or failure) mid-loop: free every model the loop made; checkpoints hold the progress.
    for (const m of owned) if (m !== start) m.dispose();
    throw e;
  }
  if (last.kind === 'final') stopReason = last.check.met ? 'every budget holds' : `the final model misses ${last.check.violations.map((v) => v.budget).join(', ')}`;
  // The verdict is the returned model's own: the final when it meets every budget, else the closest.
  const finalMet = last.check.met;
  const chosenModel = finalMet ? current : closest ?? current;
  const chosen = finalMet ? history.length - 1 : closestIndex;
  const met = history[chosen]!.check.met;
  for (const m of owned) if (m !== chosenModel && m !== start) m.dispose();
  return { model: chosenModel, met, history, chosen, stopReason };
}
