import { z } from 'zod';
import type { ReportEvent } from './reports.js';

/** How many telemetry samples a device keeps for its sparklines (in memory, not persisted). */
export const RING_SIZE = 40;

/** One sparkline sample: [epoch ms, CPU load %, temperature °C or null, memory used %]. */
export type Sample = [number, number, number | null, number];

/** A job as the dashboard shows it; progress is the agent's { stage, done, total, blocks? }, sanitized. */
export interface LiveJob {
  jobId: string;
  rolloutId: string | null;
  state: string;
  progress: JobProgress | null;
  at: number;
}

const ProgressSchema = z.object({
  stage: z.string().max(64).optional(),
  done: z.number().finite().optional(),
  total: z.number().finite().optional(),
  blocks: z.object({ received: z.number().finite(), total: z.number().finite() }).optional(),
  detail: z.string().max(200).optional(),
});
export type JobProgress = z.infer<typeof ProgressSchema>;

/** Keeps what the report handler says a device's page needs: a telemetry ring and its current job. */
export function createLiveState(ringSize = RING_SIZE) {
  const rings = new Map<string, { at: Float64Array; v: Float32Array; head: number; n: number }>();
  const jobs = new Map<string, LiveJob>();

  function push(deviceId: string, s: Sample): void {
    let r = rings.get(deviceId);
    if (!r) rings.set(deviceId, (r = { at: new Float64Array(ringSize), v: new Float32Array(ringSize * 3), head: 0, n: 0 }));
    r.at[r.head] = s[0];
    r.v.set([s[1], s[2] ?? NaN, s[3]], r.head * 3);
    r.head = (r.head + 1) % ringSize;
    r.n = Math.min(ringSize, r.n + 1);
  }

  return {
    /** Applies an event; returns the sanitized delta to broadcast (null: nothing a page shows changed). */
    apply(e: ReportEvent): { sample: Sample } | { job: LiveJob } | null {
      if (e.type === 'telemetry') {
        const s: Sample = [e.at, round1(e.cpuLoadPercent), e.temperatureC === null ? null : round1(e.temperatureC), e.memTotalMB > 0 ? round1((100 * e.memUsedMB) / e.memTotalMB) : 0];
        push(e.deviceId, s);
        return { sample: s };
      }
      if (e.type === 'job' || e.type === 'progress') {
        const prev = jobs.get(e.deviceId);
        const same = prev?.jobId === e.jobId;
        const p = e.type === 'progress' ? ProgressSchema.safeParse(e.progress) : null;
        const job: LiveJob = {
          jobId: e.jobId,
          rolloutId: e.type === 'job' ? e.rolloutId : same ? prev.rolloutId : null,
          state: e.state,
          progress: p ? (p.success ? p.data : null) : same ? prev.progress : null,
          at: e.at,
        };
        jobs.set(e.deviceId, job);
        return { job };
      }
      return null;
    },
    samples(deviceId: string): Sample[] {
      const r = rings.get(deviceId);
      if (!r) return [];
      const out: Sample[] = [];
      for (let i = 0; i < r.n; i++) {
        const k = (r.head - r.n + i + ringSize) % ringSize;
        const t = r.v[k * 3 + 1]!;
        out.push([r.at[k]!, round1(r.v[k * 3]!), Number.isNaN(t) ? null : round1(t), round1(r.v[k * 3 + 2]!)]);
      }
      return out;
    },
    job: (deviceId: string): LiveJob | null => jobs.get(deviceId) ?? null,
  };
}
export type LiveState = ReturnType<typeof createLiveState>;

const round1 = (x: number): number => Math.round(x * 10) / 10;
