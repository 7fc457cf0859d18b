import type * as tf from '@tensorflow/tfjs';
import { resolveBudgets, type DeviceProfile, type ReferenceFigures } from '../config/device-profile.js';
import { systemClock, type Clock } from '../core/clock.js';
import { EdgektError, throwIfAborted } from '../core/errors.js';
import { adaptImages } from '../data/index.js';
import type { DatasetSplits, ImageSet } from '../data/types.js';
import type { CheckpointStore } from '../store/checkpoint-store.js';
import { closestIndexOf, deployedProbe, runPruneLoop, type CostProbe, type Figures, type FineTuner, type IterationRecord } from './budget.js';
import { loadStage, PruneMetaSchema, saveStage, StageMetaSchema, TeacherStageSchema, type PruneMeta, type StageMeta, type TeacherStageMeta } from './pipeline/checkpoint-meta.js';
import type { ImportanceKind } from './prune/index.js';
import { buildReport, type CompressReport, type StageSummary } from './report/index.js';
import { decodeDistillState, encodeDistillState, type DistillCheckpointOptions, type DistillState } from './distill/index.js';

export interface StageProgress {
  stage: string;
  done: number;
  total: number;
  detail?: string;
}

/** The training stages, injected so tests (and devices) can swap them. */
export interface PipelineStages {
  lighten(teacher: tf.LayersModel): Promise<tf.LayersModel>;
  /** `checkpoint`: in-stage saves and the state to resume from (the pipeline builds it on its store). */
  distill(teacher: tf.LayersModel, student: tf.LayersModel, train: ImageSet, onProgress: (p: StageProgress) => void, checkpoint?: DistillCheckpointOptions): Promise<void>;
  /** Fine-tuner for the pruning loop (multi-level KD by default). */
  fineTuner(teacher: tf.LayersModel, train: ImageSet): FineTuner;
  /** Top-1 accuracy, or null for unlabeled data. */
  evaluate(model: tf.LayersModel, set: ImageSet): number | null;
  /** MACs per sample, for the report. */
  macs?(model: tf.LayersModel): number;
  /**
   * The deployment form of a student (e.g. BN folded into convs). The loop measures this form and
   * it is what the pipeline returns; training keeps the trainable form.
   */
  deploy?(model: tf.LayersModel): Promise<tf.LayersModel>;
  /** Frees what the stages kept across the run (data-parallel workers); called once the run ends. */
  release?(): Promise<void>;
}

export interface PruneSettings {
  stepFraction?: number;
  maxIterations?: number;
  importance?: ImportanceKind;
  minChannels?: number;
  roundTo?: number;
  skipLayers?: string[];
  latencyAware?: boolean;
  /** More final fine-tunes while only accuracy misses and each gains (runPruneLoop). */
  extraFinals?: number;
}

export type PipelineEvent =
  | { type: 'stage-start'; stage: string }
  | { type: 'stage-done'; stage: string; resumed: boolean }
  | { type: 'progress'; progress: StageProgress }
  | { type: 'iteration'; record: IterationRecord };

export interface CompressOptions {
  teacher: tf.LayersModel;
  data: DatasetSplits;
  profile: DeviceProfile;
  probe: CostProbe;
  /** Stage results on model bytes; a resumed run reads them back. */
  store: CheckpointStore;
  stages: PipelineStages;
  backend: string;
  resume?: boolean;
  prune?: PruneSettings;
  /** Samples of the evaluation split used inside the loop (all by default). */
  evalLimit?: number;
  onEvent?: (e: PipelineEvent) => void;
  /**
   * Cancels at the next safe point (a stage boundary, after a whole checkpoint, before a
   * measurement; the stages check it between training steps) with EDGEKT_ERR_ABORTED.
   */
  signal?: AbortSignal;
  clock?: Clock;
  /** Seconds between in-stage checkpoints of the distillation (a kill loses at most this much). Default 60. */
  distillCheckpointSeconds?: number;
}

export interface CompressResult {
  /** The student written by the caller (met: the final model; otherwise the closest). */
  student: tf.LayersModel;
  report: CompressReport;
}

const pruneStage = (i: number): string => `prune-${String(i).padStart(3, '0')}`;
/** The distillation's in-stage checkpoint (removed once the stage's own checkpoint is written). */
const DISTILL_PROGRESS = 'distill-progress';

function firstN(set: ImageSet, n: number | undefined): ImageSet {
  if (n === undefined || n >= set.count) return set;
  const per = set.shape[0] * set.shape[1] * set.shape[2];
  return { ...set, count: n, x: set.x.subarray(0, n * per), y: set.y ? set.y.subarray(0, n) : null };
}

/**
 * lighten → distill → prune until the device budgets hold, each stage checkpointed in the store so
 * a killed or aborted run resumes where it stopped. When no model meets every budget the result
 * holds the closest one and `report.met` is false: a verdict, not an error.
 */
export async function runCompress(o: CompressOptions): Promise<CompressResult> {
  const clock = o.clock ?? systemClock;
  const emit = o.onEvent ?? (() => {});
  const safePoint = (where: string): void => throwIfAborted(o.signal, where);
  const shape = o.teacher.inputs[0]!.shape.slice(1) as [number, number, number];
  const train = adaptImages(o.data.train, shape);
  const evalSet = firstN(adaptImages(o.data.validation ?? o.data.test, shape), o.evalLimit);
  const test = adaptImages(o.data.test, shape);
  const stages: StageSummary[] = [];
  const owned: tf.LayersModel[] = [];
  // Only whole saves: an abort is honoured after a checkpoint is written, never during one.
  const checkpoint = async (stage: string, model: tf.LayersModel | null, meta: unknown): Promise<void> => {
    await saveStage(o.store, stage, model, meta);
    safePoint(`after checkpoint ${stage}`);
  };

  /**
   * In-stage saves of the distillation (weights, adapters, Adam slots, RNG and position), so a kill
   * loses minutes, not the stage. A saved state that no longer fits the run is dropped with a log
   * line and the stage starts over.
   */
  const distillCheckpoint = async (): Promise<DistillCheckpointOptions> => {
    let load: DistillState | null = null;
    const prev = o.resume ? await o.store.load(DISTILL_PROGRESS) : null;
    if (prev?.model) {
      try {
        load = decodeDistillState({ meta: prev.meta, weights: prev.model.weights });
      } catch {
        load = null;
      }
    }
    return {
      everySeconds: o.distillCheckpointSeconds ?? 60,
      clock,
      load,
      save: async (state) => {
        const e = encodeDistillState(state);
        await o.store.save(DISTILL_PROGRESS, { meta: e.meta, model: { modelJson: '', weights: e.weights } });
        emit({ type: 'progress', progress: { stage: 'distill', done: state.position.globalStep, total: 0, detail: 'checkpoint saved' } });
      },
    };
  };

  try {
    // 1. Teacher figures on this device, robust (median of several trials): relative budgets resolve
    // against them; the loop then checks relative latency against the teacher of each same run.
    emit({ type: 'stage-start', stage: 'teacher' });
    safePoint('before the teacher stage');
    let t: TeacherStageMeta | undefined = o.resume ? (await loadStage(o.store, 'teacher', TeacherStageSchema))?.meta : undefined;
    const resumedTeacher = t !== undefined;
    if (!t) {
      const cost = await o.probe.measure(o.teacher);
      const figures = { ...cost, accuracy: o.stages.evaluate(o.teacher, evalSet), ...(o.stages.macs ? { macs: o.stages.macs(o.teacher) } : {}) };
      const ref: ReferenceFigures = { latencyP95Ms: cost.latencyP95Ms, peakMemoryMB: cost.peakMemoryMB, modelSizeKB: cost.modelSizeKB, ...(figures.accuracy !== null ? { accuracy: figures.accuracy } : {}) };
      t = { figures, budgets: resolveBudgets(o.profile.budgets, ref) };
      await checkpoint('teacher', null, t);
    }
    emit({ type: 'stage-done', stage: 'teacher', resumed: resumedTeacher });

    // 2-3. Lighten, then distill; each resumes from its checkpoint.
    let student: tf.LayersModel | null = null;
    for (const stage of ['lighten', 'distill'] as const) {
      emit({ type: 'stage-start', stage });
      safePoint(`before the ${stage} stage`);
      const hit = o.resume ? await loadStage(o.store, stage, StageMetaSchema) : null;
      if (hit?.model) {
        if (student) student.dispose();
        student = hit.model;
        owned.push(student);
        stages.push({ name: stage, seconds: hit.meta.seconds, params: hit.meta.params });
        emit({ type: 'stage-done', stage, resumed: true });
        continue;
      }
      const t0 = clock.hrMs();
      if (stage === 'lighten') {
        student = await o.stages.lighten(o.teacher);
        owned.push(student);
      } else {
        await o.stages.distill(o.teacher, student!, train, (progress) => emit({ type: 'progress', progress }), await distillCheckpoint());
      }
      const meta: StageMeta = { seconds: (clock.hrMs() - t0) / 1000, params: student!.countParams() };
      stages.push({ name: stage, ...meta });
      await checkpoint(stage, student, meta);
      if (stage === 'distill') await o.store.remove(DISTILL_PROGRESS);
      emit({ type: 'stage-done', stage, resumed: false });
    }

    // 4. Prune until the budgets hold.
    emit({ type: 'stage-start', stage: 'prune' });
    safePoint('before the prune stage');
    let resume: { history: IterationRecord[]; model: tf.LayersModel; closest: tf.LayersModel | null } | undefined;
    if (o.resume) {
      let last: { model: tf.LayersModel; meta: PruneMeta } | null = null;
      for (let i = 0; ; i++) {
        const hit = await loadStage(o.store, pruneStage(i), PruneMetaSchema);
        if (!hit?.model) break;
        last?.model.dispose();
        last = { model: hit.model, meta: hit.meta };
      }
      if (last) {
        const h = last.meta.history;
        const ci = closestIndexOf(h);
        const closest = ci === h.length - 1 ? last.model : ((await loadStage(o.store, pruneStage(h[ci]!.iteration), PruneMetaSchema))?.model ?? null);
        resume = { history: h, model: last.model, closest };
      }
    }
    const p = o.prune ?? {};
    const t0 = clock.hrMs();
    const deploy = o.stages.deploy?.bind(o.stages);
    const measuring: CostProbe = deploy ? deployedProbe(o.probe, deploy) : o.probe;
    // Every measurement is a safe point: an abort lands between measurements, never inside one.
    const probe: CostProbe = {
      measure: async (m) => {
        safePoint('before a measurement');
        return measuring.measure(m);
      },
      compare: async (candidate, reference) => {
        safePoint('before a measurement');
        return measuring.compare(candidate, reference);
      },
    };
    const loop = await runPruneLoop(student!, {
      budgets: t.budgets,
      probe,
      teacher: o.teacher,
      fineTune: o.stages.fineTuner(o.teacher, train),
      evaluate: (m) => o.stages.evaluate(m, evalSet),
      stepFraction: p.stepFraction,
      maxIterations: p.maxIterations,
      importance: p.importance,
      minChannels: p.minChannels,
      roundTo: p.roundTo,
      skipLayers: p.skipLayers,
      latencyAware: p.latencyAware,
      ...(p.extraFinals !== undefined ? { extraFinals: p.extraFinals } : {}),
      resume,
      clock,
      onIteration: async (record, model, history) => {
        emit({ type: 'iteration', record });
        await checkpoint(pruneStage(record.iteration), model, { record, history: [...history] } satisfies PruneMeta);
      },
    });
    owned.push(loop.model);
    safePoint('after the prune stage');
    const final = deploy ? await deploy(loop.model) : loop.model;
    owned.push(final);
    stages.push({ name: 'prune', seconds: (clock.hrMs() - t0) / 1000, params: final.countParams() });
    emit({ type: 'stage-done', stage: 'prune', resumed: false });

    // 5. The report: the student row, budget table and verdict all come from the saved model's
    // record (validation accuracy); the test split is measured once here and labelled as such.
    const report = buildReport({
      profile: o.profile.name,
      backend: o.backend,
      stopReason: loop.stopReason,
      budgetsSpec: o.profile.budgets,
      budgets: t.budgets,
      accuracyOn: { split: o.data.validation ? 'validation' : 'test', samples: evalSet.count },
      testOn: { split: 'test', samples: test.count },
      teacher: { ...t.figures, testAccuracy: o.stages.evaluate(o.teacher, test) },
      student: { testAccuracy: o.stages.evaluate(final, test), ...(o.stages.macs ? { macs: o.stages.macs(final) } : {}) },
      stages,
      chosen: loop.chosen,
      history: loop.history,
    });
    const result = { student: final, report };
    for (let i = owned.length - 1; i >= 0; i--) if (owned[i] === final) owned.splice(i, 1);
    return result;
  } finally {
    for (const m of new Set(owned)) safeDispose(m);
    await o.stages.release?.();
  }
}

function safeDispose(m: tf.LayersModel): void {
  try {
    m.dispose();
  } catch {
    // already disposed by the loop (an intermediate student)
  }
}

/** The budgets the saved (closest) model misses, from the report's own budget table. */
function unmetBudgets(report: CompressReport): Array<{ budget: string; limit: number; value: number }> {
  return report.budgetTable.filter((r) => !r.met).map((r) => ({ budget: r.budget, limit: r.limit, value: r.value ?? 0 }));
}

/** One line saying which budgets the closest model still misses (CLI and agent reports). */
export function unmetSummary(report: CompressReport): string {
  return `no model met every budget (${report.stopReason}); closest model misses ${unmetBudgets(report).map((x) => `${x.budget} ${x.value.toFixed(3)} > ${x.limit.toFixed(3)}`).join(', ')}`;
}

/** The same as an error, for callers that refuse a closest model (its details list the misses). */
export function budgetUnreachable(report: CompressReport, dir?: string): EdgektError {
  return new EdgektError('EDGEKT_ERR_BUDGET_UNREACHABLE', unmetSummary(report), { closest: dir ?? null, violations: unmetBudgets(report) });
}
