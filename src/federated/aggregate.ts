import { FedAdamSettingsSchema, type RoundConfig } from '../config/federated.js';
import { learnedUpdate, learnedWeights, type BatchNormStatisticsRule } from './bn-stats.js';
import { clipUpdate } from './clip.js';
import { deltaOf, toWeightsUpdate } from './delta.js';
import { fedAdamStep, initialFedAdamState, type FedAdamOptions, type FedAdamState } from './fedadam.js';
import { maskedMean, maskedMedian, maskedTrimmedMean, maskedWeightedTrimmedMean } from './reduce.js';
import { validateUpdate, type ClientUpdate, type UpdateProblem } from './validate.js';
import { median } from '../core/stats.js';
import { cloneWeights, l2Norm, type WeightSet, type WeightTensor } from './weights.js';


export type StrategyConfig =
  | { kind: 'fedavg' }
  | ({ kind: 'fedadam' } & FedAdamOptions)
  /**
   * `weighted`: β of the holders' sample weight is cut from each end and the rest averaged by weight
   * (sample counts capped at 2 × the round's median); default: the unweighted trim of Yin et al.
   */
  | { kind: 'trimmed-mean'; beta: number; weighted?: boolean }
  | { kind: 'median' };

export interface AggregateOptions {
  /** The round being aggregated: updates for any other round are stale. */
  round: number;
  strategy: StrategyConfig;
  /** Server-side norm clipping of every update's delta before reduction. */
  clip?: number;
  /**
   * Norm filter before clipping and reduction (a Krum-like screen): an update whose delta norm is
   * above this factor × the median delta norm of the round's valid updates is left out (listed in
   * `rejected`). Scaled attacks (sign-flipped × 10) are 10× the honest norm; honest non-IID
   * updates stay within ≈ 1.5× of the median. Absent: no filter.
   */
  rejectAboveMedian?: number;
  /** Coordinates held by fewer updates keep the global value. Default 1. */
  minHolders?: number;
  /** FedAdam's state from the previous round; absent = zeros. */
  state?: FedAdamState | null;
  /**
   * BatchNorm moving statistics: 'local' (default) leaves them out of clipping and reduction (the
   * result keeps the global's; each device recomputes its own, see bn-stats.ts); 'average' treats
   * them as any other tensor.
   */
  batchNormStatistics?: BatchNormStatisticsRule;
}

export interface DroppedUpdate {
  clientId: string;
  problems: UpdateProblem[];
}

export interface AggregateResult {
  weights: Record<string, WeightTensor>;
  /** FedAdam's state after this round (null for stateless strategies): store it with the round. */
  state: FedAdamState | null;
  included: string[];
  dropped: DroppedUpdate[];
  /** Included updates whose delta was scaled down, with their norm before clipping. */
  clipped: Array<{ clientId: string; norm: number }>;
  /** Valid updates the norm filter left out, with their norm and the round's threshold. */
  rejected: Array<{ clientId: string; norm: number; threshold: number }>;
}

/**
 * One round on the server, as a pure function (Flower's `aggregate_fit`): refuse invalid updates
 * as data, clip, reduce with the strategy. With no valid update the global model is returned as is.
 */
export function aggregate(global: WeightSet, updates: readonly ClientUpdate[], options: AggregateOptions): AggregateResult {
  const dropped: DroppedUpdate[] = [];
  const seen = new Set<string>();
  let valid: ClientUpdate[] = [];
  for (const u of updates) {
    const problems = validateUpdate(global, u, options.round);
    if (seen.has(u.clientId)) problems.push({ code: 'EDGEKT_ERR_UPDATE_DUPLICATE', message: `second update from ${u.clientId} in round ${options.round}` });
    seen.add(u.clientId);
    if (problems.length > 0) dropped.push({ clientId: u.clientId, problems });
    else valid.push(toWeightsUpdate(global, u));
  }
  const local = (options.batchNormStatistics ?? 'local') === 'local';
  const all = global;
  if (local) {
    global = learnedWeights(all);
    valid = valid.map(learnedUpdate);
  }
  const withStatistics = (w: Record<string, WeightTensor>): Record<string, WeightTensor> => (local ? { ...cloneWeights(all), ...w } : w);
  const rejected: AggregateResult['rejected'] = [];
  if (options.rejectAboveMedian !== undefined && valid.length > 0) {
    const norms = valid.map((u) => l2Norm(deltaOf(global, u)));
    const threshold = options.rejectAboveMedian * median(norms);
    valid = valid.filter((u, i) => {
      if (!(norms[i]! > threshold)) return true;
      rejected.push({ clientId: u.clientId, norm: norms[i]!, threshold });
      return false;
    });
  }
  const clipped: AggregateResult['clipped'] = [];
  if (options.clip !== undefined) {
    const maxNorm = options.clip;
    valid = valid.map((u) => {
      const r = clipUpdate(global, u, maxNorm);
      if (r.clipped) clipped.push({ clientId: u.clientId, norm: r.norm });
      return r.update;
    });
  }
  const s = options.strategy;
  const base = { included: valid.map((u) => u.clientId), dropped, clipped, rejected };
  const prior = s.kind === 'fedadam' ? (options.state ?? initialFedAdamState(global)) : null;
  if (valid.length === 0) return { ...base, weights: cloneWeights(all), state: prior };
  const minHolders = options.minHolders ?? 1;
  switch (s.kind) {
    case 'fedavg':
      return { ...base, weights: withStatistics(maskedMean(global, valid, minHolders).weights), state: null };
    case 'trimmed-mean':
      return { ...base, weights: withStatistics((s.weighted ? maskedWeightedTrimmedMean(global, valid, s.beta, minHolders) : maskedTrimmedMean(global, valid, s.beta, minHolders)).weights), state: null };
    case 'median':
      return { ...base, weights: withStatistics(maskedMedian(global, valid, minHolders).weights), state: null };
    case 'fedadam': {
      const step = fedAdamStep(global, maskedMean(global, valid, minHolders), prior!, s);
      return { ...base, ...step, weights: withStatistics(step.weights) };
    }
  }
}

/** The server's side of a round config (FedProx aggregates as FedAvg; μ is the clients'). */
export function aggregateOptionsFor(config: RoundConfig, state?: FedAdamState | null): AggregateOptions {
  const strategy: StrategyConfig =
    config.strategy === 'fedadam'
      ? { kind: 'fedadam', ...(config.fedAdam ?? FedAdamSettingsSchema.parse({})) }
      : config.strategy === 'trimmed-mean'
        ? { kind: 'trimmed-mean', beta: config.trimBeta, weighted: config.trimWeighted }
        : config.strategy === 'median'
          ? { kind: 'median' }
          : { kind: 'fedavg' };
  return { round: config.round, strategy, minHolders: config.minHolders, ...(config.clip !== undefined ? { clip: config.clip } : {}), ...(state !== undefined ? { state } : {}) };
}
