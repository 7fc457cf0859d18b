import { windowOpen } from '../config/cron-window.js';
import type { RolloutSpec } from '../config/rollout.js';

/** Coordinator-side state of one device in a rollout: the agent's job states plus queued/dispatched/timed_out. */
export type ExecutionState =
  | 'queued' | 'dispatched'
  | 'received' | 'downloading' | 'verified' | 'lightening' | 'distilling' | 'pruning' | 'benchmarking' | 'reporting'
  | 'succeeded' | 'failed' | 'rejected' | 'canceled' | 'timed_out';

export interface ExecutionView {
  state: ExecutionState;
  /** Dispatches so far (1 after the first). */
  attempts: number;
  dispatchedAt: number | null;
  updatedAt: number;
}

const FINAL: ReadonlySet<ExecutionState> = new Set(['succeeded', 'failed', 'rejected', 'canceled', 'timed_out']);
const FAILURE: ReadonlySet<ExecutionState> = new Set(['failed', 'rejected', 'timed_out']);
/** Failures worth another attempt: a bad input (rejected) would fail again. */
const RETRYABLE: ReadonlySet<ExecutionState> = new Set(['failed', 'timed_out']);

export const isFinal = (s: ExecutionState): boolean => FINAL.has(s);

export interface PlanInput {
  spec: RolloutSpec;
  now: number;
  startedAt: number;
  /** Target devices in a stable order (the order stages take them in). */
  targets: readonly string[];
  executions: ReadonlyMap<string, ExecutionView>;
}

export interface Plan {
  /** First dispatch of these devices. */
  dispatch: string[];
  /** Dispatch again (a failed or timed-out execution with retries left). */
  retry: string[];
  /** Mark timed_out for good (no retries left). */
  timeOut: string[];
  /** Non-null: stop the rollout, with why. */
  abort: string | null;
  /** Every target is in a final state. */
  done: boolean;
  /** Percentage staging: the step in force (0-based); rate staging: the allowed rate this minute. */
  step: number;
  counts: { finished: number; failures: number; inFlight: number; queued: number };
}

function retriesLeft(spec: RolloutSpec, e: ExecutionView, now: number): boolean {
  return e.attempts <= spec.retries.max && now - e.updatedAt >= spec.retries.backoffMs;
}

/** Without an explicit in-progress timeout an execution may take a day. */
const DEFAULT_IN_PROGRESS_MS = 24 * 3600_000;

/**
 * One decision of a staged rollout, as a pure function of its state (AWS IoT Jobs semantics):
 * in-progress timeouts (retry or timed_out), abort criteria (failure share once `minFinished`
 * executions are final), then dispatches allowed by the staging and the maintenance window.
 * The driver applies the plan to its store and calls again on the next tick or update.
 */
export function planRollout(i: PlanInput): Plan {
  const { spec, now } = i;
  const retry: string[] = [];
  const timeOut: string[] = [];
  const view = new Map(i.executions);
  const stepTimeoutMs = spec.timeouts.stepMs;
  const inProgressMs = spec.timeouts.inProgressMs ?? DEFAULT_IN_PROGRESS_MS;
  let lastDispatch = -Infinity;
  for (const e of view.values()) if (e.dispatchedAt !== null) lastDispatch = Math.max(lastDispatch, e.dispatchedAt);

  for (const [id, e] of view) {
    if (e.state === 'queued') continue;
    const stale = !isFinal(e.state) && now - e.updatedAt > inProgressMs;
    const stepOver = !isFinal(e.state) && stepTimeoutMs !== undefined && spec.staging.kind === 'percentages' && now - lastDispatch > stepTimeoutMs;
    const state: ExecutionState = stale || stepOver ? 'timed_out' : e.state;
    const canRetry = RETRYABLE.has(state) && e.attempts <= spec.retries.max;
    if (canRetry && retriesLeft(spec, e, now)) retry.push(id);
    else if (!canRetry && state === 'timed_out' && e.state !== 'timed_out') timeOut.push(id);
    if (state !== e.state) view.set(id, { ...e, state });
  }
  const willRetry = new Set(retry);
  let finished = 0;
  let failures = 0;
  let inFlight = 0;
  for (const [id, e] of view) {
    if (willRetry.has(id) || (RETRYABLE.has(e.state) && e.attempts <= spec.retries.max)) {
      inFlight++;
      continue;
    }
    if (isFinal(e.state)) {
      finished++;
      if (FAILURE.has(e.state)) failures++;
    } else if (e.state !== 'queued') inFlight++;
  }
  const queuedIds = i.targets.filter((d) => (view.get(d)?.state ?? 'queued') === 'queued');
  const counts = { finished, failures, inFlight, queued: queuedIds.length };

  const a = spec.abort;
  if (a && finished >= a.minFinished && failures / finished >= a.failureShare) {
    return { dispatch: [], retry: [], timeOut, abort: `failures ${failures}/${finished} finished ≥ ${(100 * a.failureShare).toFixed(0)}% (after ≥ ${a.minFinished})`, done: false, step: 0, counts };
  }
  const done = queuedIds.length === 0 && inFlight === 0;
  if (done) return { dispatch: [], retry: [], timeOut, abort: null, done: true, step: 0, counts };
  const w = spec.maintenanceWindow;
  if (w && !windowOpen(w.cron, w.durationMs, new Date(now))) {
    return { dispatch: [], retry: [], timeOut, abort: null, done: false, step: 0, counts };
  }

  const s = spec.staging;
  if (s.kind === 'rate') {
    const minute = Math.floor(Math.max(0, now - i.startedAt) / 60_000);
    const allowed = Math.min(s.maxPerMinute ?? Infinity, Math.floor(s.perMinute * Math.pow(s.incrementFactor, minute)));
    let recent = 0;
    for (const e of i.executions.values()) if (e.dispatchedAt !== null && now - e.dispatchedAt < 60_000) recent++;
    const budget = Math.max(0, allowed - recent);
    const retryNow = retry.slice(0, budget);
    return { dispatch: queuedIds.slice(0, budget - retryNow.length), retry: retryNow, timeOut, abort: null, done: false, step: allowed, counts };
  }
  // Percentages: step k admits ceil(steps[k]% of N) devices; the next step opens when all admitted ones are final.
  const n = i.targets.length;
  const admitted = n - queuedIds.length;
  const quotas = s.steps.map((p) => Math.ceil((p / 100) * n));
  let k = quotas.findIndex((q) => q > admitted || (q === admitted && inFlight > 0));
  if (k < 0) k = quotas.length - 1;
  return { dispatch: queuedIds.slice(0, Math.max(0, quotas[k]! - admitted)), retry, timeOut, abort: null, done: false, step: k, counts };
}
