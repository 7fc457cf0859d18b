import { EdgektError } from '../../core/errors.js';
import type { DependencyGraph } from '../../model/dependency-graph.js';
import type { GroupImportance } from './importance.js';

/** One group's decision: which channel indices (of its current `size`) survive. */
export interface GroupPlan {
  key: string;
  size: number;
  keep: number[];
}

/**
 * A pruning plan is plain data: it names groups by their producer layers, so it can be checked,
 * stored in a checkpoint and replayed on the same architecture.
 */
export interface PrunePlan {
  version: 1;
  groups: GroupPlan[];
}

export interface PruneLimits {
  /** Never keep fewer channels than this in a group. Default 4. */
  minChannels?: number;
  /** Kept counts are multiples of this (SIMD-friendly), unless the group keeps everything. Default 1. */
  roundTo?: number;
}

export interface GlobalPlanOptions extends PruneLimits {
  /** Fraction of all prunable channels to remove in this step, in (0, 1). */
  fraction: number;
  /** Optional per-group cost weight: scores are divided by it (latency-aware ranking). */
  costPerChannel?: ReadonlyMap<string, number>;
}

function roundUp(k: number, size: number, roundTo: number): number {
  return Math.min(size, Math.ceil(k / roundTo) * roundTo);
}

function topIndices(scores: Float32Array, k: number): number[] {
  const idx = Array.from(scores.keys());
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

/**
 * Global ranking: every prunable channel of every group competes on its normalised score, the
 * least important go first until `fraction` of the prunable channels are gone, within the limits.
 */
export function planGlobal(importance: readonly GroupImportance[], options: GlobalPlanOptions): PrunePlan {
  const minChannels = Math.max(1, options.minChannels ?? 4);
  const roundTo = Math.max(1, options.roundTo ?? 1);
  if (!(options.fraction > 0 && options.fraction < 1)) {
    throw new EdgektError('EDGEKT_ERR_PRUNE_PLAN', `fraction must be in (0, 1), got ${options.fraction}`);
  }
  const total = importance.reduce((a, g) => a + g.scores.length, 0);
  const target = Math.round(options.fraction * total);
  const cands: Array<{ g: number; c: number; s: number }> = [];
  importance.forEach((gi, g) => {
    const w = options.costPerChannel?.get(gi.key) ?? 1;
    gi.scores.forEach((s, c) => cands.push({ g, c, s: s / (w > 0 ? w : 1) }));
  });
  cands.sort((a, b) => a.s - b.s || a.g - b.g || a.c - b.c);
  const removed = new Array<number>(importance.length).fill(0);
  const effective = (g: number): number => {
    const size = importance[g]!.scores.length;
    return size - roundUp(size - removed[g]!, size, roundTo);
  };
  let done = 0;
  for (const cand of cands) {
    if (done >= target) break;
    const size = importance[cand.g]!.scores.length;
    if (size - removed[cand.g]! - 1 < minChannels) continue;
    const before = effective(cand.g);
    removed[cand.g]!++;
    done += effective(cand.g) - before;
  }
  const groups: GroupPlan[] = [];
  importance.forEach((gi, g) => {
    const size = gi.scores.length;
    const kept = size - effective(g);
    if (kept < size) groups.push({ key: gi.key, size, keep: topIndices(gi.scores, kept) });
  });
  return { version: 1, groups };
}

/** Checks a plan against the model's current groups before any weight is touched. */
export function validatePlan(plan: PrunePlan, graph: DependencyGraph): void {
  const fail = (msg: string, details: Record<string, unknown> = {}): never => {
    throw new EdgektError('EDGEKT_ERR_PRUNE_PLAN', msg, details);
  };
  if (plan.version !== 1 || !Array.isArray(plan.groups)) fail('not a version-1 pruning plan');
  const seen = new Set<string>();
  for (const gp of plan.groups) {
    if (seen.has(gp.key)) fail(`group ${gp.key} appears twice`);
    seen.add(gp.key);
    const group = graph.groups.find((g) => g.key === gp.key);
    if (!group) fail(`group ${gp.key} is not in the model`);
    else {
      if (!group.prunable) fail(`group ${gp.key} may not be pruned: ${group.reasons.join('; ')}`);
      if (group.size !== gp.size) fail(`group ${gp.key} has ${group.size} channels, plan expects ${gp.size}`);
    }
    if (gp.keep.length < 1) fail(`group ${gp.key} would keep no channel`);
    for (let i = 0; i < gp.keep.length; i++) {
      const c = gp.keep[i]!;
      if (!Number.isInteger(c) || c < 0 || c >= gp.size) fail(`group ${gp.key}: channel ${c} out of range 0..${gp.size - 1}`);
      if (i > 0 && c <= gp.keep[i - 1]!) fail(`group ${gp.key}: kept channels must be strictly ascending`);
    }
  }
}

/** Channels the plan removes, for history and reports. */
export function planRemovedChannels(plan: PrunePlan): number {
  return plan.groups.reduce((a, g) => a + g.size - g.keep.length, 0);
}
