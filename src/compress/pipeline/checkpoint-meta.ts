import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { EdgektError } from '../../core/errors.js';
import { loadModelFromBuffers, serializeModel, WEIGHTS_BIN } from '../../model/index.js';
import type { CheckpointStore } from '../../store/checkpoint-store.js';
import type { ResolvedBudgets } from '../../config/device-profile.js';
import type { Figures, IterationRecord } from '../budget.js';

// Schemas of what the pipeline persists. Loose objects: a field added to a record by a newer
// version survives a resume instead of being dropped.
const num = z.number();
const FiguresSchema = z.looseObject({
  latencyP50Ms: num, latencyP95Ms: num, latencyP99Ms: num, peakMemoryMB: num, modelSizeKB: num, params: num,
  accuracy: num.nullable(),
  macs: num.optional(),
});
const BudgetsSchema = z.looseObject({ latencyP95Ms: num.optional(), peakMemoryMB: num.optional(), modelSizeKB: num.optional(), minAccuracy: num.optional() });
const PlanSchema = z.looseObject({
  version: z.literal(1),
  groups: z.array(z.looseObject({ key: z.string(), size: num, keep: z.array(num) })),
});
const BudgetName = z.enum(['latencyP95Ms', 'peakMemoryMB', 'modelSizeKB', 'minAccuracy']);
const IterationRecordSchema = z.looseObject({
  iteration: num,
  kind: z.enum(['start', 'prune', 'final']),
  plan: PlanSchema.nullable(),
  removedChannels: num,
  figures: FiguresSchema,
  check: z.looseObject({
    met: z.boolean(),
    resourcesMet: z.boolean(),
    violations: z.array(z.looseObject({ budget: BudgetName, limit: num, value: num })),
    distance: num,
  }),
  seconds: num,
  latencyTables: z.array(z.looseObject({ key: z.string(), size: num, points: z.array(z.looseObject({ keep: num, latencyMs: num })) })).optional(),
});

export const TeacherStageSchema = z.looseObject({ figures: FiguresSchema, budgets: BudgetsSchema });
export const StageMetaSchema = z.looseObject({ seconds: num, params: num });
export const PruneMetaSchema = z.looseObject({ record: IterationRecordSchema, history: z.array(IterationRecordSchema).min(1) });

/** The teacher stage: its figures on this device and the budgets resolved against them. */
export interface TeacherStageMeta {
  figures: Figures & { macs?: number };
  budgets: ResolvedBudgets;
}
export interface StageMeta {
  seconds: number;
  params: number;
}
export interface PruneMeta {
  record: IterationRecord;
  history: IterationRecord[];
}

// The schemas must describe the pipeline's own types: a compile error here means they drifted.
type Assignable<A, B extends A> = B;
export type SchemaChecks = [
  Assignable<TeacherStageMeta, z.infer<typeof TeacherStageSchema>>,
  Assignable<StageMeta, z.infer<typeof StageMetaSchema>>,
  Assignable<PruneMeta, z.infer<typeof PruneMetaSchema>>,
];

/** Saves a stage: the model as bytes (serializeModel), the meta as JSON. */
export async function saveStage(store: CheckpointStore, stage: string, model: tf.LayersModel | null, meta: unknown): Promise<void> {
  await store.save(stage, { meta, model: model ? await serializeModel(model) : null });
}

/**
 * Loads a stage and rebuilds its model; null when the stage never completed. A meta that does not
 * parse or a model that does not load is EDGEKT_ERR_CHECKPOINT, never a cast.
 */
export async function loadStage<T>(store: CheckpointStore, stage: string, schema: z.ZodType<T>): Promise<{ model: tf.LayersModel | null; meta: T } | null> {
  const c = await store.load(stage);
  if (!c) return null;
  const parsed = schema.safeParse(c.meta);
  if (!parsed.success) {
    throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `checkpoint ${stage}: bad meta (${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`);
  }
  if (!c.model) return { model: null, meta: parsed.data };
  try {
    const loaded = await loadModelFromBuffers(c.model.modelJson, { [WEIGHTS_BIN]: c.model.weights });
    return { model: loaded.model, meta: parsed.data };
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `checkpoint ${stage} holds an unreadable model: ${e instanceof Error ? e.message : String(e)}`, {}, { cause: e });
  }
}
