import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/core/errors.js';
import { aggregate, tensor, validateUpdate, type ClientUpdate, type IndexMap, type WeightSet } from '../src/federated/index.js';

const global: WeightSet = { k: tensor([2, 3], [0, 1, 2, 3, 4, 5]), b: tensor([3], [0, 0, 0]) };
const good = (over: Partial<ClientUpdate> = {}): ClientUpdate => ({
  clientId: 'dev1', round: 4, numSamples: 10,
  weights: { k: tensor([2, 2], [1, 1, 1, 1]), b: tensor([2], [1, 1]) },
  indexMap: { k: [null, [0, 2]], b: [[0, 2]] },
  ...over,
});
const codes = (u: ClientUpdate): string[] => [...new Set(validateUpdate(global, u, 4).map((p) => p.code))];
const withMap = (indexMap: IndexMap): ClientUpdate => good({ indexMap });

describe('validateUpdate', () => {
  it('accepts a well-formed masked update and a whole one', () => {
    expect(validateUpdate(global, good(), 4)).toEqual([]);
    expect(validateUpdate(global, { clientId: 'w', round: 4, numSamples: 1, weights: global }, 4)).toEqual([]);
  });

  it('refuses NaN and Infinity', () => {
    expect(codes(good({ weights: { k: tensor([2, 2], [1, Number.NaN, 1, 1]), b: tensor([2], [1, 1]) } }))).toEqual(['EDGEKT_ERR_UPDATE_NONFINITE']);
    expect(codes(good({ weights: { k: tensor([2, 2], [1, 1, 1, 1]), b: tensor([2], [Number.NEGATIVE_INFINITY, 1]) } }))).toEqual(['EDGEKT_ERR_UPDATE_NONFINITE']);
  });

  it('refuses wrong shapes, missing and extra tensors', () => {
    const whole = (weights: WeightSet): ClientUpdate => ({ clientId: 'w', round: 4, numSamples: 1, weights });
    expect(codes(whole({ k: tensor([3, 2], [0, 0, 0, 0, 0, 0]), b: global.b! }))).toEqual(['EDGEKT_ERR_UPDATE_SHAPE']);
    expect(codes(whole({ k: global.k! }))).toEqual(['EDGEKT_ERR_UPDATE_SHAPE']);
    expect(codes(whole({ ...global, extra: tensor([1], [0]) }))).toEqual(['EDGEKT_ERR_UPDATE_SHAPE']);
    expect(codes(whole({ k: { shape: [2, 3], values: new Float32Array(5) }, b: global.b! }))).toEqual(['EDGEKT_ERR_UPDATE_SHAPE']);
    expect(codes(whole({ k: tensor([6], [0, 0, 0, 0, 0, 0]), b: global.b! }))).toEqual(['EDGEKT_ERR_UPDATE_SHAPE']);
  });

  it('refuses index maps that do not match the global model or the payload', () => {
    expect(codes(withMap({ k: [null, [0, 2]], b: [[0, 2]], ghost: [null] }))).toEqual(['EDGEKT_ERR_UPDATE_INDEX_MAP']);
    expect(codes(withMap({ k: [[0, 2]], b: [[0, 2]] }))).toEqual(['EDGEKT_ERR_UPDATE_INDEX_MAP']); // one axis for a rank-2 tensor
    expect(codes(withMap({ k: [null, [0, 3]], b: [[0, 2]] }))).toEqual(['EDGEKT_ERR_UPDATE_INDEX_MAP']); // out of range
    expect(codes(withMap({ k: [null, [2, 0]], b: [[0, 2]] }))).toEqual(['EDGEKT_ERR_UPDATE_INDEX_MAP']); // not ascending
    expect(codes(withMap({ k: [null, []], b: [[0, 2]] }))).toEqual(['EDGEKT_ERR_UPDATE_INDEX_MAP']); // empty
    expect(codes(withMap({ k: [null, [0, 1, 2]], b: [[0, 2]] }))).toEqual(['EDGEKT_ERR_UPDATE_INDEX_MAP']); // implies [2,3], payload [2,2]
    const noK = good({ weights: { b: tensor([2], [1, 1]) } });
    expect(validateUpdate(global, noK, 4).map((p) => p.code).sort()).toEqual(['EDGEKT_ERR_UPDATE_INDEX_MAP', 'EDGEKT_ERR_UPDATE_SHAPE']);
  });

  it('refuses stale (and future) rounds and non-positive sample counts', () => {
    expect(codes(good({ round: 3 }))).toEqual(['EDGEKT_ERR_UPDATE_STALE']);
    expect(codes(good({ round: 5 }))).toEqual(['EDGEKT_ERR_UPDATE_STALE']);
    expect(codes(good({ numSamples: 0 }))).toEqual(['EDGEKT_ERR_UPDATE_FORMAT']);
    expect(codes(good({ numSamples: 1.5 }))).toEqual(['EDGEKT_ERR_UPDATE_FORMAT']);
  });

  it('every code it reports is in the catalog', () => {
    for (const c of ['EDGEKT_ERR_UPDATE_NONFINITE', 'EDGEKT_ERR_UPDATE_SHAPE', 'EDGEKT_ERR_UPDATE_INDEX_MAP', 'EDGEKT_ERR_UPDATE_STALE', 'EDGEKT_ERR_UPDATE_DUPLICATE', 'EDGEKT_ERR_UPDATE_FORMAT', 'EDGEKT_ERR_SIGNATURE']) {
      expect(ERROR_CODES).toHaveProperty(c);
    }
  });
});

describe('aggregate refuses invalid updates and says why', () => {
  it('drops each bad update, never lets it touch the result, and reports its codes', () => {
    const valid = good({ clientId: 'ok' });
    const bad: ClientUpdate[] = [
      good({ clientId: 'nan', weights: { k: tensor([2, 2], [Number.NaN, 1, 1, 1]), b: tensor([2], [1, 1]) } }),
      good({ clientId: 'shape', indexMap: undefined }),
      good({ clientId: 'map', indexMap: { k: [null, [0, 1, 2]], b: [[0, 2]] } }),
      good({ clientId: 'stale', round: 3, weights: { k: tensor([2, 2], [1e6, 1e6, 1e6, 1e6]), b: tensor([2], [1e6, 1e6]) } }),
      good({ clientId: 'ok', weights: { k: tensor([2, 2], [9, 9, 9, 9]), b: tensor([2], [9, 9]) } }),
    ];
    const r = aggregate(global, [valid, ...bad], { round: 4, strategy: { kind: 'fedavg' } });
    const alone = aggregate(global, [valid], { round: 4, strategy: { kind: 'fedavg' } });
    expect(r.weights).toEqual(alone.weights);
    expect(Array.from(r.weights.k!.values)).toEqual([1, 1, 1, 1, 4, 1]);
    expect(r.included).toEqual(['ok']);
    expect(r.dropped.map((d) => [d.clientId, d.problems.map((p) => p.code)])).toEqual([
      ['nan', ['EDGEKT_ERR_UPDATE_NONFINITE']],
      ['shape', ['EDGEKT_ERR_UPDATE_SHAPE', 'EDGEKT_ERR_UPDATE_SHAPE']],
      ['map', ['EDGEKT_ERR_UPDATE_INDEX_MAP']],
      ['stale', ['EDGEKT_ERR_UPDATE_STALE']],
      ['ok', ['EDGEKT_ERR_UPDATE_DUPLICATE']],
    ]);
  });
});
