import { describe, expect, it } from 'vitest';
import { median, medianOfSorted } from '../src/core/stats.js';

describe('median', () => {
  it('odd and even counts, unsorted input left as it was', () => {
    const v = [5, 1, 3];
    expect(median(v)).toBe(3);
    expect(v).toEqual([5, 1, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median(Float32Array.from([10, -2]))).toBe(4);
  });
  it('sorts numerically, not as strings', () => {
    expect(median([10, 9, 100])).toBe(10);
  });
  it('is NaN when empty', () => {
    expect(median([])).toBeNaN();
    expect(medianOfSorted([])).toBeNaN();
  });
  it('medianOfSorted reads the middle of sorted input', () => {
    expect(medianOfSorted([1, 2, 3, 40])).toBe(2.5);
  });
});
