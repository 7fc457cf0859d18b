import { describe, expect, it } from 'vitest';
import { createRng, normal } from '../src/core/random.js';
import { privatizeUpdate, proximalTerm, tensor, type ClientUpdate } from '../src/federated/index.js';

describe('FedProx proximal term', () => {
  it('is μ/2‖w − w_global‖² with gradient μ(w − w_global)', () => {
    const r = proximalTerm({ a: tensor([2], [1, 2]), b: tensor([1], [3]) }, { a: tensor([2], [0, 4]), b: tensor([1], [3]) }, 0.5);
    // diff [1, −2, 0]: ‖·‖² = 5 → 0.25 · 5 = 1.25
    expect(r.value).toBe(1.25);
    expect(Array.from(r.gradient.a!.values)).toEqual([0.5, -1]);
    expect(Array.from(r.gradient.b!.values)).toEqual([0]);
  });

  it('its gradient matches a central finite difference of its value', () => {
    const anchor = { w: tensor([3], [0.3, -0.7, 1.1]) };
    const w = [0.9, 0.2, -0.4];
    const grad = proximalTerm({ w: tensor([3], w) }, anchor, 0.2).gradient.w!.values;
    const h = 1e-3;
    w.forEach((_, i) => {
      const at = (d: number): number => proximalTerm({ w: tensor([3], w.map((x, j) => (j === i ? x + d : x))) }, anchor, 0.2).value;
      expect(grad[i]!).toBeCloseTo((at(h) - at(-h)) / (2 * h), 4);
    });
  });
});

describe('Gaussian noise (DP-SGD style)', () => {
  const global = { a: tensor([2], [1, 1]), b: tensor([1], [0]) };
  const update: ClientUpdate = { clientId: 'd', round: 1, numSamples: 5, weights: { a: tensor([2], [4, 5]), b: tensor([1], [0]) } };

  it('clips the delta to C, then adds N(0, σ²C²) per coordinate from the seeded stream', () => {
    const out = privatizeUpdate(global, update, { clip: 1, sigma: 0.5, rng: createRng(42) });
    const z = createRng(42);
    const n = [normal(z), normal(z), normal(z)];
    // delta [3, 4, 0] has norm 5 → clipped [0.6, 0.8, 0]; noise scale σC = 0.5.
    const expected = [1 + 0.6 + 0.5 * n[0]!, 1 + 0.8 + 0.5 * n[1]!, 0 + 0 + 0.5 * n[2]!];
    const got = [...out.weights.a!.values, ...out.weights.b!.values];
    got.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
  });

  it('is reproducible by seed and changes with it', () => {
    const run = (seed: number): number[] => Array.from(privatizeUpdate(global, update, { clip: 1, sigma: 1, rng: createRng(seed) }).weights.a!.values);
    expect(run(1)).toEqual(run(1));
    expect(run(1)).not.toEqual(run(2));
  });
});
