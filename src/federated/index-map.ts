import { EdgektError } from '../core/errors.js';
import { keptInputRows, type DependencyGraph } from '../model/dependency-graph.js';
import { sizeOf, type WeightSet, type WeightTensor } from './weights.js';

/**
 * For each tensor of a pruned device model: per axis, the indices of the global (lightened,
 * un-pruned) tensor it keeps, ascending; `null` keeps the axis whole. This is what lets devices
 * pruned differently average into one global model.
 */
export type IndexMap = Readonly<Record<string, ReadonlyArray<readonly number[] | null>>>;

/** Structurally a `PrunePlan` (compress/ is the same rank, so federated/ restates the shape it reads). */
export interface PlanLike {
  groups: ReadonlyArray<{ key: string; size: number; keep: readonly number[] }>;
}

/** One weight variable of the global model, as the index map needs to know it. */
export interface WeightSpec {
  name: string;
  layer: string;
  className: string;
  /** Last part of the variable's name: `kernel`, `bias`, `depthwise_kernel`, `gamma`... */
  suffix: string;
  shape: readonly number[];
}

/** Per group key: the global channel indices the device still has. */
export type KeptChannels = Readonly<Record<string, readonly number[]>>;

function planError(message: string, details: Record<string, unknown> = {}): never {
  throw new EdgektError('EDGEKT_ERR_PRUNE_PLAN', message, details);
}

/**
 * Composes a pruning history: plan i's `keep` indexes the channels left by plans 0..i-1, so each
 * step maps through the previous composition back to global channel indices.
 */
export function composeKept(graph: DependencyGraph, plans: readonly PlanLike[]): Record<string, number[]> {
  const kept: Record<string, number[]> = {};
  for (const [step, plan] of plans.entries()) {
    for (const gp of plan.groups) {
      const group = graph.groups.find((g) => g.key === gp.key);
      if (!group) planError(`plan ${step}: group ${gp.key} is not in the global model`, { step, key: gp.key });
      const current = kept[gp.key] ?? Array.from({ length: group.size }, (_, i) => i);
      if (gp.size !== current.length) planError(`plan ${step}: group ${gp.key} has ${current.length} channels, plan expects ${gp.size}`, { step, key: gp.key });
      kept[gp.key] = gp.keep.map((c, i) => {
        if (!Number.isInteger(c) || c < 0 || c >= current.length || (i > 0 && c <= gp.keep[i - 1]!)) {
          planError(`plan ${step}: group ${gp.key} keeps channel ${c} (must be ascending in 0..${current.length - 1})`, { step, key: gp.key });
        }
        return current[c]!;
      });
    }
  }
  return kept;
}

/** HeteroFL-style comparison: the first k channels of each group, k as in `kept`. */
export function prefixKept(kept: KeptChannels): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [key, idx] of Object.entries(kept)) out[key] = Array.from({ length: idx.length }, (_, i) => i);
  return out;
}

interface AxisEdit {
  out?: readonly number[];
  inKept?: number[];
  inChannels?: readonly number[];
}


function axesFor(spec: WeightSpec, e: AxisEdit | undefined): Array<readonly number[] | null> {
  const r = spec.shape.length;
  const axes: Array<readonly number[] | null> = new Array<null>(r).fill(null);
  if (!e) return axes;
  const { className: cls, suffix } = spec;
  if (r === 1) axes[0] = e.out ?? null;
  else if (cls === 'Conv2D' || cls === 'Dense') {
    axes[r - 2] = e.inKept ?? null;
    axes[r - 1] = e.out ?? null;
  } else if (cls === 'DepthwiseConv2D') axes[2] = e.out ?? null;
  else if (cls === 'SeparableConv2D' && suffix === 'depthwise_kernel') axes[2] = e.inChannels ?? null;
  else if (cls === 'SeparableConv2D') {
    axes[2] = e.inKept ?? null;
    axes[3] = e.out ?? null;
  } else planError(`cannot map ${spec.name} of a ${cls}`);
  return axes;
}

/**
 * The index map of a device model from the global model's dependency graph and weight specs and
 * the global channels each group keeps; mirrors `applyPlan`'s slicing axis by axis.
 */
export function indexMapFromKept(graph: DependencyGraph, specs: readonly WeightSpec[], kept: KeptChannels): IndexMap {
  const edits = new Map<string, AxisEdit>();
  const edit = (layer: string): AxisEdit => {
    let e = edits.get(layer);
    if (!e) edits.set(layer, (e = {}));
    return e;
  };
  for (const [key, keep] of Object.entries(kept)) {
    const group = graph.groups.find((g) => g.key === key);
    if (!group) planError(`group ${key} is not in the global model`, { key });
    if (keep.length === group.size) continue;
    for (const m of group.members) {
      if (m.role !== 'in') edit(m.layer).out = keep;
      else {
        const e = edit(m.layer);
        e.inKept = keptInputRows(keep, group.size, m.spatial, m.multiplier);
        e.inChannels = keep;
      }
    }
  }
  const map: Record<string, Array<readonly number[] | null>> = {};
  for (const spec of specs) map[spec.name] = axesFor(spec, edits.get(spec.layer));
  return map;
}

/** Index map of a device pruned by `plans` (its whole history, oldest first). */
export function indexMapFromPlans(graph: DependencyGraph, specs: readonly WeightSpec[], plans: readonly PlanLike[]): IndexMap {
  return indexMapFromKept(graph, specs, composeKept(graph, plans));
}

export function slicedShape(shape: readonly number[], axes: ReadonlyArray<readonly number[] | null> | undefined): number[] {
  return shape.map((d, a) => axes?.[a]?.length ?? d);
}

/**
 * Flat offset in the global tensor of every element of the sliced tensor, in row-major order of
 * the sliced tensor: the one primitive that slicing, scattering and masked reductions share.
 */
export function globalOffsets(shape: readonly number[], axes: ReadonlyArray<readonly number[] | null> | undefined): Int32Array {
  const strides = shape.map((_, a) => sizeOf(shape.slice(a + 1)));
  let offsets = Int32Array.of(0);
  shape.forEach((d, a) => {
    const idx = axes?.[a] ?? null;
    const n = idx ? idx.length : d;
    const next = new Int32Array(offsets.length * n);
    let k = 0;
    for (const o of offsets) for (let l = 0; l < n; l++) next[k++] = o + (idx ? idx[l]! : l) * strides[a]!;
    offsets = next;
  });
  return offsets;
}

export function sliceTensor(t: WeightTensor, axes: ReadonlyArray<readonly number[] | null> | undefined): WeightTensor {
  const offsets = globalOffsets(t.shape, axes);
  const values = new Float32Array(offsets.length);
  for (let i = 0; i < offsets.length; i++) values[i] = t.values[offsets[i]!]!;
  return { shape: slicedShape(t.shape, axes), values };
}

/** A device's next model: the global weights restricted to the channels it keeps. */
export function sliceForDevice(global: WeightSet, indexMap: IndexMap | undefined): Record<string, WeightTensor> {
  const out: Record<string, WeightTensor> = {};
  for (const [name, t] of Object.entries(global)) out[name] = sliceTensor(t, indexMap?.[name]);
  return out;
}
