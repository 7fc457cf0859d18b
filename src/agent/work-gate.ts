import { cronAllows } from '../config/cron-window.js';
import type { DeviceProfile } from '../config/device-profile.js';

export { cronAllows };

export interface GateReadings {
  now: Date;
  temperatureC: number | null;
  rssMB: number;
}

/**
 * Why heavy work must pause now, or null: outside the profile's cron window, hotter than its
 * temperature limit (with a 5 °C hysteresis once paused for heat), or over its RSS limit.
 */
export function pauseReason(profile: DeviceProfile, r: GateReadings, pausedFor: string | null = null): string | null {
  const t = profile.training;
  if (!cronAllows(t.allowedCron, r.now)) return `outside the allowed window (${t.allowedCron})`;
  if (r.temperatureC !== null) {
    const limit = pausedFor?.startsWith('temperature') ? t.maxTemperatureC - 5 : t.maxTemperatureC;
    if (r.temperatureC >= limit) return `temperature ${r.temperatureC.toFixed(1)} °C ≥ ${limit} °C`;
  }
  if (r.rssMB > t.maxRssMB) return `RSS ${r.rssMB.toFixed(0)} MB > ${t.maxRssMB} MB`;
  return null;
}
