import { readFileSync } from 'node:fs';

/**
 * CPU time consumed by the calling thread, in ms (Linux: utime + stime of /proc/thread-self,
 * 10 ms ticks), or null elsewhere. On a shared machine wall time mostly measures the neighbours;
 * per-thread CPU time still shows whether work was really split across workers.
 */
export function threadCpuMs(): number | null {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    return Number.isFinite(ticks) ? ticks * 10 : null;
  } catch {
    return null;
  }
}
