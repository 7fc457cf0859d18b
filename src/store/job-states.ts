import { JOB_STATES, type JobState } from '../config/messages.js';

export { JOB_STATES, type JobState };

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set<JobState>(['succeeded', 'failed', 'rejected', 'canceled']);

/**
 * The allowed transitions, as data. Forward edges follow the pipeline; `benchmarking → pruning` is the
 * prune ⟲ measure loop, and `distilling → benchmarking` skips pruning when the distilled student
 * already meets the budget. Every non-terminal state may go to `failed` or `canceled`. `rejected`
 * means "never accepted" (bad signature, wrong target, replayed or expired manifest, artifact hash
 * mismatch); those checks all end at `verified`, so only `received` and `downloading` may go to
 * `rejected`, and anything that goes wrong later is `failed`. Terminal states have no way out.
 */
export const JOB_TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = {
  received: ['downloading', 'rejected', 'failed', 'canceled'],
  downloading: ['verified', 'rejected', 'failed', 'canceled'],
  verified: ['lightening', 'failed', 'canceled'],
  lightening: ['distilling', 'failed', 'canceled'],
  distilling: ['benchmarking', 'pruning', 'failed', 'canceled'],
  pruning: ['benchmarking', 'failed', 'canceled'],
  benchmarking: ['pruning', 'reporting', 'failed', 'canceled'],
  reporting: ['succeeded', 'failed', 'canceled'],
  succeeded: [],
  failed: [],
  rejected: [],
  canceled: [],
};

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.has(state);
}

export function canTransition(from: JobState, to: JobState): boolean {
  return JOB_TRANSITIONS[from].includes(to);
}
