import type * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../core/errors.js';
import type { ImageSet } from '../data/types.js';
import { runPruneLoop, type PruneLoopOptions } from './budget.js';
import { recalibrateBatchNorm } from './distill/index.js';
import { applyPlan, pruneStep, type PrunePlan } from './prune/index.js';

/**
 * How a device cuts the global base down to its budget: the measured pruning loop (the device's
 * own budgets and probe), or one global L1 step of a fixed fraction (simulations, benchmarks).
 */
export type EnrolPruning =
  | { kind: 'budget'; loop: PruneLoopOptions }
  | { kind: 'fraction'; fraction: number; minChannels?: number; roundTo?: number; skipLayers?: readonly string[] };

export interface EnrolledStudent {
  /** The pruned student (the caller owns it). */
  model: tf.LayersModel;
  /** Every plan applied to the base, oldest first: the history an index map is composed from. */
  plans: PrunePlan[];
}

/**
 * Prunes the global base (the lightened, distilled student before pruning) to a device's budget.
 * The base is left untouched; with `data`, BatchNorm statistics are recomputed on it afterwards.
 */
export async function pruneForEnrolment(base: tf.LayersModel, pruning: EnrolPruning, data?: ImageSet): Promise<EnrolledStudent> {
  let out: EnrolledStudent;
  if (pruning.kind === 'fraction') {
    const step = await pruneStep(base, {
      fraction: pruning.fraction,
      importance: 'l1',
      ...(pruning.minChannels !== undefined ? { minChannels: pruning.minChannels } : {}),
      ...(pruning.roundTo !== undefined ? { roundTo: pruning.roundTo } : {}),
      ...(pruning.skipLayers ? { skipLayers: pruning.skipLayers } : {}),
    });
    out = { model: step.model, plans: [step.plan] };
  } else {
    const r = await runPruneLoop(base, pruning.loop);
    // The returned model is the chosen record's: its plans are the history up to it.
    const plans = r.history.slice(0, r.chosen + 1).flatMap((h) => (h.plan ? [h.plan] : []));
    out = { model: r.model === base ? await applyPlan(base, { version: 1, groups: [] }) : r.model, plans };
  }
  if (data) recalibrateBatchNorm(out.model, data, { batches: 10, batchSize: 64 });
  return out;
}

/**
 * HeteroFL's sub-model at the same size: one plan over the base that keeps, in every group the
 * history touched, channels 0..k−1 with k the history's final count.
 */
export function prefixPlanOf(plans: readonly PrunePlan[]): PrunePlan {
  const sizes = new Map<string, { size: number; k: number }>();
  for (const plan of plans) {
    for (const g of plan.groups) {
      const prev = sizes.get(g.key);
      if (prev && prev.k !== g.size) throw new EdgektError('EDGEKT_ERR_PRUNE_PLAN', `group ${g.key}: plan expects ${g.size} channels, history left ${prev.k}`);
      sizes.set(g.key, { size: prev?.size ?? g.size, k: g.keep.length });
    }
  }
  return { version: 1, groups: [...sizes].map(([key, { size, k }]) => ({ key, size, keep: Array.from({ length: k }, (_, i) => i) })) };
}

/** The prefix sub-model of the base at the history's channel counts (same architecture, other channels). */
export async function prefixStudent(base: tf.LayersModel, plans: readonly PrunePlan[], data?: ImageSet, skipLayers: readonly string[] = []): Promise<EnrolledStudent> {
  const plan = prefixPlanOf(plans);
  const model = await applyPlan(base, plan, { skipLayers });
  if (data) recalibrateBatchNorm(model, data, { batches: 10, batchSize: 64 });
  return { model, plans: [plan] };
}
