import * as tf from '@tensorflow/tfjs';
import { systemClock, type Clock } from '../core/clock.js';
import { EdgektError } from '../core/errors.js';
import { createRng, normal } from '../core/random.js';
import { median } from '../core/stats.js';
import type { BackendChoice } from '../runtime/backend.js';
import { setFastBatchNorm } from '../runtime/fast-batch-norm.js';
import { computeLoss, createDataParallelTrainer, fromLayersModel, type ParallelBatch, type StepTimings } from '../runtime/parallel/index.js';
import { graphFromModel } from '../model/index.js';
import { measureModelCost } from './latency.js';
import { buildRefTrainCnn, type RefTrainCnnVariant } from './ref-train-cnn.js';

/** What the PyTorch anchor script reports for one variant (one thread). */
export interface TorchAnchorResult {
  stepMs: number;
  inferMs: number;
  version?: string;
}

/** Runs the anchor; null when no python3 with torch is available. Injected: it spawns a process. */
export type TorchAnchor = (variant: RefTrainCnnVariant, opts: { batch: number; steps: number; threads: number }) => Promise<TorchAnchorResult | null>;

export interface TrainBenchOptions {
  variants?: RefTrainCnnVariant[];
  /** Default 64, as in DESIGN.md. */
  batch?: number;
  /** Timed steps per measurement (median reported); at least 5. Default 7. */
  steps?: number;
  /** Untimed steps first. Default 2. */
  warmup?: number;
  /** Worker threads for the data-parallel measurement; 1 skips it. */
  workers: number;
  /** Backend of the workers (the calling thread's backend is already initialised). */
  backend: BackendChoice;
  anchor?: TorchAnchor;
  /** Called before each phase; `done` of `total` phases are finished. */
  progress?: (p: { message: string; done: number; total: number }) => void;
  clock?: Clock;
  /** CPU time of the calling thread in ms (null if unknown); injected because it reads the OS. */
  cpuClock?: () => number | null;
  /** Timed batch-1 inferences (median reported). Default 50, like the anchor. */
  inferRuns?: number;
  /** Measure the backend's dense throughput for the floor columns. Default true. */
  gemmProbe?: boolean;
}

export interface TrainBenchResult {
  variant: RefTrainCnnVariant;
  /** One optimizer step of batch `batch` on this thread (one core). */
  stepMs: number;
  /** Batch-1 inference on this thread. */
  inferMs: number;
  torchStepMs: number | null;
  torchInferMs: number | null;
  /** stepMs / torchStepMs, one thread each: the issue-3 target is ≤ 2.5. */
  ratio: number | null;
  inferRatio: number | null;
  /** Data-parallel trainer with 1 and with N workers, steps interleaved so load changes hit both. */
  stepMs1Worker: number | null;
  stepMsNWorkers: number | null;
  speedup: number | null;
  /** The anchor with N threads, and stepMsNWorkers against it: both sides using every core. */
  torchStepMsNThreads: number | null;
  ratioN: number | null;
  /**
   * CPU-time view of the same steps, robust to other load on the machine: this thread's CPU ms per
   * step, the busiest worker's gradient CPU ms with 1 and N workers, and their quotient (the
   * speed-up free cores would give, messaging excluded). Null where the OS does not report it.
   */
  cpu: { stepMs: number | null; stepMs1Worker: number | null; stepMsNWorkers: number | null; speedup: number | null };
  /**
   * Arithmetic of one step: 2·batch·(3·MACs − MACs of the first layer), i.e. forward, weight
   * gradients, and input gradients of every layer but the first (in GFLOP).
   */
  stepGflop: number;
  /** stepGflop / stepMs: what the step sustained. */
  stepGflops: number;
  /**
   * The step if all of its arithmetic ran at the backend's best dense (matMul) throughput with no
   * other cost, and that floor over the PyTorch step: no kernel work on this backend can bring
   * `ratio` below `floorRatio` on this CPU.
   */
  floorStepMs: number | null;
  floorRatio: number | null;
  /**
   * The same step with BatchNorm through edgekt's fused op and through tfjs-layers' own composition,
   * alternating step by step (medians): what src/runtime/fast-batch-norm.ts saves.
   */
  batchNorm: { fusedStepMs: number; tfjsStepMs: number; speedup: number };
}

export interface TrainBenchReport {
  backend: string;
  workers: number;
  batch: number;
  steps: number;
  torchVersion: string | null;
  results: TrainBenchResult[];
  /** The backend's best dense throughput here: a 1024³ matMul, median of 5 (null if not probed). */
  gemmGflops: number | null;
  /** Multi-worker speed-up on the first variant (standard): ≥ 1.6 with 2 workers is the target. */
  speedup: { variant: RefTrainCnnVariant; workers: number; stepMs1: number; stepMsN: number; factor: number } | null;
}

export { median };

const round = (v: number, digits = 2): number => Number(v.toFixed(digits));

function randomBatch(batch: number, seed: number): ParallelBatch {
  const rng = createRng(seed);
  const x = Float32Array.from({ length: batch * 32 * 32 * 3 }, () => normal(rng));
  const y = Int32Array.from({ length: batch }, () => Math.floor(rng() * 10));
  return { x, xShape: [batch, 32, 32, 3], y, yShape: [batch] };
}

const noCpu = (): null => null;

/** Median of the non-null values, or null if any is missing. */
function medianOrNull(values: Array<number | null>): number | null {
  return values.length > 0 && values.every((v) => v !== null) ? median(values as number[]) : null;
}

/** The backend's dense throughput in GFLOP/s: an n×n by n×n matMul, median of `runs` after 2 warm-ups. */
export function measureGemmGflops(n = 1024, runs = 5, clock: Clock = systemClock): number {
  const a = tf.randomNormal([n, n], 0, 1, 'float32', 1);
  const b = tf.randomNormal([n, n], 0, 1, 'float32', 2);
  try {
    const once = (): number => {
      const t0 = clock.hrMs();
      // Read outside tf.tidy: a dataSync inside a tidy scope costs ~0.5 µs per element on wasm.
      const c = tf.matMul(a, b);
      c.dataSync();
      const ms = clock.hrMs() - t0;
      c.dispose();
      return ms;
    };
    once();
    once();
    const ms = median(Array.from({ length: runs }, once));
    return (2 * n ** 3) / (ms * 1e6);
  } finally {
    tf.dispose([a, b]);
  }
}

/** FLOPs of one training step (see TrainBenchResult.stepGflop), in GFLOP. */
export function trainStepGflop(model: tf.LayersModel, batch: number): number {
  const g = graphFromModel(model);
  const firstMacs = g.nodes.find((n) => n.macs > 0)?.macs ?? 0;
  return (2 * batch * (3 * g.totalMacs - firstMacs)) / 1e9;
}

/** Adam(1e-3) + softmax cross-entropy steps on this thread; each step's wall and CPU milliseconds. */
function timeLocalSteps(model: tf.LayersModel, b: ParallelBatch, count: number, clock: Clock, cpu: () => number | null): Array<{ ms: number; cpuMs: number | null }> {
  const opt = tf.train.adam(1e-3);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const x = tf.tensor(b.x, b.xShape, 'float32');
  const y = tf.tensor(b.y, b.yShape, 'int32');
  const times: Array<{ ms: number; cpuMs: number | null }> = [];
  try {
    for (let i = 0; i < count; i++) {
      const c0 = cpu();
      const t0 = clock.hrMs();
      const loss = opt.minimize(() => computeLoss('softmax-ce', y, model.apply(x, { training: true }) as tf.Tensor), true, vars);
      // Reading the loss forces the step to finish on any backend.
      loss?.dataSync();
      const ms = clock.hrMs() - t0;
      const c1 = cpu();
      times.push({ ms, cpuMs: c0 === null || c1 === null ? null : c1 - c0 });
      loss?.dispose();
    }
  } finally {
    tf.dispose([x, y]);
    opt.dispose();
  }
  return times;
}

/** Steps alternating between the fused BatchNorm op and tfjs-layers' own path; medians of each. */
function timeBatchNormPaths(model: tf.LayersModel, b: ParallelBatch, warmup: number, steps: number, clock: Clock): { fused: number; tfjs: number } {
  const opt = tf.train.adam(1e-3);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const x = tf.tensor(b.x, b.xShape, 'float32');
  const y = tf.tensor(b.y, b.yShape, 'int32');
  const times = { fused: [] as number[], tfjs: [] as number[] };
  const previous = setFastBatchNorm(true);
  try {
    for (let i = 0; i < 2 * (warmup + steps); i++) {
      const fused = i % 2 === 0;
      setFastBatchNorm(fused);
      const t0 = clock.hrMs();
      const loss = opt.minimize(() => computeLoss('softmax-ce', y, model.apply(x, { training: true }) as tf.Tensor), true, vars);
      loss?.dataSync();
      const ms = clock.hrMs() - t0;
      loss?.dispose();
      if (i >= 2 * warmup) (fused ? times.fused : times.tfjs).push(ms);
    }
  } finally {
    setFastBatchNorm(previous);
    tf.dispose([x, y]);
    opt.dispose();
  }
  return { fused: median(times.fused), tfjs: median(times.tfjs) };
}

interface ParallelTimes {
  stepMs1: number;
  stepMsN: number;
  cpuMs1: number | null;
  cpuMsN: number | null;
}

async function timeParallel(
  variant: RefTrainCnnVariant,
  model: tf.LayersModel,
  b: ParallelBatch,
  o: Required<Pick<TrainBenchOptions, 'workers' | 'backend' | 'steps' | 'warmup'>>,
  clock: Clock,
  say: (m: string) => void,
): Promise<ParallelTimes> {
  const init = { ...fromLayersModel(model), optimizer: { kind: 'adam' as const, lr: 1e-3 }, loss: 'softmax-ce' as const, backend: o.backend };
  const one = await createDataParallelTrainer({ ...init, workers: 1 });
  try {
    const many = await createDataParallelTrainer({ ...init, workers: o.workers });
    try {
      const t1: number[] = [];
      const tn: number[] = [];
      const c1: Array<number | null> = [];
      const cn: Array<number | null> = [];
      const busiest = (t: StepTimings | null): number | null =>
        t && t.gradCpuMs.every((v) => v !== null) ? Math.max(...(t.gradCpuMs as number[])) : null;
      for (let i = 0; i < o.warmup + o.steps; i++) {
        say(`${variant}: 1 vs ${o.workers} workers, step ${i + 1}/${o.warmup + o.steps}`);
        let t0 = clock.hrMs();
        await one.step(b);
        const d1 = clock.hrMs() - t0;
        t0 = clock.hrMs();
        await many.step(b);
        const dn = clock.hrMs() - t0;
        if (i >= o.warmup) {
          t1.push(d1);
          tn.push(dn);
          c1.push(busiest(one.lastStepTimings()));
          cn.push(busiest(many.lastStepTimings()));
        }
      }
      return { stepMs1: median(t1), stepMsN: median(tn), cpuMs1: medianOrNull(c1), cpuMsN: medianOrNull(cn) };
    } finally {
      await many.dispose();
    }
  } finally {
    await one.dispose();
  }
}

/**
 * The issue-3 training benchmark: ref-train-cnn steps (batch 64, Adam, softmax cross-entropy) on
 * this thread, batch-1 inference, the data-parallel speed-up, and the PyTorch anchor in the same
 * run so machine load affects both sides alike. Measurements run one after another, never overlap.
 */
export async function runTrainBench(options: TrainBenchOptions): Promise<TrainBenchReport> {
  const o = { batch: 64, steps: 7, warmup: 2, inferRuns: 50, variants: ['standard', 'separable'] as RefTrainCnnVariant[], ...options };
  if (!Number.isInteger(o.steps) || o.steps < 5) throw new EdgektError('EDGEKT_ERR_USAGE', `steps must be an integer ≥ 5, got ${o.steps}`);
  if (!Number.isInteger(o.batch) || o.batch < 1) throw new EdgektError('EDGEKT_ERR_USAGE', `batch must be a positive integer, got ${o.batch}`);
  if (!Number.isInteger(o.workers) || o.workers < 1) throw new EdgektError('EDGEKT_ERR_USAGE', `workers must be a positive integer, got ${o.workers}`);
  const clock = o.clock ?? systemClock;
  const perVariant = 4 + (o.workers > 1 ? o.warmup + o.steps + 1 : 0);
  const total = perVariant * o.variants.length + (o.gemmProbe === false ? 0 : 1);
  let done = 0;
  const say = (message: string): void => o.progress?.({ message, done: done++, total });
  const b = randomBatch(o.batch, 1);
  const results: TrainBenchResult[] = [];
  let torchVersion: string | null = null;
  let gemmGflops: number | null = null;
  if (o.gemmProbe !== false) {
    say('dense throughput probe (1024³ matMul)');
    gemmGflops = round(measureGemmGflops(1024, 5, clock), 1);
  }
  for (const variant of o.variants) {
    const model = buildRefTrainCnn(variant, { seed: 0 });
    try {
      say(`${variant}: ${o.warmup} warm-up + ${o.steps} timed steps on this thread (batch ${o.batch})`);
      const local = timeLocalSteps(model, b, o.warmup + o.steps, clock, o.cpuClock ?? noCpu).slice(o.warmup);
      const stepMs = median(local.map((t) => t.ms));
      const stepCpuMs = medianOrNull(local.map((t) => t.cpuMs));
      say(`${variant}: step ${stepMs.toFixed(1)} ms; batch-1 inference x${o.inferRuns}`);
      const inferMs = (await measureModelCost(model, { warmup: 5, runs: o.inferRuns, clock })).latencyP50Ms;
      say(`${variant}: BatchNorm fused vs tfjs-layers, alternating steps`);
      const bn = timeBatchNormPaths(model, b, 1, o.steps, clock);
      let par: ParallelTimes | null = null;
      if (o.workers > 1) {
        par = await timeParallel(variant, model, b, o, clock, say);
      }
      say(`${variant}: PyTorch anchor (1 thread)`);
      const torch = o.anchor ? await o.anchor(variant, { batch: o.batch, steps: o.steps, threads: 1 }) : null;
      torchVersion ??= torch?.version ?? null;
      let torchN: TorchAnchorResult | null = null;
      if (o.anchor && torch && par) {
        say(`${variant}: PyTorch anchor (${o.workers} threads)`);
        torchN = await o.anchor(variant, { batch: o.batch, steps: o.steps, threads: o.workers });
      }
      const stepGflop = trainStepGflop(model, o.batch);
      const floorStepMs = gemmGflops ? (stepGflop / gemmGflops) * 1000 : null;
      results.push({
        variant,
        stepMs: round(stepMs),
        inferMs: round(inferMs, 3),
        torchStepMs: torch ? torch.stepMs : null,
        torchInferMs: torch ? torch.inferMs : null,
        ratio: torch ? round(stepMs / torch.stepMs, 3) : null,
        inferRatio: torch ? round(inferMs / torch.inferMs, 3) : null,
        stepMs1Worker: par ? round(par.stepMs1) : null,
        stepMsNWorkers: par ? round(par.stepMsN) : null,
        speedup: par ? round(par.stepMs1 / par.stepMsN, 3) : null,
        torchStepMsNThreads: torchN ? torchN.stepMs : null,
        ratioN: torchN && par ? round(par.stepMsN / torchN.stepMs, 3) : null,
        cpu: {
          stepMs: stepCpuMs,
          stepMs1Worker: par?.cpuMs1 ?? null,
          stepMsNWorkers: par?.cpuMsN ?? null,
          speedup: par && par.cpuMs1 !== null && par.cpuMsN ? round(par.cpuMs1 / par.cpuMsN, 3) : null,
        },
        stepGflop: round(stepGflop, 3),
        stepGflops: round(stepGflop / (stepMs / 1000), 1),
        floorStepMs: floorStepMs === null ? null : round(floorStepMs, 1),
        floorRatio: floorStepMs !== null && torch ? round(floorStepMs / torch.stepMs, 3) : null,
        batchNorm: { fusedStepMs: round(bn.fused), tfjsStepMs: round(bn.tfjs), speedup: round(bn.tfjs / bn.fused, 3) },
      });
    } finally {
      model.dispose();
    }
  }
  const first = results[0];
  const speedup =
    first && first.stepMs1Worker !== null && first.stepMsNWorkers !== null && first.speedup !== null
      ? { variant: first.variant, workers: o.workers, stepMs1: first.stepMs1Worker, stepMsN: first.stepMsNWorkers, factor: first.speedup }
      : null;
  return { backend: tf.getBackend(), workers: o.workers, batch: o.batch, steps: o.steps, torchVersion, results, gemmGflops, speedup };
}
