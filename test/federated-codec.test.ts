import { describe, expect, it } from 'vitest';
import { parseRoundConfig, UpdateHeaderSchema } from '../src/config/federated.js';
import { createRng, normal } from '../src/core/random.js';
import {
  aggregate,
  aggregateOptionsFor,
  decodeFloat16,
  decodeUpdate,
  encodeFloat16,
  encodeUpdate,
  fromFloat16Bits,
  l2Norm,
  tensor,
  toDeltaUpdate,
  toFloat16Bits,
  zipWeights,
  validateUpdate,
  type ClientUpdate,
} from '../src/federated/index.js';
import { codeOf } from './helpers/errors.js';

describe('float16', () => {
  it('matches IEEE binary16 on known values, rounding to nearest even', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00], [-2, 0xc000], [0.1, 0x2e66], [65504, 0x7bff], [65520, 0x7c00], [-1e9, 0xfc00],
      [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [-0, 0x8000],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [Number.POSITIVE_INFINITY, 0x7c00],
    ];
    for (const [x, bits] of cases) expect(toFloat16Bits(x), String(x)).toBe(bits);
    expect(fromFloat16Bits(toFloat16Bits(Number.NaN))).toBeNaN();
  });

  it('decode then encode is the identity on all 65,536 bit patterns except NaNs', () => {
    let checked = 0;
    for (let h = 0; h < 0x10000; h++) {
      const x = fromFloat16Bits(h);
      if (Number.isNaN(x)) continue;
      if (toFloat16Bits(x) !== h) throw new Error(`0x${h.toString(16)} -> ${x} -> 0x${toFloat16Bits(x).toString(16)}`);
      checked++;
    }
    expect(checked).toBe(0x10000 - 2 * 1023);
  });

  it('round-trip error ≤ 2⁻¹¹ relative (normal range) and ≤ 2⁻²⁵ absolute (subnormals)', () => {
    const rng = createRng(5);
    const xs = Float32Array.from({ length: 20000 }, (_, i) => normal(rng) * 10 ** ((i % 12) - 8));
    const back = decodeFloat16(encodeFloat16(xs));
    let worstRel = 0;
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i]!;
      const err = Math.abs(back[i]! - x);
      if (Math.abs(x) >= 2 ** -14) worstRel = Math.max(worstRel, err / Math.abs(x));
      else expect(err).toBeLessThanOrEqual(2 ** -25);
    }
    expect(worstRel).toBeLessThanOrEqual(2 ** -11);
    expect(worstRel).toBeGreaterThan(2 ** -12); // the bound is tight, not vacuous
  });
});

const update: ClientUpdate = {
  clientId: 'pi-7', round: 3, numSamples: 120,
  weights: { 'c1/kernel': tensor([1, 1, 2, 2], [0.5, -1.25, 3, 1e-3]), 'c1/bias': tensor([2], [0.1, -0.2]) },
  indexMap: { 'c1/kernel': [null, null, null, [1, 4]], 'c1/bias': [[1, 4]] },
};

describe('binary update format', () => {
  it('float32 round-trips exactly, index map and metrics included', () => {
    const bytes = encodeUpdate(update, { roundId: 'r-3', encoding: 'float32', metrics: { loss: 0.5 } });
    const { header, update: back } = decodeUpdate(bytes);
    expect(header).toMatchObject({ roundId: 'r-3', round: 3, clientId: 'pi-7', numSamples: 120, encoding: 'float32', metrics: { loss: 0.5 } });
    expect(back).toEqual(update);
  });

  it('float16 halves the tensor bytes within the error bound', () => {
    const f32 = encodeUpdate(update, { roundId: 'r-3', encoding: 'float32' });
    const f16 = encodeUpdate(update, { roundId: 'r-3', encoding: 'float16' });
    expect(f32.length - f16.length).toBe(6 * 2 + ('float32'.length - 'float16'.length));
    const back = decodeUpdate(f16).update;
    for (const [name, t] of Object.entries(update.weights)) {
      back.weights[name]!.values.forEach((v, i) => expect(Math.abs(v - t.values[i]!)).toBeLessThanOrEqual(Math.abs(t.values[i]!) * 2 ** -11));
    }
  });

  it('float16 of a delta keeps a small fine-tuning step that float16 of the weights loses', () => {
    const rng = createRng(9);
    const n = 256;
    const global = { w: tensor([n], Array.from({ length: n }, () => 0.75 + 0.2 * normal(rng))) };
    const step = { w: tensor([n], Array.from({ length: n }, () => 1e-4 * normal(rng))) };
    const trained: ClientUpdate = { clientId: 'd', round: 1, numSamples: 1, weights: zipWeights(global, step, (g, d) => g + d) };
    const roundTrip = (u: ClientUpdate): ClientUpdate => decodeUpdate(encodeUpdate(u, { roundId: 'r', encoding: 'float16' })).update;
    const stepError = (u: ClientUpdate): number => {
      const w = aggregate(global, [u], { round: 1, strategy: { kind: 'fedavg' } }).weights;
      return l2Norm(zipWeights(zipWeights(w, global, (a, b) => a - b), step, (a, b) => a - b)) / l2Norm(step);
    };
    const asDelta = roundTrip(toDeltaUpdate(global, trained));
    expect(asDelta.isDelta).toBe(true);
    expect(stepError(asDelta)).toBeLessThan(0.01);
    expect(stepError(roundTrip(trained))).toBeGreaterThan(0.5);
  });

  it('refuses broken payloads with EDGEKT_ERR_UPDATE_FORMAT', () => {
    const bytes = encodeUpdate(update, { roundId: 'r-3', encoding: 'float32' });
    expect(codeOf(() => decodeUpdate(bytes.subarray(0, bytes.length - 1)))).toBe('EDGEKT_ERR_UPDATE_FORMAT');
    const badMagic = bytes.slice();
    badMagic[0] = 0;
    expect(codeOf(() => decodeUpdate(badMagic))).toBe('EDGEKT_ERR_UPDATE_FORMAT');
    const json = new TextEncoder().encode(JSON.stringify({ format: 'edgekt-update', version: 2 }));
    const wrongHeader = new Uint8Array(8 + json.length);
    wrongHeader.set([0x45, 0x4b, 0x55, 0x50]);
    new DataView(wrongHeader.buffer).setUint32(4, json.length, true);
    wrongHeader.set(json, 8);
    expect(codeOf(() => decodeUpdate(wrongHeader))).toBe('EDGEKT_ERR_UPDATE_FORMAT');
    expect(codeOf(() => decodeUpdate(new Uint8Array(3)))).toBe('EDGEKT_ERR_UPDATE_FORMAT');
  });

  it('float16 refuses values it cannot hold; NaN in float32 decodes and is refused by validateUpdate', () => {
    const big = { ...update, weights: { ...update.weights, 'c1/bias': tensor([2], [7e4, 0]) } };
    expect(codeOf(() => encodeUpdate(big, { roundId: 'r', encoding: 'float16' }))).toBe('EDGEKT_ERR_UPDATE_NONFINITE');
    const nan = { ...update, weights: { ...update.weights, 'c1/bias': tensor([2], [Number.NaN, 0]) } };
    const back = decodeUpdate(encodeUpdate(nan, { roundId: 'r', encoding: 'float32' })).update;
    const global = { 'c1/kernel': tensor([1, 1, 2, 6], new Array(12).fill(0)), 'c1/bias': tensor([6], new Array(6).fill(0)) };
    expect(validateUpdate(global, back, 3).map((p) => p.code)).toEqual(['EDGEKT_ERR_UPDATE_NONFINITE']);
    expect(validateUpdate(global, decodeUpdate(encodeUpdate(update, { roundId: 'r', encoding: 'float16' })).update, 3)).toEqual([]);
  });

  it('the header schema is strict', () => {
    const ok = { format: 'edgekt-update', version: 1, roundId: 'r', round: 0, clientId: 'd', numSamples: 1, encoding: 'float16', tensors: [{ name: 'a', shape: [2] }] };
    expect(UpdateHeaderSchema.safeParse(ok).success).toBe(true);
    expect(UpdateHeaderSchema.safeParse({ ...ok, numSamples: 0 }).success).toBe(false);
    expect(UpdateHeaderSchema.safeParse({ ...ok, extra: 1 }).success).toBe(false);
    expect(UpdateHeaderSchema.safeParse({ ...ok, tensors: [{ name: 'a', shape: [2], indices: [[-1]] }] }).success).toBe(false);
  });
});

describe('round config', () => {
  const base = { type: 'round-config', roundId: 'r-1', round: 1, strategy: 'fedadam', epochs: 1, learningRate: 0.01, batchSize: 32, deadline: '2026-01-01T00:00:00Z' };
  it('fills defaults and maps to the server options', () => {
    const c = parseRoundConfig({ ...base, clip: 2 });
    expect(c).toMatchObject({ mu: 0, sigma: 0, trimBeta: 0.1, trimWeighted: false, minHolders: 1, selection: { fraction: 1, minCount: 1, profiles: [] }, encoding: 'float32' });
    expect(aggregateOptionsFor(c)).toEqual({ round: 1, strategy: { kind: 'fedadam', beta1: 0.9, beta2: 0.99, tau: 1e-3, eta: 1e-2 }, minHolders: 1, clip: 2 });
    expect(aggregateOptionsFor(parseRoundConfig({ ...base, strategy: 'fedprox', mu: 0.01 })).strategy).toEqual({ kind: 'fedavg' });
    expect(aggregateOptionsFor(parseRoundConfig({ ...base, strategy: 'trimmed-mean', trimBeta: 0.2 })).strategy).toEqual({ kind: 'trimmed-mean', beta: 0.2, weighted: false });
    expect(aggregateOptionsFor(parseRoundConfig({ ...base, strategy: 'trimmed-mean', trimBeta: 0.1, trimWeighted: true })).strategy).toEqual({ kind: 'trimmed-mean', beta: 0.1, weighted: true });
  });
  it('refuses noise without a clip bound, β ≥ 0.5 and unknown fields', () => {
    expect(codeOf(() => parseRoundConfig({ ...base, sigma: 1 }))).toBe('EDGEKT_ERR_MALFORMED');
    expect(codeOf(() => parseRoundConfig({ ...base, trimBeta: 0.5 }))).toBe('EDGEKT_ERR_MALFORMED');
    expect(codeOf(() => parseRoundConfig({ ...base, surprise: true }))).toBe('EDGEKT_ERR_MALFORMED');
  });
});
