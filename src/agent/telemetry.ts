import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import si from 'systeminformation';

/** Throttling as the board reports it; null when the board reports nothing. */
export interface ThrottleState {
  now: boolean;
  since: boolean;
  flags: string[];
  source: string;
}

export interface HostSample {
  cpuLoadPercent: number;
  loadAverage1: number;
  memUsedMB: number;
  memTotalMB: number;
  rssMB: number;
  temperatureC: number | null;
  throttled: ThrottleState | null;
}

/** `vcgencmd get_throttled` bits (Raspberry Pi firmware documentation). */
const PI_BITS: Array<[number, string]> = [
  [0, 'under-voltage'],
  [1, 'arm-frequency-capped'],
  [2, 'throttled'],
  [3, 'soft-temperature-limit'],
  [16, 'under-voltage-occurred'],
  [17, 'arm-frequency-capped-occurred'],
  [18, 'throttled-occurred'],
  [19, 'soft-temperature-limit-occurred'],
];

/** Decodes `throttled=0x50005`; null when the text is not that. */
export function decodePiThrottled(text: string): ThrottleState | null {
  const m = /throttled=0x([0-9a-f]+)/i.exec(text);
  if (!m) return null;
  const v = parseInt(m[1]!, 16);
  const flags = PI_BITS.filter(([bit]) => (v & (1 << bit)) !== 0).map(([, name]) => name);
  return { now: (v & 0xf) !== 0, since: (v & 0xf0000) !== 0, flags, source: 'vcgencmd' };
}

export interface ThermalZone {
  type: string;
  tempC: number;
  /** Lowest passive/hot trip point, if any. */
  tripC: number | null;
}

/**
 * Thermal zones under a sysfs root (Jetson: /sys/devices/virtual/thermal): each zone's temperature
 * and its lowest passive or hot trip point. Unreadable zones are skipped.
 */
export async function readThermalZones(root = '/sys/devices/virtual/thermal'): Promise<ThermalZone[]> {
  let names: string[];
  try {
    names = (await readdir(root)).filter((n) => n.startsWith('thermal_zone'));
  } catch {
    return [];
  }
  const zones: ThermalZone[] = [];
  for (const n of names.sort()) {
    const dir = path.join(root, n);
    try {
      const tempC = Number((await readFile(path.join(dir, 'temp'), 'utf8')).trim()) / 1000;
      const type = (await readFile(path.join(dir, 'type'), 'utf8').catch(() => n)).trim();
      let tripC: number | null = null;
      for (const f of await readdir(dir)) {
        const m = /^trip_point_(\d+)_type$/.exec(f);
        if (!m) continue;
        const kind = (await readFile(path.join(dir, f), 'utf8')).trim();
        if (kind !== 'passive' && kind !== 'hot') continue;
        const t = Number((await readFile(path.join(dir, `trip_point_${m[1]}_temp`), 'utf8')).trim()) / 1000;
        if (Number.isFinite(t) && t > 0 && (tripC === null || t < tripC)) tripC = t;
      }
      if (Number.isFinite(tempC)) zones.push({ type, tempC, tripC });
    } catch {
      // a zone without a readable temperature: skip it
    }
  }
  return zones;
}

export function throttleFromZones(zones: readonly ThermalZone[]): ThrottleState | null {
  const withTrip = zones.filter((z) => z.tripC !== null);
  if (withTrip.length === 0) return null;
  const hot = withTrip.filter((z) => z.tempC >= z.tripC!);
  return { now: hot.length > 0, since: false, flags: hot.map((z) => `${z.type}-over-trip`), source: 'thermal-zones' };
}

function run(cmd: string, args: string[], timeoutMs = 2000): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout) => resolve(err ? null : stdout));
  });
}

export interface HostSamplerOptions {
  /** Where thermal zones live (tests point it at a fixture tree). */
  thermalRoot?: string;
  /** The Raspberry Pi firmware tool; absent elsewhere. */
  vcgencmd?: string;
}

/**
 * Reads the host for telemetry: CPU load, memory and temperature through systeminformation,
 * throttling from `vcgencmd get_throttled` (Pi) or thermal trip points (Jetson, other boards).
 */
export function createHostSampler(o: HostSamplerOptions = {}): () => Promise<HostSample> {
  const thermalRoot = o.thermalRoot ?? '/sys/devices/virtual/thermal';
  const vcgencmd = o.vcgencmd ?? 'vcgencmd';
  return async () => {
    const [load, mem, temp, pi, zones] = await Promise.all([
      si.currentLoad().catch(() => null),
      si.mem(),
      si.cpuTemperature().catch(() => null),
      run(vcgencmd, ['get_throttled']),
      readThermalZones(thermalRoot),
    ]);
    const zoneMax = zones.length ? Math.max(...zones.map((z) => z.tempC)) : null;
    const siTemp = temp && typeof temp.main === 'number' && temp.main > 0 ? temp.main : null;
    return {
      cpuLoadPercent: load?.currentLoad ?? 0,
      loadAverage1: os.loadavg()[0] ?? 0,
      memUsedMB: (mem.total - mem.available) / 2 ** 20,
      memTotalMB: mem.total / 2 ** 20,
      rssMB: process.memoryUsage().rss / 2 ** 20,
      temperatureC: siTemp ?? zoneMax,
      throttled: (pi ? decodePiThrottled(pi) : null) ?? throttleFromZones(zones),
    };
  };
}
