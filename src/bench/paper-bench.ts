import * as tf from '@tensorflow/tfjs';
import { systemClock, type Clock } from '../core/clock.js';
import type { ImageSet } from '../data/types.js';
import { evaluateAccuracy, graphFromModel } from '../model/index.js';
import { percentile } from './latency.js';

/** The targets for the paper table. */
export const PAPER_TARGETS = { paramsRatio: 50, latencyRatio: 3.2, maxAccuracyDropPoints: 1.0 } as const;

export interface PaperSide {
  params: number;
  macs: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  accuracy: number;
}

export interface PaperTable {
  backend: string;
  runs: number;
  testSamples: number;
  teacher: PaperSide;
  student: PaperSide;
  paramsRatio: number;
  macsRatio: number;
  /** teacher p50 / student p50, batch 1, measured interleaved in the same process. */
  latencyRatio: number;
  teacherAccuracy: number;
  studentAccuracy: number;
  accuracyDropPoints: number;
  /** The teacher with the same deployment treatment as the student (BN folded), for a fair aside. */
  teacherDeployedLatencyP50Ms?: number;
  latencyRatioVsDeployedTeacher?: number;
  targets: typeof PAPER_TARGETS;
  meetsTargets: boolean;
}

/**
 * Batch-1 latency of several models measured in alternating rounds, so background load on a shared
 * machine hits them alike (a ratio measured minutes apart would mostly measure the neighbours).
 * Returns each model's times, sorted.
 */
export function interleavedLatency(models: tf.LayersModel[], runs: number, clock: Clock = systemClock): number[][] {
  const shape = [1, ...(models[0]!.inputs[0]!.shape.slice(1) as number[])];
  const x = tf.randomNormal(shape, 0, 1, 'float32', 1);
  const once = (m: tf.LayersModel): number => {
    const t0 = clock.hrMs();
    const y = m.predict(x) as tf.Tensor;
    y.dataSync();
    y.dispose();
    return clock.hrMs() - t0;
  };
  try {
    for (let i = 0; i < 5; i++) models.forEach(once);
    const times = models.map(() => [] as number[]);
    const round = 10;
    for (let done = 0; done < runs; done += round) {
      const n = Math.min(round, runs - done);
      models.forEach((m, k) => {
        for (let i = 0; i < n; i++) times[k]!.push(once(m));
      });
    }
    return times.map((t) => t.sort((p, q) => p - q));
  } finally {
    x.dispose();
  }
}

/** The paper's table: teacher vs student, same backend, same run. */
export function paperTable(
  teacher: tf.LayersModel,
  student: tf.LayersModel,
  test: ImageSet,
  backend: string,
  runs = 200,
  teacherDeployed?: tf.LayersModel,
): PaperTable {
  const all = interleavedLatency(teacherDeployed ? [teacher, student, teacherDeployed] : [teacher, student], runs);
  const [lt, ls] = all as [number[], number[]];
  const td = all[2];
  const side = (m: tf.LayersModel, times: number[]): PaperSide => {
    const g = graphFromModel(m);
    return { params: g.totalParams, macs: g.totalMacs, latencyP50Ms: percentile(times, 50), latencyP95Ms: percentile(times, 95), accuracy: evaluateAccuracy(m, test) };
  };
  const t = side(teacher, lt);
  const s = side(student, ls);
  const table = {
    backend,
    runs,
    testSamples: test.count,
    teacher: t,
    student: s,
    paramsRatio: t.params / s.params,
    macsRatio: t.macs / s.macs,
    latencyRatio: t.latencyP50Ms / s.latencyP50Ms,
    teacherAccuracy: t.accuracy,
    studentAccuracy: s.accuracy,
    accuracyDropPoints: (t.accuracy - s.accuracy) * 100,
    targets: PAPER_TARGETS,
    ...(td ? { teacherDeployedLatencyP50Ms: percentile(td, 50), latencyRatioVsDeployedTeacher: percentile(td, 50) / s.latencyP50Ms } : {}),
  };
  return {
    ...table,
    meetsTargets:
      table.paramsRatio >= PAPER_TARGETS.paramsRatio &&
      table.latencyRatio >= PAPER_TARGETS.latencyRatio &&
      table.accuracyDropPoints <= PAPER_TARGETS.maxAccuracyDropPoints,
  };
}

/** Markdown rows for docs/benchmarks.md. */
export function paperMarkdown(p: PaperTable): string {
  const n = (v: number): string => v.toLocaleString('en-US');
  return [
    '| | teacher | student | ratio / drop | target |',
    '|---|---:|---:|---:|---:|',
    `| parameters | ${n(p.teacher.params)} | ${n(p.student.params)} | ${p.paramsRatio.toFixed(1)}× | ≥ ${p.targets.paramsRatio}× |`,
    `| MACs | ${n(p.teacher.macs)} | ${n(p.student.macs)} | ${p.macsRatio.toFixed(1)}× | |`,
    `| batch-1 latency p50 (ms, ${p.backend}) | ${p.teacher.latencyP50Ms.toFixed(3)} | ${p.student.latencyP50Ms.toFixed(3)} | ${p.latencyRatio.toFixed(2)}× | ≥ ${p.targets.latencyRatio}× |`,
    ...(p.teacherDeployedLatencyP50Ms !== undefined
      ? [`| latency p50 (ms), teacher also BN-folded | ${p.teacherDeployedLatencyP50Ms.toFixed(3)} | ${p.student.latencyP50Ms.toFixed(3)} | ${p.latencyRatioVsDeployedTeacher!.toFixed(2)}× | |`]
      : []),
    `| batch-1 latency p95 (ms) | ${p.teacher.latencyP95Ms.toFixed(3)} | ${p.student.latencyP95Ms.toFixed(3)} | | |`,
    `| test accuracy (${n(p.testSamples)} images) | ${(p.teacherAccuracy * 100).toFixed(2)} % | ${(p.studentAccuracy * 100).toFixed(2)} % | ${p.accuracyDropPoints.toFixed(2)} points | ≤ ${p.targets.maxAccuracyDropPoints} point |`,
  ].join('\n');
}
