import type * as tf from '@tensorflow/tfjs';
import { buildDependencyGraph } from '../../model/dependency-graph.js';
import { groupImportance, type ImportanceKind } from './importance.js';
import { planGlobal, planRemovedChannels, type GlobalPlanOptions, type PrunePlan } from './planner.js';
import { applyPlan } from './surgery.js';

export * from '../../model/dependency-graph.js';
export * from './importance.js';
export * from './planner.js';
export * from './surgery.js';

export interface PruneStepOptions extends GlobalPlanOptions {
  importance?: ImportanceKind;
  skipLayers?: readonly string[];
}

export interface PruneStepResult {
  model: tf.LayersModel;
  plan: PrunePlan;
  removedChannels: number;
}

/** One global step: graph → importance → plan → surgery. The input model is left untouched. */
export async function pruneStep(model: tf.LayersModel, options: PruneStepOptions): Promise<PruneStepResult> {
  const graphOptions = { skipLayers: options.skipLayers ?? [] };
  const graph = buildDependencyGraph(model, graphOptions);
  const plan = planGlobal(groupImportance(model, graph, options.importance ?? 'l1'), options);
  const pruned = await applyPlan(model, plan, graphOptions);
  return { model: pruned, plan, removedChannels: planRemovedChannels(plan) };
}

/** Re-applies a recorded history of plans to the architecture it started from. */
export async function replayPlans(model: tf.LayersModel, plans: readonly PrunePlan[], skipLayers: readonly string[] = []): Promise<tf.LayersModel> {
  let current = model;
  for (const plan of plans) {
    const next = await applyPlan(current, plan, { skipLayers });
    if (current !== model) current.dispose();
    current = next;
  }
  return current;
}
