import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { LoadContext } from '../config/measurement.js';

/**
 * Reads the machine's load around a measurement. Injected into the latency probe so tests pass a
 * fake and compress/ never reads /proc itself: `begin()` starts a window, the function it returns
 * closes it.
 */
export interface LoadSampler {
  begin(): () => LoadContext;
}

/** CPU time counters of the aggregate `cpu` line of /proc/stat (jiffies). */
export interface CpuTimes {
  total: number;
  steal: number;
}

/** Parses the aggregate `cpu ` line of /proc/stat; null when absent or malformed. */
export function parseProcStat(text: string): CpuTimes | null {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return null;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  if (v.length < 4 || v.some((x) => !Number.isFinite(x))) return null;
  // user nice system idle iowait irq softirq steal guest guest_nice: guest time is already in user.
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, steal: v[7] ?? 0 };
}

/** Stolen share of the CPU time between two readings, percent; null without both or no time passed. */
export function stealBetween(a: CpuTimes | null, b: CpuTimes | null): number | null {
  if (!a || !b) return null;
  const dt = b.total - a.total;
  if (dt <= 0) return 0;
  return (100 * Math.max(0, b.steal - a.steal)) / dt;
}

export interface SystemLoadSamplerOptions {
  /** /proc/stat's text, or null where there is none. Default: read it (Linux). */
  readStat?: () => string | null;
  loadavg?: () => number[];
}

/** The default sampler: os.loadavg() (0 on Windows) and steal from /proc/stat deltas (null elsewhere). */
export function createSystemLoadSampler(o: SystemLoadSamplerOptions = {}): LoadSampler {
  const readStat =
    o.readStat ??
    (() => {
      try {
        return readFileSync('/proc/stat', 'utf8');
      } catch {
        return null;
      }
    });
  const loadavg = o.loadavg ?? (() => os.loadavg());
  const stat = (): CpuTimes | null => {
    const t = readStat();
    return t === null ? null : parseProcStat(t);
  };
  const load1 = (): number | null => loadavg()[0] ?? null;
  return {
    begin: () => {
      const before = load1();
      const s0 = stat();
      return () => ({ loadAvg1Before: before, loadAvg1After: load1(), stealPct: stealBetween(s0, stat()) });
    },
  };
}

/** A sampler that records nothing (tests, or platforms where reading load is unwanted). */
export const noLoadSampler: LoadSampler = {
  begin: () => () => ({ loadAvg1Before: null, loadAvg1After: null, stealPct: null }),
};
