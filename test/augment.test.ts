import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { augmentBatch, augmentImages, augmentSeedAt } from '../src/data/augment.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** n images of h×w×c whose every pixel is distinct and non-zero, so a moved pixel can be traced. */
function ramp(n: number, h: number, w: number, c = 1): Float32Array {
  return Float32Array.from({ length: n * h * w * c }, (_, i) => i + 1);
}

describe('augmentImages', () => {
  it('is deterministic for a seed, differs across seeds, keeps the shape and leaves the input untouched', () => {
    const x = ramp(16, 6, 5, 2);
    const copy = x.slice();
    const a = augmentImages(x, [16, 6, 5, 2], { seed: 7 });
    const b = augmentImages(x, [16, 6, 5, 2], { seed: 7 });
    const c = augmentImages(x, [16, 6, 5, 2], { seed: 8 });
    expect(a).toHaveLength(x.length);
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(Array.from(c)).not.toEqual(Array.from(a));
    expect(Array.from(x)).toEqual(Array.from(copy));
    expect(Array.from(a)).not.toEqual(Array.from(x)); // 16 samples: some got flipped or moved
  });

  it('each sample is its own image flipped and/or shifted by at most ±2 px, zero-filled, channels kept together', () => {
    const [n, h, w, c] = [32, 7, 6, 2];
    const x = ramp(n, h, w, c);
    const out = augmentImages(x, [n, h, w, c], { seed: 3 });
    const size = h * w * c;
    const seen = new Set<string>();
    for (let s = 0; s < n; s++) {
      const img = out.subarray(s * size, (s + 1) * size);
      // Find the transform that explains this sample exactly.
      const match: string[] = [];
      for (const flip of [false, true]) {
        for (let dy = -2; dy <= 2; dy++) {
          for (let dx = -2; dx <= 2; dx++) {
            let ok = true;
            for (let y = 0; y < h && ok; y++) {
              for (let xo = 0; xo < w && ok; xo++) {
                const sy = y - dy;
                const sh = xo - dx;
                for (let k = 0; k < c && ok; k++) {
                  const want = sy < 0 || sy >= h || sh < 0 || sh >= w ? 0 : x[s * size + (sy * w + (flip ? w - 1 - sh : sh)) * c + k]!;
                  ok = img[(y * w + xo) * c + k] === want;
                }
              }
            }
            if (ok) match.push(`${flip}:${dy}:${dx}`);
          }
        }
      }
      expect(match).toHaveLength(1);
      seen.add(match[0]!);
    }
    expect(seen.size).toBeGreaterThan(8); // the draws vary across the batch
    expect([...seen].some((m) => m.startsWith('true'))).toBe(true);
    expect([...seen].some((m) => m.startsWith('false'))).toBe(true);
  });

  it('maxShift 0 and flip probability 0 is the identity; a bad shape is EDGEKT_ERR_USAGE', () => {
    const x = ramp(4, 5, 5);
    expect(Array.from(augmentImages(x, [4, 5, 5, 1], { seed: 1, maxShift: 0, flipProbability: 0 }))).toEqual(Array.from(x));
    expect(() => augmentImages(x, [5, 5, 5, 1], { seed: 1 })).toThrow(expect.objectContaining({ code: 'EDGEKT_ERR_USAGE' }));
    expect(() => augmentImages(x, [4, 5, 5, 1], { seed: 1, maxShift: 1.5 })).toThrow(expect.objectContaining({ code: 'EDGEKT_ERR_USAGE' }));
  });

  it('step seeds are distinct across steps and runs', () => {
    const seeds = new Set<number>();
    for (const run of [0, 1, 2]) for (let step = 0; step < 1000; step++) seeds.add(augmentSeedAt(run, step));
    expect(seeds.size).toBe(3000);
  });
});

describe('augmentBatch', () => {
  it('returns one new tensor equal to augmentImages and leaks nothing over many batches (labels never pass through it)', () => {
    const x = tf.tensor4d(ramp(8, 28, 28), [8, 28, 28, 1]);
    const before = tf.memory().numTensors;
    for (let step = 0; step < 50; step++) {
      const y = augmentBatch(x, { seed: augmentSeedAt(0, step) });
      expect(y.shape).toEqual([8, 28, 28, 1]);
      if (step === 0) expect(Array.from(y.dataSync())).toEqual(Array.from(augmentImages(x.dataSync() as Float32Array, [8, 28, 28, 1], { seed: augmentSeedAt(0, 0) })));
      y.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(x.isDisposed).toBe(false);
    x.dispose();
  });
});
