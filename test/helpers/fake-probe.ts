import * as tf from '@tensorflow/tfjs';
import type { CostProbe } from '../../src/compress/budget.js';
import type { ModelCost } from '../../src/config/measurement.js';

/** A calm device: cost grows with parameters. */
export function paramCost(m: tf.LayersModel): ModelCost {
  const p = m.countParams();
  return { latencyP50Ms: p / 1000, latencyP95Ms: p / 900, latencyP99Ms: p / 800, peakMemoryMB: (p * 4) / 2 ** 20, modelSizeKB: (p * 4) / 1024, params: p };
}

export interface FakeProbeOptions {
  cost?: (m: tf.LayersModel) => ModelCost;
  /**
   * Slow-down of one probe call (a measurement run) for each model in it: the machine's load,
   * as a function of the call number and the candidate. Default 1 everywhere.
   */
  slowdown?: (call: number, candidate: tf.LayersModel, isReference: boolean) => number;
}

const slowed = (c: ModelCost, f: number, call: number): ModelCost => ({
  ...c,
  latencyP50Ms: c.latencyP50Ms * f,
  latencyP95Ms: c.latencyP95Ms * f,
  latencyP99Ms: c.latencyP99Ms * f,
  load: { loadAvg1Before: f, loadAvg1After: f, stealPct: call % 2 },
});

/** Deterministic stand-in for the device (time and measurement are the only fakes allowed). */
export function createFakeProbe(o: FakeProbeOptions = {}): CostProbe & { calls: () => number } {
  const cost = o.cost ?? paramCost;
  const slow = o.slowdown ?? (() => 1);
  let calls = 0;
  return {
    calls: () => calls,
    measure: async (m) => {
      const call = calls++;
      return slowed(cost(m), slow(call, m, false), call);
    },
    compare: async (c, r) => {
      const call = calls++;
      const candidate = slowed(cost(c), slow(call, c, false), call);
      const reference = slowed(cost(r), slow(call, c, true), call);
      return { candidate, reference, ratioP95: candidate.latencyP95Ms / reference.latencyP95Ms, ratioP50: candidate.latencyP50Ms / reference.latencyP50Ms };
    },
  };
}

/** conv(16) → conv(c2) → GAP → dense(units) on 8×8×1: prunable, with c2 setting its cost. */
export function twoConvNet(c2: number, units = 4): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' }));
  m.add(tf.layers.conv2d({ filters: c2, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2' }));
  m.add(tf.layers.globalAveragePooling2d({ name: 'gap' }));
  m.add(tf.layers.dense({ units, name: 'head' }));
  return m;
}
