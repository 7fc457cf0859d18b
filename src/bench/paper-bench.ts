import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../data/types.js';
import { evaluateAccuracy, graphFromModel } from '../model/index.js';
import type { LatencyStats } from '../config/measurement.js';
import { bestForwardThroughput } from './arch-bench.js';
import { interleavedTrials, type TrialLatency } from './latency.js';

/** The targets for the paper table. */
export const PAPER_TARGETS = { paramsRatio: 50, latencyRatio: 3.2, maxAccuracyDropPoints: 1.0 } as const;

/** The same targets with the margin the defaults of `bench paper` must reach (issue 13, item 4). */
export const PAPER_MARGINS = { paramsRatio: 60, latencyRatio: 3.6, maxAccuracyDropPoints: 0.7 } as const;

/** Issue 13's goal beyond the paper (`bench paper --preset beyond`). */
export const BEYOND_TARGETS = { paramsRatio: 100, latencyRatio: 5, maxAccuracyDropPoints: 1.0 } as const;

type Targets = { readonly paramsRatio: number; readonly latencyRatio: number; readonly maxAccuracyDropPoints: number };

function meets(t: { paramsRatio: number; latencyRatio: number; accuracyDropPoints: number }, target: Targets): boolean {
  return t.paramsRatio >= target.paramsRatio && t.latencyRatio >= target.latencyRatio && t.accuracyDropPoints <= target.maxAccuracyDropPoints;
}

export interface PaperSide {
  params: number;
  macs: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  /** Trials and the spread of the per-trial percentiles. */
  latency: LatencyStats;
  accuracy: number;
}

export interface PaperTable {
  backend: string;
  /** Timed runs per model, over `trials` alternating trials. */
  runs: number;
  trials: number;
  testSamples: number;
  teacher: PaperSide;
  student: PaperSide;
  paramsRatio: number;
  macsRatio: number;
  /** teacher p50 / student p50, batch 1, medians of alternating trials of one run. */
  latencyRatio: number;
  teacherAccuracy: number;
  studentAccuracy: number;
  accuracyDropPoints: number;
  /** The teacher with the same deployment treatment as the student (BN folded), for a fair aside. */
  teacherDeployedLatencyP50Ms?: number;
  latencyRatioVsDeployedTeacher?: number;
  /**
   * The student's batch-1 p50 against its compute bound: MACs ÷ the backend's best forward throughput,
   * measured on the teacher (as deployed when given) over batches 1–64. overBound 1 = compute-bound.
   */
  computeBound: { macsPerMs: number; throughputBatch: number; teacherBoundMs: number; studentBoundMs: number; studentOverBound: number; teacherOverBound: number };
  targets: typeof PAPER_TARGETS;
  meetsTargets: boolean;
  margins: typeof PAPER_MARGINS;
  /** Every target met with the margin of PAPER_MARGINS. */
  meetsMargins: boolean;
  /** With `beyond`: BEYOND_TARGETS and whether they are met. */
  beyond?: typeof BEYOND_TARGETS;
  meetsBeyond?: boolean;
}

/** The paper's table: teacher vs student, same backend, same run. */
export function paperTable(
  teacher: tf.LayersModel,
  student: tf.LayersModel,
  test: ImageSet,
  backend: string,
  runs = 200,
  teacherDeployed?: tf.LayersModel,
  trials = 5,
  beyond = false,
): PaperTable {
  const perTrial = Math.max(1, Math.ceil(runs / trials));
  const all = interleavedTrials(teacherDeployed ? [teacher, student, teacherDeployed] : [teacher, student], { runs: perTrial, trials, seed: 1 }).models;
  const [lt, ls] = all as [TrialLatency, TrialLatency];
  const td = all[2];
  const side = (m: tf.LayersModel, l: TrialLatency): PaperSide => {
    const g = graphFromModel(m);
    return { params: g.totalParams, macs: g.totalMacs, latencyP50Ms: l.latencyP50Ms, latencyP95Ms: l.latencyP95Ms, latency: l.latency, accuracy: evaluateAccuracy(m, test) };
  };
  const t = side(teacher, lt);
  const s = side(student, ls);
  const reference = teacherDeployed ?? teacher;
  const rate = bestForwardThroughput(reference, graphFromModel(reference).totalMacs);
  const studentBoundMs = s.macs / rate.macsPerMs;
  const teacherBoundMs = t.macs / rate.macsPerMs;
  const computeBound = {
    macsPerMs: rate.macsPerMs,
    throughputBatch: rate.batch,
    teacherBoundMs,
    studentBoundMs,
    studentOverBound: s.latencyP50Ms / studentBoundMs,
    teacherOverBound: (td ?? lt).latencyP50Ms / teacherBoundMs,
  };
  const table = {
    backend,
    runs: perTrial * trials,
    trials,
    testSamples: test.count,
    teacher: t,
    student: s,
    paramsRatio: t.params / s.params,
    macsRatio: t.macs / s.macs,
    latencyRatio: t.latencyP50Ms / s.latencyP50Ms,
    teacherAccuracy: t.accuracy,
    studentAccuracy: s.accuracy,
    accuracyDropPoints: (t.accuracy - s.accuracy) * 100,
    computeBound,
    targets: PAPER_TARGETS,
    ...(td ? { teacherDeployedLatencyP50Ms: td.latencyP50Ms, latencyRatioVsDeployedTeacher: td.latencyP50Ms / s.latencyP50Ms } : {}),
  };
  return {
    ...table, meetsTargets: meets(table, PAPER_TARGETS), margins: PAPER_MARGINS, meetsMargins: meets(table, PAPER_MARGINS),
    ...(beyond ? { beyond: BEYOND_TARGETS, meetsBeyond: meets(table, BEYOND_TARGETS) } : {}),
  };
}

/** Markdown rows for docs/benchmarks.md. */
export function paperMarkdown(p: PaperTable): string {
  const n = (v: number): string => v.toLocaleString('en-US');
  const range = (x: PaperSide): string => `${x.latency.p50.min.toFixed(3)}…${x.latency.p50.max.toFixed(3)}`;
  return [
    '| | teacher | student | ratio / drop | target | margin |',
    '|---|---:|---:|---:|---:|---:|',
    `| parameters | ${n(p.teacher.params)} | ${n(p.student.params)} | ${p.paramsRatio.toFixed(1)}× | ≥ ${p.targets.paramsRatio}× | ≥ ${p.margins.paramsRatio}× |`,
    `| MACs | ${n(p.teacher.macs)} | ${n(p.student.macs)} | ${p.macsRatio.toFixed(1)}× | | |`,
    `| batch-1 latency p50 (ms, ${p.backend}) | ${p.teacher.latencyP50Ms.toFixed(3)} | ${p.student.latencyP50Ms.toFixed(3)} | ${p.latencyRatio.toFixed(2)}× | ≥ ${p.targets.latencyRatio}× | ≥ ${p.margins.latencyRatio}× |`,
    ...(p.teacherDeployedLatencyP50Ms !== undefined
      ? [`| latency p50 (ms), teacher also BN-folded | ${p.teacherDeployedLatencyP50Ms.toFixed(3)} | ${p.student.latencyP50Ms.toFixed(3)} | ${p.latencyRatioVsDeployedTeacher!.toFixed(2)}× | | |`]
      : []),
    `| compute bound (ms): MACs ÷ ${Math.round(p.computeBound.macsPerMs).toLocaleString('en-US')} MACs/ms (batch ${p.computeBound.throughputBatch}) | ${p.computeBound.teacherBoundMs.toFixed(3)} | ${p.computeBound.studentBoundMs.toFixed(3)} | p50 ÷ bound: teacher ${p.computeBound.teacherOverBound.toFixed(1)}, student ${p.computeBound.studentOverBound.toFixed(1)} | | |`,
    `| batch-1 latency p95 (ms) | ${p.teacher.latencyP95Ms.toFixed(3)} | ${p.student.latencyP95Ms.toFixed(3)} | | | |`,
    `| p50 across ${p.trials} alternating trials (ms) | ${range(p.teacher)} | ${range(p.student)} | | | |`,
    `| test accuracy (${n(p.testSamples)} images) | ${(p.teacherAccuracy * 100).toFixed(2)} % | ${(p.studentAccuracy * 100).toFixed(2)} % | ${p.accuracyDropPoints.toFixed(2)} points | ≤ ${p.targets.maxAccuracyDropPoints} point | ≤ ${p.margins.maxAccuracyDropPoints} point |`,
    `| every target met | | | | ${p.meetsTargets ? 'yes' : 'no'} | ${p.meetsMargins ? 'yes' : 'no'} |`,
    ...(p.beyond
      ? [`| goal beyond the paper: ≥ ${p.beyond.paramsRatio}× params, ≥ ${p.beyond.latencyRatio}× latency, ≤ ${p.beyond.maxAccuracyDropPoints} point | | | | ${p.meetsBeyond ? 'met' : 'not met'} | |`]
      : []),
  ].join('\n');
}
