import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import type { CoordinatorStore, DeviceFilter, Execution, Rollout, RolloutLease } from '../store/coordinator/index.js';
import type { ArtifactStore } from './artifacts.js';
import { signTeacherFor } from './artifacts.js';
import { planRollout, type ExecutionState, type ExecutionView } from './rollout-planner.js';

/** seq that fences a state the coordinator decided (timed out, student refused): any late update from the device has a lower seq and is ignored. */
export const TIMED_OUT_SEQ = 2_000_000_000;

const FINAL_STATES: readonly string[] = ['succeeded', 'failed', 'rejected', 'canceled', 'timed_out'];

export interface RolloutDriverOptions {
  coordinatorId: string;
  store: CoordinatorStore;
  artifacts: ArtifactStore;
  fleetKey: KeyObject;
  clock: Clock;
  logger: Logger;
  /** Publishes a job message to a device (QoS 1). */
  publishJob(deviceId: string, message: object): Promise<void>;
  leaseMs: number;
  /** A job still `dispatched` (no update from its device) after this long is published again. Default 60 s. */
  redispatchMs?: number;
}

async function all<T>(fetch: (cursor: string | null) => Promise<{ items: T[]; nextCursor: string | null }>): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  do {
    const page = await fetch(cursor);
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

function targetFilter(r: Rollout): DeviceFilter | null {
  const t = r.spec.target;
  if (t.kind === 'all') return {};
  if (t.kind === 'group') return { group: t.group };
  if (t.kind === 'profile') return { profile: t.profile };
  return null;
}

/** Job publishes of one dispatch in flight at once. */
const SENDS_AT_ONCE = 256;

let jobCounter = 0;
const newJobId = (rolloutId: string, deviceId: string, now: number): string =>
  `${rolloutId}.${deviceId}.${now.toString(36)}${(jobCounter++ % 1296).toString(36).padStart(2, '0')}`.slice(0, 128);

/**
 * Applies the planner to every running rollout whose lease this coordinator holds: times out and
 * retries stragglers, aborts past the failure threshold, dispatches what staging allows, completes
 * finished rollouts. All state lives in the store, so a restarted coordinator (or another one that
 * takes over an expired lease) carries on where the last tick stopped.
 */
export function createRolloutDriver(o: RolloutDriverOptions) {
  const leases = new Map<string, RolloutLease>();
  const republished = new Map<string, number>();
  const redispatchMs = o.redispatchMs ?? 60_000;

  async function dispatch(r: Rollout, lease: RolloutLease, deviceIds: string[]): Promise<void> {
    if (deviceIds.length === 0) return;
    const teacher = await o.artifacts.getTeacher(r.spec.teacherSha256);
    if (!teacher) throw new Error(`rollout ${r.id}: teacher ${r.spec.teacherSha256} is not published`);
    const now = o.clock.now();
    const created = await o.store.dispatchExecutions(lease, deviceIds.map((d) => ({ deviceId: d, jobId: newJobId(r.id, d, now) })));
    // Publishes overlap (up to SENDS_AT_ONCE awaiting their PUBACK): one at a time, a 10,000-device
    // stage went out at the pace of one broker round trip each, behind every report being handled.
    // A publish that fails leaves its execution `dispatched`; the redispatch below sends it again.
    let next = 0;
    const failures: unknown[] = [];
    const worker = async (): Promise<void> => {
      while (next < created.length) {
        const e = created[next++]!;
        await send(r, e, teacher, now).catch((err: unknown) => void failures.push(err));
      }
    };
    await Promise.all(Array.from({ length: Math.min(SENDS_AT_ONCE, created.length) }, worker));
    if (failures.length) throw failures[0];
  }

  async function send(r: Rollout, e: Execution, teacher: NonNullable<Awaited<ReturnType<ArtifactStore['getTeacher']>>>, now: number): Promise<void> {
    const job = r.spec.job as { dataset?: unknown; settings?: unknown };
    const manifest = signTeacherFor(teacher, e.deviceId, o.fleetKey, now, now + e.attempts);
    await o.publishJob(e.deviceId, {
      type: 'compress', jobId: e.jobId, rolloutId: r.id, manifest,
      dataset: typeof job.dataset === 'string' ? job.dataset : 'default',
      settings: typeof job.settings === 'object' && job.settings !== null ? job.settings : {},
    });
  }

  async function tickOne(r: Rollout): Promise<void> {
    const lease = await o.store.acquireRolloutLease(r.id, o.coordinatorId, o.leaseMs);
    if (!lease) {
      leases.delete(r.id);
      return;
    }
    leases.set(r.id, lease);
    const now = o.clock.now();
    const filter = targetFilter(r);
    const targets = filter
      ? await all<string>((cursor) => o.store.listDeviceIds(filter, { limit: 5000, cursor }))
      : [...(r.spec.target as { deviceIds: string[] }).deviceIds];
    const execs = await all<Execution>((cursor) => o.store.listExecutions(r.id, {}, { limit: 1000, cursor }));
    const byDevice = new Map<string, Execution>(execs.map((e) => [e.deviceId, e]));
    const views = new Map<string, ExecutionView>(execs.map((e) => [e.deviceId, { state: e.state as ExecutionState, attempts: e.attempts, dispatchedAt: e.dispatchedAt, updatedAt: e.updatedAt }]));
    const plan = planRollout({ spec: r.spec, now, startedAt: r.startedAt ?? r.createdAt, targets: targets.sort(), executions: views });
    // A timed-out job may still sit on its device (the agent runs one job at a time): cancel it, so
    // that neither a retry nor the next rollout waits behind it.
    const cancelStale = async (e: Execution): Promise<void> => {
      if (!FINAL_STATES.includes(e.state)) await o.publishJob(e.deviceId, { type: 'cancel', jobId: e.jobId });
    };
    for (const d of plan.timeOut) {
      const e = byDevice.get(d)!;
      await o.store.applyJobUpdate({ jobId: e.jobId, seq: TIMED_OUT_SEQ, state: 'timed_out', at: now, error: { code: 'EDGEKT_ERR_TIMEOUT', message: 'no update within the in-progress timeout' } });
      await cancelStale(e);
    }
    if (plan.abort) {
      if (await o.store.setRolloutState(r.id, 'aborted', ['running'])) {
        o.logger.warn({ rollout: r.id, reason: plan.abort }, 'rollout aborted');
        for (const e of execs) if (!FINAL_STATES.includes(e.state)) await o.publishJob(e.deviceId, { type: 'cancel', jobId: e.jobId });
      }
      return;
    }
    if (plan.done) {
      if (await o.store.setRolloutState(r.id, 'completed', ['running'])) o.logger.info({ rollout: r.id, ...plan.counts }, 'rollout completed');
      return;
    }
    // Dispatched but never acknowledged (the coordinator may have died between recording a dispatch
    // and publishing it, or the message was lost): publish the same job again. The agent makes one
    // job of a redelivery, so this is safe to repeat.
    const unheard = execs.filter((e) => e.state === 'dispatched' && now - e.updatedAt >= redispatchMs && now - (republished.get(e.jobId) ?? 0) >= redispatchMs);
    const teacher = plan.retry.length || unheard.length ? await o.artifacts.getTeacher(r.spec.teacherSha256) : null;
    for (const e of unheard) {
      republished.set(e.jobId, now);
      if (teacher) await send(r, e, teacher, now);
    }
    for (const d of plan.retry) {
      const e = await o.store.retryExecution(lease, d, newJobId(r.id, d, now));
      await cancelStale(byDevice.get(d)!);
      if (e && teacher) await send(r, e, teacher, now);
    }
    await dispatch(r, lease, plan.dispatch);
  }

  return {
    async tick(): Promise<void> {
      for (const r of await o.store.listRollouts({ states: ['running'] })) {
        try {
          await tickOne(r);
        } catch (e) {
          o.logger.warn({ rollout: r.id, err: e instanceof Error ? e.message : String(e) }, 'rollout tick failed');
        }
      }
    },
    async release(): Promise<void> {
      for (const l of leases.values()) await o.store.releaseRolloutLease(l).catch(() => false);
      leases.clear();
    },
  };
}
