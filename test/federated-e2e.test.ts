import { readFileSync } from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEnrolledTrainerFor, type EnrolledTrainerFor } from '../src/agent/round-enrolment.js';
import type { RoundTrainerFor } from '../src/agent/round-client.js';
import { parseDeviceProfile } from '../src/config/device-profile.js';
import { encodeGlobal } from '../src/coordinator/rounds/files.js';
import { decodeUpdate, type ClientUpdate, type IndexMap, type WeightSet } from '../src/federated/index.js';
import { weightSetFromModel } from '../src/federated/tfjs-weights.js';
import type { CoordinatorStore } from '../src/store/coordinator/index.js';
import { startAedes, type AedesBroker } from './helpers/aedes.js';
import { coordinatorFiles, waitUntil } from './helpers/coordinator-harness.js';
import { TINY_PROFILE } from './helpers/fleet.js';
import { globalOf, startAedesCoordinator, waitForRun } from './helpers/round-harness.js';
import { roundData, tinyRoundBase, topologyJson } from './helpers/round-models.js';
import { inProcessAgent, type InProcessAgent } from './helpers/rounds.js';

/**
 * Federated rounds end to end with nothing simulated: the real coordinator (round driver, intake,
 * SQLite, HTTP on port 0) on aedes, and agent daemons in this process with the agent's own round
 * client (fleet-key verification, block pulls, device-key signing, update serving) and the trainer
 * `edgekt agent` wires (enrolment pruned to the profile's budget, createRoundTrainer, tfjs cpu).
 */

/** Calls `f(local, global)` for every coordinate of `shape` sliced by `axes`: flat offsets, row-major, by hand. */
function eachCoordinate(shape: readonly number[], axes: ReadonlyArray<readonly number[] | null> | undefined, f: (local: number, global: number) => void): void {
  const kept = shape.map((d, a) => axes?.[a] ?? Array.from({ length: d }, (_, i) => i));
  const total = kept.reduce((p, k) => p * k.length, 1);
  for (let local = 0; local < total; local++) {
    let rest = local;
    let global = 0;
    let stride = 1;
    for (let a = shape.length - 1; a >= 0; a--) {
      global += kept[a]![rest % kept[a]!.length]! * stride;
      rest = Math.floor(rest / kept[a]!.length);
      stride *= shape[a]!;
    }
    f(local, global);
  }
}

function sliceByHand(global: WeightSet, map: IndexMap): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, t] of Object.entries(global)) {
    const v: number[] = [];
    eachCoordinate(t.shape, map[name], (l, g) => (v[l] = t.values[g]!));
    out[name] = v;
  }
  return out;
}

/** Each coordinate: the sample-weighted mean over the updates that hold it, else the global value. */
function maskedMeanByHand(global: WeightSet, updates: readonly ClientUpdate[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, t] of Object.entries(global)) {
    const num = new Float64Array(t.values.length);
    const den = new Float64Array(t.values.length);
    for (const u of updates) {
      eachCoordinate(t.shape, u.indexMap?.[name], (l, g) => {
        num[g] = num[g]! + u.numSamples * u.weights[name]!.values[l]!;
        den[g] = den[g]! + u.numSamples;
      });
    }
    out[name] = Array.from(t.values, (v, g) => (den[g]! > 0 ? num[g]! / den[g]! : v));
  }
  return out;
}

async function updatesOf(store: CoordinatorStore, roundId: string): Promise<Map<string, ClientUpdate>> {
  const rows = await store.listRoundUpdates(roundId);
  return new Map(rows.filter((r) => r.payloadLocation).map((r) => [r.deviceId, decodeUpdate(new Uint8Array(readFileSync(r.payloadLocation))).update]));
}

/** What a round trainer loaded into its student before training, per `layer/suffix` (recorded from Layer.setWeights). */
let recording: Record<string, number[]> | null = null;
const originalSetWeights = tf.layers.Layer.prototype.setWeights;

/** Trainers take turns (two shared cores), so tensor counts after each training are comparable. */
let turn: Promise<unknown> = Promise.resolve();
function inTurn<T>(f: () => Promise<T>): Promise<T> {
  const p = turn.then(f);
  turn = p.catch(() => {});
  return p;
}

interface Trained {
  device: string;
  round: number;
  global: WeightSet;
  loaded: Record<string, number[]>;
  tensorsAfter: number;
}

describe('federated rounds end to end (real coordinator, real agents, tfjs cpu, aedes)', () => {
  let broker: AedesBroker;
  const cleanups: Array<() => Promise<void> | void> = [];
  const trained: Trained[] = [];
  beforeAll(async () => {
    await tf.setBackend('cpu');
    broker = await startAedes();
    tf.layers.Layer.prototype.setWeights = function (this: tf.layers.Layer, weights: tf.Tensor[]) {
      if (recording) this.weights.forEach((v, i) => (recording![`${this.name}/${v.originalName.split('/').pop()}`] = Array.from(weights[i]!.dataSync())));
      return originalSetWeights.call(this, weights);
    };
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    tf.layers.Layer.prototype.setWeights = originalSetWeights;
    await broker?.stop();
  });

  /** The agent's real trainer factory on a device's own data and budget, wrapped to record each round's start. */
  function realTrainer(device: string, budget: string, seed: number, dir: () => string): RoundTrainerFor {
    const real: EnrolledTrainerFor = createEnrolledTrainerFor({
      get stateDir() {
        return path.join(dir(), 'state');
      },
      profile: parseDeviceProfile({ ...TINY_PROFILE, budgets: { modelSizeKB: budget } }), seed, train: { maxSteps: 4 },
      logger: pino({ level: 'silent' }), loadData: async () => roundData(seed), teacherFor: async () => null,
    });
    cleanups.push(() => real.dispose());
    return async (config, base, global) => {
      const trainer = await inTurn(() => real(config, base, global));
      return (req) => inTurn(async () => {
        recording = {};
        let p;
        try {
          p = trainer(req); // loads the slice synchronously, before its first await
        } finally {
          trained.push({ device, round: req.round, global: req.global, loaded: recording, tensorsAfter: -1 });
          recording = null;
        }
        const r = await p;
        trained.filter((t) => t.device === device && t.round === req.round).at(-1)!.tensorsAfter = tf.memory().numTensors;
        return r;
      });
    };
  }

  async function setup(devices: Array<{ id: string; trainerFor: (self: () => InProcessAgent) => RoundTrainerFor; budget?: string }>) {
    const files = coordinatorFiles();
    cleanups.push(() => files.cleanup());
    const c = await startAedesCoordinator({ id: 'e2e', brokerUrl: broker.url, files });
    cleanups.push(() => c.stop());
    const agents = new Map<string, InProcessAgent>();
    for (const d of devices) {
      const a: InProcessAgent = inProcessAgent({ brokerUrl: broker.url, deviceId: d.id, fleet: files.fleet, trainerFor: d.trainerFor(() => a), profile: { ...TINY_PROFILE, budgets: { modelSizeKB: d.budget ?? '0.5x' } } });
      cleanups.push(() => a.remove());
      await a.start();
      agents.set(d.id, a);
    }
    await waitUntil('agents registered, idle', async () => {
      for (const d of devices) if (!(await c.store.getDevice(d.id))?.telemetry) return false;
      return true;
    }, 10_000);
    const base = tinyRoundBase();
    const global = weightSetFromModel(base);
    const modelJson = topologyJson(base);
    base.dispose();
    return { c, agents, global, start: (id: string, spec: object) => c.api('POST', '/api/federated', { id, spec, base: { modelJson, weights: Buffer.from(encodeGlobal(global, 0, 'upload')).toString('base64') } }) };
  }

  it('two agents, two rounds: the round-1 global is the masked aggregate of what they sent, round 2 starts from each one\'s slice of it, no tensor leaks', async () => {
    trained.length = 0;
    const dev = (id: string, budget: string, seed: number) => ({ id, budget, trainerFor: (self: () => InProcessAgent) => realTrainer(id, budget, seed, () => self().dir) });
    const { c, global, start } = await setup([dev('e2e-a', '0.5x', 11), dev('e2e-b', '0.25x', 12)]);
    const started = await start('e2e1', { rounds: 2, deadlineSeconds: 30, epochs: 1, batchSize: 8, learningRate: 0.01, selection: { minCount: 2 } });
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    const run = await waitForRun(c.store, 'e2e1', ['completed', 'failed'], 60_000);
    expect(run).toMatchObject({ state: 'completed', roundNumber: 2 });
    const [r1, r2] = await c.store.listRounds({ runId: 'e2e1' });
    expect(r1!.result).toMatchObject({ state: 'completed', included: ['e2e-a', 'e2e-b'], refused: [], dropped: [] });
    expect(r2!.result).toMatchObject({ state: 'completed', included: ['e2e-a', 'e2e-b'] });

    // Round 1: the updates as the coordinator stored them, aggregated by hand, against its global.
    const sent = await updatesOf(c.store, r1!.id);
    const a = sent.get('e2e-a')!;
    const b = sent.get('e2e-b')!;
    expect([a.clientId, a.numSamples, b.clientId, b.numSamples]).toEqual(['e2e-a', 32, 'e2e-b', 32]);
    // Different budgets: different channel sets, so the aggregate is masked (b sends fewer values than a).
    const values = (u: ClientUpdate): number => Object.values(u.weights).reduce((n, t) => n + t.values.length, 0);
    expect(values(b)).toBeLessThan(values(a));
    expect(values(a)).toBeLessThan(Object.values(global).reduce((n, t) => n + t.values.length, 0));
    expect(JSON.stringify(b.indexMap)).not.toBe(JSON.stringify(a.indexMap));
    const global1 = await globalOf(c.store, (r1!.result as { globalSha256: string }).globalSha256);
    const want = maskedMeanByHand(global, [a, b]);
    let onlyGlobal = 0;
    for (const [name, t] of Object.entries(global1)) {
      Array.from(t.values).forEach((v, i) => expect(Math.abs(v - want[name]![i]!), `${name}[${i}]`).toBeLessThan(1e-6));
      onlyGlobal += Array.from(t.values).filter((v, i) => v === global[name]!.values[i]).length;
    }
    expect(onlyGlobal).toBeGreaterThan(0); // channels neither device keeps stay at the base value

    // Round 2: each agent got the new global and its student started from its own slice of it.
    expect(trained.map((t) => t.round)).toEqual([1, 1, 2, 2]);
    for (const [id, u] of [['e2e-a', a], ['e2e-b', b]] as const) {
      const t2 = trained.find((t) => t.device === id && t.round === 2)!;
      for (const [name, t] of Object.entries(global1)) expect(Array.from(t2.global[name]!.values), name).toEqual(Array.from(t.values));
      const slice = sliceByHand(global1, u.indexMap!);
      for (const name of Object.keys(global1)) expect(t2.loaded[name], `${id} ${name}`).toEqual(slice[name]);
    }
    // After both enrolments, each later training leaves the tensor count where it was.
    const counts = trained.map((t) => t.tensorsAfter);
    expect(counts[2]).toBe(counts[1]);
    expect(counts[3]).toBe(counts[1]);
  }, 90_000);

  it('an agent whose connection dies mid-round does not hold the round: it closes at its deadline with the others', async () => {
    trained.length = 0;
    const dev = (id: string, seed: number) => ({ id, trainerFor: (self: () => InProcessAgent) => realTrainer(id, '0.5x', seed, () => self().dir) });
    let crashedAt = 0;
    const crash = {
      id: 'e2e-z',
      trainerFor: (self: () => InProcessAgent): RoundTrainerFor => async () => (req) => {
        // The socket goes away under the agent mid-round, with no reconnect: its broker will says offline.
        const cl = self().agent.client!;
        cl.options.reconnectPeriod = 0;
        (cl.stream as net.Socket).destroy();
        crashedAt = Date.now();
        return new Promise((_, reject) => req.signal.addEventListener('abort', () => reject(new Error('aborted'))));
      },
    };
    const { c, global, start, agents } = await setup([dev('e2e-x', 21), dev('e2e-y', 22), crash]);
    const crashed = agents.get('e2e-z')!;
    const t0 = Date.now();
    expect((await start('e2e2', { rounds: 1, deadlineSeconds: 5, epochs: 1, batchSize: 8, learningRate: 0.01, selection: { minCount: 2 } })).status).toBe(200);
    const run = await waitForRun(c.store, 'e2e2', ['completed', 'failed'], 20_000);
    const took = Date.now() - t0;
    expect(crashedAt).toBeGreaterThan(0);
    expect(run.state).toBe('completed');
    expect(took).toBeGreaterThanOrEqual(4500);
    expect(took).toBeLessThan(8000);
    const [round] = await c.store.listRounds({ runId: 'e2e2' });
    expect(round!.result).toMatchObject({ state: 'completed', included: ['e2e-x', 'e2e-y'], dropped: ['e2e-z'], refused: [], late: [] });
    const sent = await updatesOf(c.store, round!.id);
    expect([...sent.keys()].sort()).toEqual(['e2e-x', 'e2e-y']);
    const want = maskedMeanByHand(global, [...sent.values()]);
    const g = await globalOf(c.store, run.globalSha256);
    for (const [name, t] of Object.entries(g)) Array.from(t.values).forEach((v, i) => expect(Math.abs(v - want[name]![i]!)).toBeLessThan(1e-6));
    expect(crashed.agent.client!.connected).toBe(false);
    // Stopping the agent with its socket gone (unacknowledged QoS 1 publishes, no reconnect) must not hang.
    const s0 = Date.now();
    await crashed.agent.stop();
    expect(Date.now() - s0).toBeLessThan(3000);
  }, 60_000);
});
