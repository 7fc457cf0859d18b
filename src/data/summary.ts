import { classCounts } from './split.js';
import type { DatasetSplits, ImageSet } from './types.js';

export interface SplitSummary {
  count: number;
  /** Samples per class, index = class id. */
  perClass: number[];
}

export interface DatasetSummary {
  name: string;
  shape: [number, number, number];
  numClasses: number;
  classNames: string[];
  train: SplitSummary;
  validation: SplitSummary | null;
  test: SplitSummary;
}

/** Counts per class and split: what `edgekt data inspect` prints. */
export function summarizeDataset(d: DatasetSplits): DatasetSummary {
  const one = (s: ImageSet): SplitSummary => ({ count: s.count, perClass: classCounts(s) });
  return {
    name: d.name,
    shape: d.train.shape,
    numClasses: d.train.numClasses,
    classNames: d.train.classNames,
    train: one(d.train),
    validation: d.validation ? one(d.validation) : null,
    test: one(d.test),
  };
}
