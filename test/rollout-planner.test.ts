import { describe, expect, it } from 'vitest';
import { rolloutSpecSchema as RolloutSpecSchema, type RolloutSpec } from '../src/config/rollout.js';
import { planRollout, type ExecutionState, type ExecutionView } from '../src/coordinator/rollout-planner.js';

const SHA = 'a'.repeat(64);
const spec = (over: Record<string, unknown>): RolloutSpec => RolloutSpecSchema.parse({ teacherSha256: SHA, target: { kind: 'all' }, job: { dataset: 'digits' }, ...over });
const devices = Array.from({ length: 10 }, (_, i) => `d${i}`);
const MIN = 60_000;

/** Replays a rollout tick by tick: `outcome(device, attempt)` says how each dispatched job ends. */
function simulate(s: RolloutSpec, outcome: (d: string, attempt: number) => ExecutionState, ticks: number, tickMs = 10_000) {
  const ex = new Map<string, ExecutionView>();
  const log: Array<{ t: number; dispatch: string[]; retry: string[]; timeOut: string[] }> = [];
  let t = 0;
  for (let k = 0; k < ticks; k++, t += tickMs) {
    const p = planRollout({ spec: s, now: t, startedAt: 0, targets: devices, executions: ex });
    log.push({ t, dispatch: p.dispatch, retry: p.retry, timeOut: p.timeOut });
    for (const d of p.timeOut) ex.set(d, { ...ex.get(d)!, state: 'timed_out', updatedAt: t });
    if (p.abort || p.done) return { plan: p, ex, log };
    for (const d of [...p.dispatch, ...p.retry]) {
      const attempts = (ex.get(d)?.attempts ?? 0) + 1;
      ex.set(d, { state: outcome(d, attempts), attempts, dispatchedAt: t, updatedAt: t });
    }
  }
  return { plan: planRollout({ spec: s, now: t, startedAt: 0, targets: devices, executions: ex }), ex, log };
}

describe('rollout planner', () => {
  it('percentages: each step waits for the previous one to finish', () => {
    const s = spec({ staging: { kind: 'percentages', steps: [10, 50, 100] } });
    const ex = new Map<string, ExecutionView>();
    const plan = () => planRollout({ spec: s, now: 1000, startedAt: 0, targets: devices, executions: ex });
    expect(plan().dispatch).toEqual(['d0']);
    ex.set('d0', { state: 'distilling', attempts: 1, dispatchedAt: 0, updatedAt: 900 });
    expect(plan().dispatch).toEqual([]);
    ex.set('d0', { state: 'succeeded', attempts: 1, dispatchedAt: 0, updatedAt: 900 });
    expect(plan().dispatch).toEqual(['d1', 'd2', 'd3', 'd4']);
    for (const d of ['d1', 'd2', 'd3']) ex.set(d, { state: 'succeeded', attempts: 1, dispatchedAt: 0, updatedAt: 900 });
    ex.set('d4', { state: 'pruning', attempts: 1, dispatchedAt: 0, updatedAt: 900 });
    expect(plan().dispatch).toEqual([]);
    ex.set('d4', { state: 'succeeded', attempts: 1, dispatchedAt: 0, updatedAt: 900 });
    expect(plan().dispatch).toEqual(['d5', 'd6', 'd7', 'd8', 'd9']);
  });

  it('rate: per-minute dispatch that grows by the increment factor, capped', () => {
    const s = spec({ staging: { kind: 'rate', perMinute: 1, incrementFactor: 2, maxPerMinute: 3 } });
    const { plan, log } = simulate(s, () => 'succeeded', 40);
    expect(plan.done).toBe(true);
    const perMinute = [0, 1, 2, 3, 4].map((m) => log.filter((l) => Math.floor(l.t / MIN) === m).reduce((a, l) => a + l.dispatch.length, 0));
    expect(perMinute).toEqual([1, 2, 3, 3, 1]);
  });

  it('halts by itself when failures pass the threshold after the minimum finished', () => {
    const s = spec({ staging: { kind: 'rate', perMinute: 2 }, abort: { failureShare: 0.5, minFinished: 4 } });
    const { plan, ex } = simulate(s, (d) => (['d1', 'd2', 'd3'].includes(d) ? 'failed' : 'succeeded'), 60);
    expect(plan.abort).toMatch(/failures 3\/4/);
    expect([...ex.keys()]).toEqual(['d0', 'd1', 'd2', 'd3']);
  });

  it('does not abort below the minimum finished count', () => {
    const s = spec({ staging: { kind: 'rate', perMinute: 10 }, abort: { failureShare: 0.5, minFinished: 20 } });
    const { plan } = simulate(s, (d) => (d < 'd5' ? 'failed' : 'succeeded'), 5);
    expect(plan.abort).toBeNull();
    expect(plan.done).toBe(true);
    expect(plan.counts.failures).toBe(5);
  });

  it('retries a timed-out device, then marks it timed_out', () => {
    const s = spec({ staging: { kind: 'rate', perMinute: 10 }, retries: { max: 1 }, timeouts: { inProgressMs: 30_000 } });
    const { plan, log, ex } = simulate(s, (d) => (d === 'd3' ? 'distilling' : 'succeeded'), 20);
    expect(plan.done).toBe(true);
    expect(log.flatMap((l) => l.retry)).toEqual(['d3']);
    expect(log.flatMap((l) => l.timeOut)).toEqual(['d3']);
    expect(ex.get('d3')).toMatchObject({ state: 'timed_out', attempts: 2 });
  });

  it('retries failures but never a rejected job', () => {
    const s = spec({ staging: { kind: 'rate', perMinute: 10 }, retries: { max: 2 } });
    const { log, ex } = simulate(s, (d, attempt) => (d === 'd1' ? (attempt < 3 ? 'failed' : 'succeeded') : d === 'd2' ? 'rejected' : 'succeeded'), 10);
    expect(log.flatMap((l) => l.retry)).toEqual(['d1', 'd1']);
    expect(ex.get('d1')).toMatchObject({ state: 'succeeded', attempts: 3 });
    expect(ex.get('d2')).toMatchObject({ state: 'rejected', attempts: 1 });
  });

  it('dispatches only inside the maintenance window', () => {
    const s = spec({ maintenanceWindow: { cron: '0 2 * * *', durationMs: 2 * 3600_000 } });
    const at = (h: number): number => new Date(2026, 11, 3, h, 5).getTime();
    const base = { spec: s, startedAt: at(1), targets: devices, executions: new Map() };
    expect(planRollout({ ...base, now: at(1) }).dispatch).toEqual([]);
    expect(planRollout({ ...base, now: at(2) }).dispatch).toHaveLength(10);
    expect(planRollout({ ...base, now: at(3) }).dispatch).toHaveLength(10);
    expect(planRollout({ ...base, now: at(4) }).dispatch).toEqual([]);
  });

  it('refuses bad specs by field', () => {
    const base = { teacherSha256: SHA, target: { kind: 'all' } };
    expect(RolloutSpecSchema.safeParse({ ...base, staging: { kind: 'percentages', steps: [50, 20, 100] } }).success).toBe(false);
    expect(RolloutSpecSchema.safeParse({ ...base, staging: { kind: 'percentages', steps: [50] } }).success).toBe(false);
    expect(RolloutSpecSchema.safeParse({ ...base, retries: { max: 11 } }).success).toBe(false);
    expect(RolloutSpecSchema.safeParse({ ...base, maintenanceWindow: { cron: 'nope', durationMs: 1 } }).success).toBe(false);
    expect(RolloutSpecSchema.safeParse(base).success).toBe(true);
  });
});
