/**
 * What a measurement of a model on this device says, as data: bench/ produces it, compress/ judges
 * budgets on it. On a shared CPU one reading means little, so a figure carries the spread of the
 * trials it was taken from and the load around it.
 */

/** Order statistics of one figure across trials (each trial gives one value). */
export interface Spread {
  min: number;
  q1: number;
  median: number;
  q3: number;
  max: number;
}

/** How a latency figure was obtained: several trials, each a percentile over its own runs. */
export interface LatencyStats {
  trials: number;
  runsPerTrial: number;
  /** Per-trial p50s; the figure is their median. */
  p50: Spread;
  /** Per-trial p95s; the figure is their median. */
  p95: Spread;
}

/**
 * The machine's load around a measurement, so a reader can tell a slow model from a busy CPU.
 * null where the platform does not say (no /proc/stat: steal unknown).
 */
export interface LoadContext {
  loadAvg1Before: number | null;
  loadAvg1After: number | null;
  /** Share of CPU time stolen by the hypervisor during the measurement, percent. */
  stealPct: number | null;
}

/**
 * What a CostProbe measures on this device for one model (bench/ produces it, compress/ consumes
 * it through its CostProbe interface): the figures budgets are checked against. Latencies are the
 * median across trials of each trial's percentile.
 */
export interface ModelCost {
  latencyP50Ms: number;
  latencyP95Ms: number;
  latencyP99Ms: number;
  /** Peak tensor bytes during one batch-1 inference, weights included, in MB. */
  peakMemoryMB: number;
  /** float32 weight bytes in KB. */
  modelSizeKB: number;
  params: number;
  latency?: LatencyStats;
  load?: LoadContext;
}

/**
 * A candidate and a reference measured in alternating trials (A, B, A, B, ...) of one run, so both
 * saw the same load: their ratio is meaningful even when each figure alone is not.
 */
export interface PairedCost {
  candidate: ModelCost;
  reference: ModelCost;
  /** candidate p95 / reference p95, both medians of the same run's trials. */
  ratioP95: number;
  ratioP50: number;
}
