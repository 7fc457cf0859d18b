import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  captureDistillState,
  createDistillTrainer,
  decodeDistillState,
  distill,
  encodeDistillState,
  restoreDistillState,
  type DistillOptions,
  type DistillResult,
  type DistillState,
} from '../src/compress/distill/index.js';
import { tinyImages } from './helpers/data-fixtures.js';
import { buildReferenceStudent, buildReferenceTeacher } from '../src/model/reference-teacher.js';
import { initBackend } from '../src/runtime/backend.js';

// 8x8x1, 3 classes; 40 samples in batches of 8: 5 steps an epoch, 3 epochs = 15 steps.
// FitNets with hintFraction 0.25: steps 0-3 hints, 4-14 logits (the phase boundary is step 4).
const SHAPE: [number, number, number] = [8, 8, 1];
const teacherOf = (): tf.LayersModel => buildReferenceTeacher({ seed: 0, inputShape: SHAPE, widths: [4, 8], classes: 3, denseUnits: 8 });
const studentOf = (seed: number): tf.LayersModel => buildReferenceStudent({ seed, inputShape: SHAPE, widths: [2, 4], classes: 3 });

const data = tinyImages;

const OPTIONS: DistillOptions = { epochs: 3, batchSize: 8, seed: 3, learningRate: 1e-2, recalibrateBatches: 2, noiseSigma: 0.2 };

const weightsOf = (m: tf.LayersModel): Float32Array[] => m.weights.map((w) => Float32Array.from(w.read().dataSync()));

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  expect(a.map((t) => t.length)).toEqual(b.map((t) => t.length));
  let d = 0;
  a.forEach((t, i) => t.forEach((v, k) => (d = Math.max(d, Math.abs(v - b[i]![k]!)))));
  return d;
}

/** A state as it comes back from a byte store: encoded, JSON text, decoded. */
function throughBytes(s: DistillState): DistillState {
  const e = encodeDistillState(s);
  return decodeDistillState({ meta: JSON.parse(JSON.stringify(e.meta)), weights: e.weights.slice() });
}

describe.each(['cpu', 'wasm'] as const)('distillation checkpoints (%s)', (backend) => {
  const teacher = { model: null as tf.LayersModel | null };
  const train = data(40);
  let reference: { weights: Float32Array[]; result: DistillResult } | null = null;
  const baseline = (schedule: 'fitnets' | 'joint') => ({ ...OPTIONS, schedule });

  beforeAll(async () => {
    await initBackend(backend);
    teacher.model = teacherOf();
    const s = studentOf(0);
    const result = await distill(teacher.model, s, train, baseline('fitnets'));
    reference = { weights: weightsOf(s), result };
    s.dispose();
  });

  it('saving at every step does not change the result', async () => {
    const s = studentOf(0);
    const saved: number[] = [];
    await distill(teacher.model, s, train, { ...baseline('fitnets'), checkpoint: { everySteps: 1, save: async (st) => void saved.push(st.position.globalStep) } });
    expect(saved).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(maxAbsDiff(weightsOf(s), reference!.weights)).toBe(0);
    s.dispose();
  });

  // 7: mid-epoch 2; 10: the epoch 2→3 boundary; 4: FitNets hints→logits; 15: after the last step (only recalibration left).
  it.each([7, 10, 4, 15])('killed from save at step %i, resumed in a fresh student, gives the uninterrupted weights', async (k) => {
    const before = tf.memory().numTensors;
    const first = studentOf(0);
    let last: DistillState | null = null;
    const kill = distill(teacher.model, first, train, {
      ...baseline('fitnets'),
      checkpoint: {
        everySteps: 1,
        save: async (st) => {
          last = throughBytes(st);
          if (st.position.globalStep === k) throw new Error('killed');
        },
      },
    });
    await expect(kill).rejects.toThrow('killed');
    first.dispose();
    expect(last!.position.globalStep).toBe(k);

    const fresh = studentOf(9); // other initial weights: the state must overwrite all of them
    const result = await distill(teacher.model, fresh, train, { ...baseline('fitnets'), checkpoint: { everySteps: 100, save: async () => {}, load: last } });
    const diff = maxAbsDiff(weightsOf(fresh), reference!.weights);
    expect(diff).toBeLessThanOrEqual(1e-6);
    expect(diff).toBe(0);
    expect(result.steps).toBe(15);
    expect(result.history).toEqual(reference!.result.history);
    fresh.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('an abort through the signal throws EDGEKT_ERR_ABORTED; the last periodic save resumes the joint schedule exactly', async () => {
    const ref = studentOf(0);
    await distill(teacher.model, ref, train, baseline('joint'));
    const want = weightsOf(ref);
    ref.dispose();

    const ctl = new AbortController();
    const s = studentOf(0);
    let last: DistillState | null = null;
    const run = distill(teacher.model, s, train, {
      ...baseline('joint'),
      onProgress: (p) => p.globalStep === 8 && ctl.abort(),
      signal: ctl.signal,
      checkpoint: { everySteps: 3, save: async (st) => void (last = throughBytes(st)) },
    });
    await expect(run).rejects.toMatchObject({ code: 'EDGEKT_ERR_ABORTED' });
    s.dispose();
    expect(last!.position).toEqual({ globalStep: 6, epoch: 2, step: 1 });
    const fresh = studentOf(4);
    await distill(teacher.model, fresh, train, { ...baseline('joint'), checkpoint: { everySteps: 3, save: async () => {}, load: last } });
    expect(maxAbsDiff(weightsOf(fresh), want)).toBe(0);
    fresh.dispose();
  });

  it('restore then capture gives back the same state (Adam iterations and beta powers included), leaking nothing', async () => {
    const s = studentOf(0);
    let mid: DistillState | null = null;
    await distill(teacher.model, s, train, { ...baseline('fitnets'), maxSteps: 6, checkpoint: { everySteps: 6, save: async (st) => void (mid = st) } });
    expect(mid!.optimizers.map((o) => [o.phase, o.iterations])).toEqual([['hints', 2], ['logits', 4]]); // maxSteps 6: round(0.25 * 6) = 2 hint steps
    // β^t accumulated in float32, one multiplication per step.
    const accumulated = (beta: number, steps: number): number => {
      let acc = Math.fround(beta);
      for (let i = 0; i < steps; i++) acc = Math.fround(acc * Math.fround(beta));
      return acc;
    };
    expect(mid!.optimizers[1]!.accBeta1).toBe(accumulated(0.9, 4));
    expect(mid!.optimizers[0]!.accBeta2).toBe(accumulated(0.999, 2));
    // What tfjs's setWeights alone would put back (pow) differs in the last bit: the state must carry it.
    expect(Math.fround(Math.fround(0.999) ** 3)).not.toBe(accumulated(0.999, 2));
    const fresh = studentOf(7);
    const before = tf.memory().numTensors;
    for (let round = 0; round < 3; round++) {
      const trainer = createDistillTrainer(teacher.model, fresh, { ...OPTIONS });
      await restoreDistillState(trainer, fresh, mid!);
      const again = await captureDistillState(trainer, fresh, { run: mid!.run, position: mid!.position, history: mid!.history, epochSums: mid!.epochSums });
      expect(again.optimizers.map((o) => ({ ...o, moments: o.moments.map((m) => m.data) }))).toEqual(mid!.optimizers.map((o) => ({ ...o, moments: o.moments.map((m) => m.data) })));
      expect(again.student.map((t) => t.data)).toEqual(mid!.student.map((t) => t.data));
      expect(again.adapters.map((t) => t.data)).toEqual(mid!.adapters.map((t) => t.data));
      expect(again.rng).toEqual(mid!.rng);
      trainer.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
    s.dispose();
    fresh.dispose();
  });

  it('everySeconds saves by the injected clock', async () => {
    let t = 0;
    const saved: number[] = [];
    const s = studentOf(0);
    await distill(teacher.model, s, train, {
      ...baseline('joint'),
      onProgress: () => void (t += 400),
      checkpoint: { everySeconds: 1, clock: { now: () => t, hrMs: () => t }, save: async (st) => void saved.push(st.position.globalStep) },
    });
    expect(saved).toEqual([3, 6, 9, 12, 15]);
    s.dispose();
  });
});

describe('distillation state validation', () => {
  const train = data(40);
  let state: DistillState | null = null;
  const teacher = { model: null as tf.LayersModel | null };

  beforeAll(async () => {
    await initBackend('cpu');
    teacher.model = teacherOf();
    const s = studentOf(0);
    await distill(teacher.model, s, train, { ...OPTIONS, maxSteps: 2, checkpoint: { everySteps: 2, save: async (st) => void (state = st) } });
    s.dispose();
  });

  it('decode rejects bad meta and wrong-sized bytes with EDGEKT_ERR_CHECKPOINT', () => {
    const e = encodeDistillState(state!);
    const meta = JSON.parse(JSON.stringify(e.meta)) as Record<string, unknown>;
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (err) {
        return (err as { code?: string }).code;
      }
      return undefined;
    };
    expect(code(() => decodeDistillState({ meta, weights: e.weights }))).toBeUndefined();
    expect(code(() => decodeDistillState({ meta: { ...meta, version: 2 }, weights: e.weights }))).toBe('EDGEKT_ERR_CHECKPOINT');
    expect(code(() => decodeDistillState({ meta: { ...meta, position: { globalStep: -1 } }, weights: e.weights }))).toBe('EDGEKT_ERR_CHECKPOINT');
    expect(code(() => decodeDistillState({ meta: 'nope', weights: e.weights }))).toBe('EDGEKT_ERR_CHECKPOINT');
    expect(code(() => decodeDistillState({ meta, weights: e.weights.subarray(0, e.weights.length - 4) }))).toBe('EDGEKT_ERR_CHECKPOINT');
  });

  it('resuming a run with other options, or into another architecture, fails with EDGEKT_ERR_CHECKPOINT', async () => {
    const resume = (student: tf.LayersModel, o: DistillOptions) =>
      distill(teacher.model, student, train, { ...OPTIONS, maxSteps: 2, ...o, checkpoint: { everySteps: 1, save: async () => {}, load: state } });
    await expect(resume(studentOf(0), { batchSize: 4 })).rejects.toMatchObject({ code: 'EDGEKT_ERR_CHECKPOINT' });
    await expect(resume(studentOf(0), { seed: 4 })).rejects.toMatchObject({ code: 'EDGEKT_ERR_CHECKPOINT' });
    const wider = buildReferenceStudent({ seed: 0, inputShape: SHAPE, widths: [3, 4], classes: 3 });
    await expect(resume(wider, {})).rejects.toMatchObject({ code: 'EDGEKT_ERR_CHECKPOINT' });
    await expect(resume(studentOf(0), {})).resolves.toMatchObject({ steps: 2 });
  });
});
