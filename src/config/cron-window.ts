import cron from 'node-cron';

/**
 * The minute-level test of a profile's `allowedCron` (seconds ignored): training may run in the
 * minutes the expression matches. node-cron parses; the match is on its parsed fields.
 */
export function cronAllows(expression: string, d: Date): boolean {
  const f = cron.parse(expression);
  const dow = d.getDay();
  const inList = (list: Array<number | string>, v: number): boolean => list.some((x) => Number(x) === v);
  return (
    f.minute.includes(d.getMinutes()) &&
    f.hour.includes(d.getHours()) &&
    inList(f.dayOfMonth, d.getDate()) &&
    f.month.includes(d.getMonth() + 1) &&
    (inList(f.dayOfWeek, dow) || (dow === 0 && inList(f.dayOfWeek, 7)))
  );
}

/** True when a window that opens at each match of `expression` and lasts `durationMs` is open at `d`. */
export function windowOpen(expression: string, durationMs: number, d: Date): boolean {
  const minute = 60_000;
  const start = Math.floor(d.getTime() / minute) * minute;
  const steps = Math.min(Math.ceil(durationMs / minute), 7 * 24 * 60);
  for (let i = 0; i < Math.max(1, steps); i++) {
    const t = start - i * minute;
    if (d.getTime() - t < durationMs && cronAllows(expression, new Date(t))) return true;
  }
  return false;
}
