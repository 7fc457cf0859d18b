import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../src/config/agent-config.js';
import { deviceClientOptions, readBrokerSecrets } from '../src/agent/connection.js';
import { cronAllows, pauseReason } from '../src/agent/work-gate.js';
import { decodePiThrottled, readThermalZones, throttleFromZones } from '../src/agent/telemetry.js';
import type { DeviceProfile } from '../src/config/device-profile.js';
import { EdgektError } from '../src/core/errors.js';

const GOOD = `
broker:
  url: mqtts://broker.local:8883
  tls: { ca: /etc/edgekt/ca.pem, cert: /etc/edgekt/pi.crt, key: /etc/edgekt/pi.key }
  username: pi-001
  passwordFile: /etc/edgekt/mqtt.pass
device:
  id: pi-001
  groups: [lab, floor-2]
  profile: raspberry-pi-4
datasets:
  digits: mnist
trust:
  coordinatorKeys: [/etc/edgekt/fleet.pub]
stateDir: /var/lib/edgekt
limits:
  maxArtifactBytes: 200MB
`;

function issuesOf(text: string): Array<{ path: string; message: string }> {
  try {
    parseAgentConfig(text);
  } catch (e) {
    expect(e).toBeInstanceOf(EdgektError);
    expect((e as EdgektError).code).toBe('EDGEKT_ERR_CONFIG');
    return ((e as EdgektError).details.issues as Array<{ path: string; message: string }>) ?? [{ path: '(yaml)', message: (e as Error).message }];
  }
  throw new Error('expected a config error');
}

describe('agent config (YAML + zod)', () => {
  it('parses a full config with defaults filled in', () => {
    const c = parseAgentConfig(GOOD);
    expect(c.device.groups).toEqual(['lab', 'floor-2']);
    expect(c.limits.maxArtifactBytes).toBe(200 * 2 ** 20);
    expect(c.limits.window).toBe(8);
    expect(c.broker.sessionExpirySeconds).toBeGreaterThan(0);
    expect(c.telemetry.cron).toBe('*/30 * * * * *');
  });

  it('names every bad field', () => {
    const bad = GOOD.replace('mqtts://broker.local:8883', 'http://x').replace('id: pi-001', 'id: "pi 001"').replace('200MB', 'lots');
    const paths = issuesOf(bad).map((i) => i.path).sort();
    expect(paths).toEqual(['broker.url', 'device.id', 'limits.maxArtifactBytes']);
  });

  it('refuses unknown fields, a missing trust list, cert without key, and bad YAML', () => {
    expect(issuesOf(GOOD + 'passwrd: x\n').map((i) => i.path)).toEqual(['(root)']);
    expect(issuesOf(GOOD.replace('coordinatorKeys: [/etc/edgekt/fleet.pub]', 'coordinatorKeys: []')).map((i) => i.path)).toEqual(['trust.coordinatorKeys']);
    expect(issuesOf(GOOD.replace(', key: /etc/edgekt/pi.key', '')).map((i) => i.path)).toEqual(['broker.tls']);
    expect(issuesOf('broker: [unclosed').length).toBe(1);
  });

  it('reads secrets from files and builds a persistent MQTT 5 session with a retained will', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-cfg-'));
    writeFileSync(path.join(dir, 'pass'), 's3cret\n');
    const c = parseAgentConfig(GOOD.replace('/etc/edgekt/mqtt.pass', path.join(dir, 'pass')).replace(/  tls: .*\n/, ''));
    const secrets = await readBrokerSecrets(c.broker);
    expect(secrets.password).toBe('s3cret');
    const o = deviceClientOptions(c, secrets, { topic: 'edgekt/v1/devices/pi-001/status', status: { type: 'status', deviceId: 'pi-001', state: 'offline', at: new Date(0).toISOString(), groups: [], versions: {} } });
    expect(o.clean).toBe(false);
    expect(o.protocolVersion).toBe(5);
    expect(o.properties?.sessionExpiryInterval).toBeGreaterThan(0);
    expect(o.will?.retain).toBe(true);
    expect(JSON.parse(String(o.will?.payload)).state).toBe('offline');
    const missing = parseAgentConfig(GOOD.replace('/etc/edgekt/mqtt.pass', path.join(dir, 'nope')).replace(/  tls: .*\n/, ''));
    await expect(readBrokerSecrets(missing.broker)).rejects.toMatchObject({ code: 'EDGEKT_ERR_CONFIG', details: { path: 'broker.passwordFile' } });
  });
});

const profile = (allowedCron: string): DeviceProfile => ({
  name: 't', description: '', match: { arch: ['x64'] }, budgets: {},
  runtime: { backend: 'auto', threads: 1 },
  training: { batchSize: 32, maxRssMB: 500, maxTemperatureC: 80, allowedCron },
});

describe('work gate', () => {
  it('follows the cron window at minute level', () => {
    const at = (h: number, m: number): Date => new Date(2026, 11, 3, h, m, 42);
    expect(cronAllows('* 0-6 * * *', at(3, 10))).toBe(true);
    expect(cronAllows('* 0-6 * * *', at(7, 0))).toBe(false);
    expect(cronAllows('*/15 * * * 1-5', new Date(2026, 11, 3, 9, 30))).toBe(true); // Thursday
    expect(cronAllows('*/15 * * * 0', new Date(2026, 11, 6, 9, 30))).toBe(true); // Sunday
    expect(cronAllows('*/15 * * * 0', new Date(2026, 11, 3, 9, 30))).toBe(false);
  });

  it('pauses for the window, heat (with hysteresis) and RSS', () => {
    const p = profile('* * * * *');
    const now = new Date(2026, 11, 3, 12, 0);
    expect(pauseReason(p, { now, temperatureC: 60, rssMB: 100 })).toBeNull();
    expect(pauseReason(profile('* 0-6 * * *'), { now, temperatureC: 60, rssMB: 100 })).toMatch(/window/);
    const hot = pauseReason(p, { now, temperatureC: 81, rssMB: 100 });
    expect(hot).toMatch(/^temperature/);
    expect(pauseReason(p, { now, temperatureC: 77, rssMB: 100 }, hot)).toMatch(/^temperature/);
    expect(pauseReason(p, { now, temperatureC: 74, rssMB: 100 }, hot)).toBeNull();
    expect(pauseReason(p, { now, temperatureC: null, rssMB: 900 })).toMatch(/^RSS/);
  });
});

describe('throttling readers', () => {
  it('decodes vcgencmd get_throttled', () => {
    expect(decodePiThrottled('throttled=0x0')).toEqual({ now: false, since: false, flags: [], source: 'vcgencmd' });
    const t = decodePiThrottled('throttled=0x50005\n')!;
    expect(t.now).toBe(true);
    expect(t.since).toBe(true);
    expect(t.flags).toEqual(['under-voltage', 'throttled', 'under-voltage-occurred', 'throttled-occurred']);
    expect(decodePiThrottled('error')).toBeNull();
  });

  it('reads Jetson-style thermal zones and their trip points from a sysfs tree', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'edgekt-thermal-'));
    const zone = (n: number, type: string, temp: number, trips: Array<[string, number]>): void => {
      const d = path.join(root, `thermal_zone${n}`);
      mkdirSync(d);
      writeFileSync(path.join(d, 'type'), `${type}\n`);
      writeFileSync(path.join(d, 'temp'), `${temp}\n`);
      trips.forEach(([kind, t], i) => {
        writeFileSync(path.join(d, `trip_point_${i}_type`), `${kind}\n`);
        writeFileSync(path.join(d, `trip_point_${i}_temp`), `${t}\n`);
      });
    };
    zone(0, 'CPU-therm', 52500, [['passive', 97000], ['critical', 105000]]);
    zone(1, 'GPU-therm', 99000, [['hot', 98000]]);
    const zones = await readThermalZones(root);
    expect(zones.map((z) => [z.type, z.tempC, z.tripC])).toEqual([['CPU-therm', 52.5, 97], ['GPU-therm', 99, 98]]);
    expect(throttleFromZones(zones)).toEqual({ now: true, since: false, flags: ['GPU-therm-over-trip'], source: 'thermal-zones' });
    expect(throttleFromZones(zones.slice(0, 1))?.now).toBe(false);
    expect(await readThermalZones(path.join(root, 'absent'))).toEqual([]);
  });
});

describe('agent config: federated', () => {
  it('is off by default and takes enabled/dataset/limit/seed, refusing unknown fields by name', () => {
    expect(parseAgentConfig(GOOD).federated).toEqual({ enabled: false, seed: 0 });
    expect(parseAgentConfig(`${GOOD}federated: { enabled: true, dataset: digits, limit: 500 }\n`).federated).toEqual({ enabled: true, dataset: 'digits', limit: 500, seed: 0 });
    expect(() => parseAgentConfig(`${GOOD}federated: { enabled: true, epochs: 3 }\n`)).toThrow(/federated/);
  });
});
