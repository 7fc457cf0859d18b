/**
 * Weights as plain data: federated strategies run on the coordinator, in tests and on devices
 * alike, so they see named Float32Arrays with shapes and never a tfjs object.
 */
export interface WeightTensor {
  shape: readonly number[];
  values: Float32Array;
}

/** Named tensors in model order (`layerName/weightSuffix`, e.g. `c1/kernel`, `bn1/moving_mean`). */
export type WeightSet = Readonly<Record<string, WeightTensor>>;

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor(shape: readonly number[], values: ArrayLike<number>): WeightTensor {
  return { shape: [...shape], values: Float32Array.from(values) };
}

export function cloneWeights(w: WeightSet): Record<string, WeightTensor> {
  const out: Record<string, WeightTensor> = {};
  for (const [name, t] of Object.entries(w)) out[name] = { shape: [...t.shape], values: t.values.slice() };
  return out;
}

export function zerosLike(w: WeightSet): Record<string, WeightTensor> {
  const out: Record<string, WeightTensor> = {};
  for (const [name, t] of Object.entries(w)) out[name] = { shape: [...t.shape], values: new Float32Array(t.values.length) };
  return out;
}

/** Element-wise `f(a, b)` over two sets with the same names and shapes (the caller checked them). */
export function zipWeights(a: WeightSet, b: WeightSet, f: (x: number, y: number) => number): Record<string, WeightTensor> {
  const out: Record<string, WeightTensor> = {};
  for (const [name, ta] of Object.entries(a)) {
    const tb = b[name]!;
    const values = new Float32Array(ta.values.length);
    for (let i = 0; i < values.length; i++) values[i] = f(ta.values[i]!, tb.values[i]!);
    out[name] = { shape: [...ta.shape], values };
  }
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** L2 norm over every tensor of a set, accumulated in float64. */
export function l2Norm(w: WeightSet): number {
  let s = 0;
  for (const t of Object.values(w)) for (const v of t.values) s += v * v;
  return Math.sqrt(s);
}

export function totalSize(w: WeightSet): number {
  let n = 0;
  for (const t of Object.values(w)) n += t.values.length;
  return n;
}
