import { existsSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnrolledTrainerFor, cutForProfile, type EnrolledTrainerFor } from '../src/agent/round-enrolment.js';
import { parseDeviceProfile } from '../src/config/device-profile.js';
import { parseRoundConfig } from '../src/config/federated.js';
import { sizeOf, toWeightsUpdate, validateUpdate, type WeightSet } from '../src/federated/index.js';
import { weightSetFromModel } from '../src/federated/tfjs-weights.js';
import { generateKeyPair } from '../src/transport/keys.js';
import { TINY_PROFILE } from './helpers/fleet.js';
import { roundData as localData, tinyRoundBase as tinyBase, topologyJson } from './helpers/round-models.js';
import { inProcessAgent, restartableAedes, sha256, stubCoordinator, type InProcessAgent } from './helpers/rounds.js';

const fleet = generateKeyPair();
const PROFILE = { ...TINY_PROFILE, budgets: { modelSizeKB: '0.5x' } };

let broker: Awaited<ReturnType<typeof restartableAedes>>;
let coord: Awaited<ReturnType<typeof stubCoordinator>>;
let dev: InProcessAgent;
let trainers: EnrolledTrainerFor;
let global: WeightSet;
let modelJson: string;
const enrolLog: string[] = [];

beforeAll(async () => {
  await tf.setBackend('cpu');
  const base = tinyBase();
  global = weightSetFromModel(base);
  modelJson = JSON.stringify(topologyJson(base));
  base.dispose();
  broker = await restartableAedes();
  coord = await stubCoordinator(broker.url);
  let stateDir = '';
  trainers = createEnrolledTrainerFor({
    get stateDir() {
      return stateDir;
    },
    profile: parseDeviceProfile(PROFILE), seed: 3, logger: pino({ level: 'info' }, { write: (s: string) => void enrolLog.push(s) }),
    loadData: async () => localData(),
    teacherFor: async () => null,
  });
  dev = inProcessAgent({ brokerUrl: broker.url, deviceId: 'real1', fleet, trainerFor: trainers, profile: PROFILE });
  stateDir = path.join(dev.dir, 'state');
  await dev.start();
}, 30_000);

afterAll(async () => {
  await dev?.remove();
  trainers?.dispose();
  await coord?.stop();
  await broker?.stop();
});

describe('agent rounds with the real enrolment and createRoundTrainer (tfjs cpu)', () => {
  it('enrols once (pruned to the profile size budget, cached by base sha), trains two rounds, leaks no tensors', async () => {
    const invite = (roundId: string, round: number, weights: WeightSet) =>
      coord.invite({ deviceId: 'real1', roundId, round, global: weights, key: fleet.privateKey, modelJson, config: { epochs: 1, batchSize: 8, learningRate: 0.01 } });
    await coord.send('real1', invite('real-r1', 1, global));
    const r1 = await coord.report('real-r1', 'real1', 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${dev.log.slice(-20).join('\n')}`);
    });
    expect(r1.type, JSON.stringify(r1)).toBe('round-update');
    const after1 = tf.memory().numTensors;
    const u1 = (await coord.pullUpdate(r1, dev.deviceKey.publicKey)).decoded.update;
    expect(validateUpdate(global, u1, 1)).toEqual([]);
    // The profile's 0.5x size budget: a cut of 1 − √0.5 of the channels, so the update is smaller than the global.
    const n = (w: WeightSet): number => Object.values(w).reduce((a, t) => a + sizeOf(t.shape), 0);
    expect(cutForProfile(parseDeviceProfile(PROFILE), 1)).toBeCloseTo(1 - Math.SQRT1_2, 6);
    expect(n(u1.weights)).toBeLessThan(n(global));
    const done = JSON.parse(enrolLog.find((l) => l.includes('federated enrolment done'))!) as { baseParams: number; studentParams: number; cut: number };
    expect(done.studentParams).toBeLessThan(done.baseParams);
    console.log(`enrolment: cut ${done.cut.toFixed(3)}, params ${done.baseParams} → ${done.studentParams}; update ${n(u1.weights)} of ${n(global)} values; tensors after round 1 ${after1}`);
    expect(u1.indexMap?.['c1/kernel']?.[3]?.length).toBeLessThan(6);
    // Training moved the kept weights.
    const moved = Object.entries(toWeightsUpdate(global, u1).weights).some(([k, t]) => k === 'head/bias' && t.values.some((v) => Math.abs(v) > 1e-6));
    expect(moved).toBe(true);

    // Round 2 from the aggregated-looking global (round 1's update placed back is enough here).
    await coord.send('real1', invite('real-r2', 2, global));
    const r2 = await coord.report('real-r2', 'real1', 60_000);
    expect(r2.type).toBe('round-update');
    const u2 = (await coord.pullUpdate(r2, dev.deviceKey.publicKey)).decoded.update;
    expect(u2.indexMap).toEqual(u1.indexMap); // the cached enrolment, not a second one
    expect(tf.memory().numTensors).toBe(after1);

    // The enrolment is on disk under the base's sha256 and a fresh factory (a restart) reuses it.
    const baseSha = sha256(new TextEncoder().encode(modelJson));
    const cached = path.join(dev.dir, 'state', 'federated', baseSha);
    expect(existsSync(path.join(cached, 'index-map.json'))).toBe(true);
    const lines: string[] = [];
    const again = createEnrolledTrainerFor({
      stateDir: path.join(dev.dir, 'state'), profile: parseDeviceProfile(PROFILE), logger: pino({ level: 'info' }, { write: (s: string) => void lines.push(s) }),
      loadData: async () => localData(), teacherFor: async () => null,
    });
    const config = parseRoundConfig({ type: 'round-config', roundId: 'x', round: 3, strategy: 'fedavg', epochs: 1, learningRate: 0.01, batchSize: 8, deadline: new Date(Date.now() + 60_000).toISOString() });
    const t = await again(config, { modelJson, baseSha256: baseSha }, global);
    const r3 = await t({ roundId: 'x', round: 3, config, global, signal: new AbortController().signal });
    expect(r3.indexMap).toEqual(u1.indexMap);
    expect(lines.some((l) => l.includes('federated enrolment reused'))).toBe(true);
    again.dispose();
  }, 120_000);
});
