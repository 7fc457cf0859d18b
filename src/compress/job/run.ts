import * as tf from '@tensorflow/tfjs';
import pino, { type Logger } from 'pino';
import { parseCompressJobSpec, type CompressJobSpec, type CompressJobSpecInput } from '../../config/job-spec.js';
import { resolveProfile } from '../../config/profile-files.js';
import type { Clock } from '../../core/clock.js';
import { loadDataset, shuffledIndices, subset } from '../../data/index.js';
import type { DatasetSplits } from '../../data/types.js';
import { loadModel, serializeModel } from '../../model/index.js';
import { currentBackend } from '../../runtime/backend.js';
import type { CheckpointStore, ModelBytes } from '../../store/checkpoint-store.js';
import type { CostProbe } from '../budget.js';
import type { DistillSchedule } from '../distill/index.js';
import { runCompress, type PipelineEvent, type PipelineStages } from '../pipeline.js';
import { defaultStages } from '../pipeline/stages.js';
import type { CompressReport } from '../report/index.js';
import { checkRunIdentity, runFingerprint } from './identity.js';
import { writeJobOutputs } from './outputs.js';

export interface CompressJobDeps {
  checkpoints: CheckpointStore;
  /**
   * Measures models on this device. Required: bench/ implements it (createLatencyProbe) and ranks
   * beside compress/, so the caller wires it (the CLI, the worker entry: `jobProbe(spec)`).
   */
  probe: CostProbe;
  signal?: AbortSignal;
  onEvent?: (e: PipelineEvent) => void;
  /** The library's only log output (default: silent). */
  logger?: Logger;
  clock?: Clock;
  /** The training stages (default: defaultStages from the spec); tests and devices may swap them. */
  stages?: PipelineStages;
}

export interface CompressJobResult {
  /** Every budget holds. false: `student` is the closest model and the report says what it misses. */
  met: boolean;
  report: CompressReport;
  /** The student (met) or the closest model, serialized. */
  student: ModelBytes;
}

// DistillSchedule and the spec's schedule enum must stay one set.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
export const SCHEDULES_MATCH: Same<CompressJobSpec['schedule'], DistillSchedule> = true;

async function loadJobData(spec: CompressJobSpec): Promise<DatasetSplits> {
  const loaded = await loadDataset(spec.data, { seed: spec.seed, ...(spec.limit ? { limit: spec.limit } : {}), ...(spec.valFraction ? { valFraction: spec.valFraction } : {}) });
  if (!spec.trainLimit || spec.trainLimit >= loaded.train.count) return loaded;
  return { ...loaded, train: subset(loaded.train, shuffledIndices(loaded.train.count, spec.seed + 17).subarray(0, spec.trainLimit)) };
}

function logEvent(log: Logger, e: PipelineEvent): void {
  if (e.type === 'stage-start') log.info({ stage: e.stage }, 'stage started');
  else if (e.type === 'stage-done') log.info({ stage: e.stage, resumed: e.resumed }, 'stage done');
  else if (e.type === 'iteration') {
    const r = e.record;
    log.info({ iteration: r.iteration, kind: r.kind, params: r.figures.params, latencyP95Ms: r.figures.latencyP95Ms, accuracy: r.figures.accuracy, met: r.check.met }, 'prune iteration');
  } else log.debug({ stage: e.progress.stage, done: e.progress.done, total: e.progress.total }, 'progress');
}

/**
 * One compression job, the same for `edgekt compress` and the agent: parse the spec, load the
 * teacher and data, check the run identity against the checkpoints, run lighten → distill → prune,
 * and return the verdict with the student as bytes (also written into `spec.out` when given).
 * Rejects with EDGEKT_ERR_ABORTED when `deps.signal` fires; a resume then continues from the
 * last whole checkpoint and ends with the same student as an uninterrupted run.
 */
export async function runCompressJob(input: CompressJobSpecInput, deps: CompressJobDeps): Promise<CompressJobResult> {
  const spec = parseCompressJobSpec(input);
  const log = deps.logger ?? pino({ level: 'silent' });
  const emit = (e: PipelineEvent): void => {
    logEvent(log, e);
    deps.onEvent?.(e);
  };
  const profile = resolveProfile(spec.profile);
  const backend = currentBackend()?.backend ?? tf.getBackend();
  log.info({ teacher: spec.teacher, data: spec.data, profile: profile.name, backend, resume: spec.resume }, 'compress job started');
  const teacher = (await loadModel(spec.teacher)).model;
  try {
    const data = await loadJobData(spec);
    const { teacher: _t, out: _o, resume: _r, profile: _p, ...settings } = spec;
    await checkRunIdentity(deps.checkpoints, await runFingerprint(spec.teacher, { settings, profile, backend }), spec.resume);
    const stages = deps.stages ?? defaultStages({
      lighten: { widthMultiplier: spec.width, seed: spec.seed, ...(spec.depth !== undefined ? { depth: spec.depth } : {}) },
      distillEpochs: spec.distillEpochs, finalEpochs: spec.finalEpochs, schedule: spec.transfer === 'kd' ? 'joint' : spec.schedule,
      hints: spec.transfer === 'kd' ? 'none' : 'auto',
      distill: { temperature: spec.temperature, learningRate: spec.learningRate, hintLoss: spec.hintLoss, hintPoint: spec.hintPoint, ...(spec.transfer === 'multilevel-noise' ? {} : { noiseSigma: 0 }) },
      briefSamples: spec.briefSamples, batchSize: spec.batchSize, seed: spec.seed, workers: spec.workers ?? profile.runtime.threads,
      ...(deps.signal ? { signal: deps.signal } : {}),
      onProgress: (progress) => emit({ type: 'progress', progress }),
    });
    const result = await runCompress({
      teacher, data, profile, stages, store: deps.checkpoints, backend, resume: spec.resume, probe: deps.probe,
      prune: { stepFraction: spec.step, maxIterations: spec.maxIterations, extraFinals: spec.extraFinals, importance: spec.importance, minChannels: spec.minChannels, roundTo: spec.roundTo, latencyAware: spec.latencyAware, skipLayers: spec.skipLayers },
      ...(spec.evalLimit ? { evalLimit: spec.evalLimit } : {}),
      ...(deps.signal ? { signal: deps.signal } : {}),
      ...(deps.clock ? { clock: deps.clock } : {}),
      distillCheckpointSeconds: spec.checkpointSeconds,
      onEvent: emit,
    });
    let student: ModelBytes;
    try {
      student = await serializeModel(result.student);
    } finally {
      result.student.dispose();
    }
    const { report } = result;
    if (spec.out) await writeJobOutputs(spec.out, student, report);
    log.info({ met: report.met, params: report.student.params, stopReason: report.stopReason }, 'compress job finished');
    return { met: report.met, report, student };
  } finally {
    teacher.dispose();
  }
}
