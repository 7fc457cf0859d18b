import type * as tf from '@tensorflow/tfjs';
import type { ResolvedBudgets } from '../config/device-profile.js';
import type { LatencyStats, LoadContext, ModelCost, PairedCost } from '../config/measurement.js';
import type { CostProbe, Figures } from './budget.js';

/** The reference as measured in the same interleaved run as a candidate's figures. */
export interface SideBySide {
  /** 'teacher': relative budgets refer to it; 'start': the unpruned student, for context only. */
  role: 'teacher' | 'start';
  latencyP50Ms: number;
  latencyP95Ms: number;
  latency?: LatencyStats;
  /** candidate / reference, same run. */
  ratioP95: number;
  ratioP50: number;
}

/** One side-by-side latency reading of a candidate, and whether it was over its limit. */
export interface LatencyReading {
  p95Ms: number;
  p50Ms: number;
  referenceP95Ms: number;
  limitMs: number;
  over: boolean;
  load: LoadContext | null;
}

/**
 * How a latency verdict was reached: the readings taken (a violation is re-measured), the one the
 * figures come from, and whether a violation stood in every reading.
 */
export interface LatencyDecision {
  readings: LatencyReading[];
  /** Index in readings of the reading the figures come from: the least over its limit. */
  decisive: number;
  /** Every reading was over its limit: the violation was confirmed, not a single noisy read. */
  confirmed: boolean;
}

/**
 * The p95 limit figures are held to: a relative budget times the teacher measured in the same run
 * (so load that slows both cancels out), else the absolute limit.
 */
export function latencyLimitOf(f: Pick<Figures, 'reference'>, b: ResolvedBudgets): number | undefined {
  if (b.latencyP95Ratio !== undefined && f.reference?.role === 'teacher') return b.latencyP95Ratio * f.reference.latencyP95Ms;
  return b.latencyP95Ms;
}

export function sideBySideOf(p: PairedCost, role: SideBySide['role']): SideBySide {
  const r = p.reference;
  return { role, latencyP50Ms: r.latencyP50Ms, latencyP95Ms: r.latencyP95Ms, ...(r.latency ? { latency: r.latency } : {}), ratioP95: p.ratioP95, ratioP50: p.ratioP50 };
}

export interface LatencyJudge {
  probe: CostProbe;
  budgets: ResolvedBudgets;
  reference: tf.LayersModel;
  role: SideBySide['role'];
  /** Side-by-side re-measures a latency violation must survive before it is believed. */
  confirmations: number;
}

/**
 * Measures a model for a budget decision. Without a latency budget: one robust measurement. With
 * one: the model side by side with the reference; a reading over the limit is re-measured (again
 * side by side) up to `confirmations` times and believed only if every reading is over. Background
 * load only adds latency, so the figures come from the reading least over its limit.
 */
export async function measureForDecision(m: tf.LayersModel, j: LatencyJudge): Promise<{ cost: ModelCost; reference?: SideBySide; latencyDecision?: LatencyDecision }> {
  if (j.budgets.latencyP95Ms === undefined && j.budgets.latencyP95Ratio === undefined) return { cost: await j.probe.measure(m) };
  const taken: Array<{ pair: PairedCost; side: SideBySide; reading: LatencyReading }> = [];
  for (let i = 0; i <= j.confirmations; i++) {
    const pair = await j.probe.compare(m, j.reference);
    const side = sideBySideOf(pair, j.role);
    const limitMs = latencyLimitOf({ reference: side }, j.budgets)!;
    const c = pair.candidate;
    const reading = { p95Ms: c.latencyP95Ms, p50Ms: c.latencyP50Ms, referenceP95Ms: side.latencyP95Ms, limitMs, over: c.latencyP95Ms > limitMs, load: c.load ?? null };
    taken.push({ pair, side, reading });
    if (!reading.over) break;
  }
  const excess = (r: LatencyReading): number => r.p95Ms / r.limitMs;
  const decisive = taken.reduce((b, t, i) => (excess(t.reading) < excess(taken[b]!.reading) ? i : b), 0);
  const readings = taken.map((t) => t.reading);
  return {
    cost: taken[decisive]!.pair.candidate,
    reference: taken[decisive]!.side,
    latencyDecision: { readings, decisive, confirmed: readings.every((r) => r.over) },
  };
}

/**
 * A probe that measures each candidate in another form (the deployment form: BN folded) while the
 * reference is measured as given.
 */
export function deployedProbe(probe: CostProbe, deploy: (m: tf.LayersModel) => Promise<tf.LayersModel>): CostProbe {
  const withDeployed = async <T>(m: tf.LayersModel, f: (d: tf.LayersModel) => Promise<T>): Promise<T> => {
    const d = await deploy(m);
    try {
      return await f(d);
    } finally {
      d.dispose();
    }
  };
  return {
    measure: (m) => withDeployed(m, (d) => probe.measure(d)),
    compare: (c, r) => withDeployed(c, (d) => probe.compare(d, r)),
  };
}
