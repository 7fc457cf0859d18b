import type * as tf from '@tensorflow/tfjs';
import type { CostProbe, PruneLoopOptions } from './budget.js';
import { applyPlan, buildDependencyGraph, groupImportance } from './prune/index.js';

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
