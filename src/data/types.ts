/**
 * In-memory image classification data, channels-last (NHWC), pixel values already normalised
 * to float32. Kept as flat typed arrays (not tensors) so a dataset costs no tfjs memory until a
 * batch is materialised.
 */
export interface ImageSet {
  /** N*H*W*C float32 values. */
  x: Float32Array;
  /** N class indices, or null when the data is unlabeled (distillation then uses no hard-label loss). */
  y: Int32Array | null;
  count: number;
  /** [H, W, C] */
  shape: [number, number, number];
  numClasses: number;
  classNames: string[];
}

export interface DatasetSplits {
  /** Human-readable source name, e.g. "fashion-mnist". */
  name: string;
  train: ImageSet;
  validation: ImageSet | null;
  test: ImageSet;
}
