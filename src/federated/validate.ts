import type { ErrorCode } from '../core/errors.js';
import { slicedShape, type IndexMap } from './index-map.js';
import { sameShape, sizeOf, type WeightSet } from './weights.js';

/** One client's contribution to a round: only the channels it keeps, placed by its index map. */
export interface ClientUpdate {
  clientId: string;
  round: number;
  /** Local training examples: the FedAvg weight. */
  numSamples: number;
  /** The device's trained weights, shaped as its pruned model; with `isDelta`, weights − global slice. */
  weights: WeightSet;
  isDelta?: boolean;
  /** Absent = the device holds the whole global model. */
  indexMap?: IndexMap;
}

/** Why an update was refused, as data (Flower-style): the round report lists these per client. */
export interface UpdateProblem {
  code: ErrorCode;
  message: string;
  tensor?: string;
}

const fmt = (s: readonly number[]): string => `[${s.join(',')}]`;

function axisProblem(idx: readonly number[], dim: number): string | null {
  if (idx.length === 0) return 'keeps no index';
  for (let i = 0; i < idx.length; i++) {
    const c = idx[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= dim) return `index ${c} outside 0..${dim - 1}`;
    if (i > 0 && c <= idx[i - 1]!) return 'indices not strictly ascending';
  }
  return null;
}

function indexMapProblems(global: WeightSet, update: ClientUpdate): UpdateProblem[] {
  const out: UpdateProblem[] = [];
  const bad = (tensor: string, message: string): void => void out.push({ code: 'EDGEKT_ERR_UPDATE_INDEX_MAP', tensor, message });
  for (const [name, axes] of Object.entries(update.indexMap ?? {})) {
    const g = global[name];
    if (!g) bad(name, `index map names ${name}, which the global model does not have`);
    else if (!(name in update.weights)) bad(name, `index map names ${name}, which the payload does not carry`);
    else if (!Array.isArray(axes) || axes.length !== g.shape.length) bad(name, `index map has ${Array.isArray(axes) ? axes.length : 0} axes, global tensor ${fmt(g.shape)} has ${g.shape.length}`);
    else {
      axes.forEach((idx, a) => {
        const why = idx === null ? null : axisProblem(idx, g.shape[a]!);
        if (why) bad(name, `axis ${a}: ${why}`);
      });
    }
  }
  return out;
}

/**
 * Every reason `update` may not be aggregated into `global` at `round`, as data; empty = valid.
 * Shape problems are checked against the shape the index map implies, so a device cannot smuggle a
 * payload that lands on coordinates it does not hold.
 */
export function validateUpdate(global: WeightSet, update: ClientUpdate, round: number): UpdateProblem[] {
  const out: UpdateProblem[] = [];
  if (update.round !== round) {
    out.push({ code: 'EDGEKT_ERR_UPDATE_STALE', message: `update is for round ${update.round}, aggregating round ${round}` });
  }
  if (!(Number.isInteger(update.numSamples) && update.numSamples > 0)) {
    out.push({ code: 'EDGEKT_ERR_UPDATE_FORMAT', message: `numSamples must be a positive integer, got ${update.numSamples}` });
  }
  const mapProblems = indexMapProblems(global, update);
  out.push(...mapProblems);
  const badMap = new Set(mapProblems.map((p) => p.tensor));
  for (const name of Object.keys(global)) {
    if (!(name in update.weights)) out.push({ code: 'EDGEKT_ERR_UPDATE_SHAPE', tensor: name, message: `payload lacks ${name}` });
  }
  for (const [name, t] of Object.entries(update.weights)) {
    const g = global[name];
    const shapeProblem = (message: string): void => void out.push({ code: 'EDGEKT_ERR_UPDATE_SHAPE', tensor: name, message });
    if (!g) shapeProblem(`payload carries ${name}, which the global model does not have`);
    else if (t.values.length !== sizeOf(t.shape)) shapeProblem(`${name}: ${t.values.length} values for shape ${fmt(t.shape)}`);
    else if (t.shape.length !== g.shape.length) shapeProblem(`${name}: rank ${t.shape.length}, global rank ${g.shape.length}`);
    else if (!badMap.has(name)) {
      const axes = update.indexMap?.[name];
      const expected = slicedShape(g.shape, axes);
      if (!sameShape(expected, t.shape)) {
        const mapped = axes?.some((a) => a !== null) ?? false;
        out.push({
          code: mapped ? 'EDGEKT_ERR_UPDATE_INDEX_MAP' : 'EDGEKT_ERR_UPDATE_SHAPE',
          tensor: name,
          message: `${name}: payload ${fmt(t.shape)}, ${mapped ? 'index map implies' : 'global is'} ${fmt(expected)}`,
        });
      }
    }
    if (t.values.some((v) => !Number.isFinite(v))) {
      out.push({ code: 'EDGEKT_ERR_UPDATE_NONFINITE', tensor: name, message: `${name} holds NaN or Infinity` });
    }
  }
  return out;
}
