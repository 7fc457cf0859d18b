import * as tf from '@tensorflow/tfjs';
import { EdgektError } from '../../core/errors.js';
import { buildGraph, graphFromModel, normalizeTopology, type LayerGraph, type Stage } from '../../model/index.js';
import { planStudent, type LightenOptions, type StudentPlan } from './plan.js';

export { planStudent, type LightenOptions, type StudentPlan } from './plan.js';
export { scaleChannels } from './channels.js';

/** One hint point; same fields as the distiller's StageEnd so a mapping can be used as its HintPair. */
export interface StageEnd {
  layerName: string;
  height: number;
  width: number;
  channels: number;
}

/** Teacher stage i ↔ student stage i (same spatial resolution): where a 1×1 adapter goes. */
export interface StageMapping {
  index: number;
  teacher: StageEnd;
  student: StageEnd;
}

export interface ModelCost {
  params: number;
  macs: number;
}

export interface LightenSummary {
  teacher: ModelCost;
  student: ModelCost;
  /** teacher / student. */
  paramsRatio: number;
  macsRatio: number;
}

export interface LightenResult {
  student: tf.LayersModel;
  studentGraph: LayerGraph;
  teacherGraph: LayerGraph;
  stages: StageMapping[];
  /** Student layer whose output is the logits; `student.getLayer(logitsLayer).output` for a view. */
  logitsLayer: string;
  softmaxLayer: string | null;
  droppedConvs: string[];
  summary: LightenSummary;
}

function end(s: Stage): StageEnd {
  return { layerName: s.hint, height: s.resolution[0], width: s.resolution[1], channels: s.channels };
}

/** Pairs stages of equal resolution, in order. */
export function mapStages(teacher: LayerGraph, student: LayerGraph): StageMapping[] {
  const byRes = new Map(student.stages.map((s) => [s.resolution.join('x'), s]));
  const out: StageMapping[] = [];
  for (const t of teacher.stages) {
    const s = byRes.get(t.resolution.join('x'));
    if (s) out.push({ index: out.length, teacher: end(t), student: end(s) });
  }
  return out;
}

export function summarize(teacher: LayerGraph, student: LayerGraph): LightenSummary {
  return {
    teacher: { params: teacher.totalParams, macs: teacher.totalMacs },
    student: { params: student.totalParams, macs: student.totalMacs },
    paramsRatio: teacher.totalParams / student.totalParams,
    macsRatio: teacher.totalMacs / student.totalMacs,
  };
}

/** Student graph and costs from the plan alone: what lighten would produce, without allocating. */
export function planGraph(plan: StudentPlan): LayerGraph {
  return buildGraph(normalizeTopology(plan.keras));
}

/**
 * Derives a lightweight student from a teacher (a live model or its graph) and builds it as a real
 * tfjs model with seeded initial weights. The teacher is not modified. Returns the stage mapping
 * the distiller needs for hint adapters and the teacher/student costs.
 */
export async function lighten(teacher: tf.LayersModel | LayerGraph, options: LightenOptions = {}): Promise<LightenResult> {
  const teacherGraph = teacher instanceof tf.LayersModel ? graphFromModel(teacher) : teacher;
  const plan = planStudent(teacherGraph, options);
  const planned = planGraph(plan);
  if (planned.outputShape.join() !== teacherGraph.outputShape.join()) {
    throw new EdgektError('EDGEKT_ERR_INTERNAL', `student output [${planned.outputShape}] differs from teacher [${teacherGraph.outputShape}]`);
  }
  const student = (await tf.models.modelFromJSON({ modelTopology: plan.keras as tf.io.ModelJSON['modelTopology'] })) as tf.LayersModel;
  const studentGraph = graphFromModel(student);
  return {
    student, studentGraph, teacherGraph,
    stages: mapStages(teacherGraph, studentGraph),
    logitsLayer: plan.logitsLayer, softmaxLayer: plan.softmaxLayer, droppedConvs: plan.droppedConvs,
    summary: summarize(teacherGraph, studentGraph),
  };
}
