import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BUILTIN_PROFILES,
  matchProfile,
  parseDeviceProfile,
  rankProfiles,
  resolveBudgets,
} from '../src/config/device-profile.js';
import { loadAllProfiles, loadProfile } from '../src/config/profile-files.js';
import { main } from '../src/cli/main.js';
import { codeOf } from './helpers/errors.js';


describe('device profiles', () => {
  it('every built-in profile validates and is named after its file', () => {
    const all = loadAllProfiles();
    expect(all.map((p) => p.name).sort()).toEqual([...BUILTIN_PROFILES].sort());
    for (const name of BUILTIN_PROFILES) expect(loadProfile(name).name).toBe(name);
  });

  it('rejects bad profiles with EDGEKT_ERR_PROFILE', () => {
    const good = loadProfile('raspberry-pi-4');
    expect(codeOf(() => parseDeviceProfile({ ...good, budgets: { latencyP95: '0.3' } }))).toBe('EDGEKT_ERR_PROFILE');
    expect(codeOf(() => parseDeviceProfile({ ...good, budgets: { latencyP95: -1 } }))).toBe('EDGEKT_ERR_PROFILE');
    expect(codeOf(() => parseDeviceProfile({ ...good, match: { arch: ['x64'], cpuModel: '([' } }))).toBe('EDGEKT_ERR_PROFILE');
    expect(codeOf(() => parseDeviceProfile({ ...good, training: { ...good.training, allowedCron: 'every day' } }))).toBe('EDGEKT_ERR_PROFILE');
    expect(codeOf(() => parseDeviceProfile({ ...good, extra: 1 }))).toBe('EDGEKT_ERR_PROFILE');
    expect(codeOf(() => parseDeviceProfile('garbage'))).toBe('EDGEKT_ERR_PROFILE');
    expect(codeOf(() => loadProfile('no-such-device'))).toBe('EDGEKT_ERR_PROFILE');
    const dir = mkdtempSync(path.join(tmpdir(), 'edgekt-profile-'));
    const file = path.join(dir, 'p.json');
    writeFileSync(file, '{not json');
    expect(codeOf(() => loadProfile(file))).toBe('EDGEKT_ERR_PROFILE');
  });

  it('matches machines by arch, cpu model and memory', () => {
    const all = loadAllProfiles();
    const pi4 = { arch: 'arm64', cpuModel: 'ARM Cortex-A72 Raspberry Pi 4 Model B', memoryMB: 3800 };
    expect(rankProfiles(all, pi4)[0]?.name).toBe('raspberry-pi-4');
    const pi3 = { arch: 'arm', cpuModel: 'ARM Cortex-A53', memoryMB: 924 };
    expect(rankProfiles(all, pi3)[0]?.name).toBe('raspberry-pi-3b');
    expect(rankProfiles(all, { arch: 'x64', cpuModel: 'Intel Xeon', memoryMB: 8000 })[0]?.name).toBe('x86-64-dev');
    expect(matchProfile(loadProfile('raspberry-pi-4'), { ...pi4, memoryMB: 20000 }).score).toBe(0);
    expect(rankProfiles(all, { arch: 'riscv64', cpuModel: 'x', memoryMB: 1000 })).toEqual([]);
  });

  it('resolves relative budgets against the teacher', () => {
    const b = resolveBudgets(
      { latencyP95: '0.3x', peakMemoryMB: 50, modelSizeKB: '0.02x', minAccuracy: '0.99x' },
      { latencyP95Ms: 10, peakMemoryMB: 100, modelSizeKB: 1000, accuracy: 0.9 },
    );
    expect(b.latencyP95Ms).toBeCloseTo(3);
    // A relative latency budget keeps its factor: the loop checks it against the teacher of each same run.
    expect(b.latencyP95Ratio).toBe(0.3);
    expect(resolveBudgets({ latencyP95: 4 }, { latencyP95Ms: 10, peakMemoryMB: 1, modelSizeKB: 1 }).latencyP95Ratio).toBeUndefined();
    expect(b.peakMemoryMB).toBe(50);
    expect(b.modelSizeKB).toBeCloseTo(20);
    expect(b.minAccuracy).toBeCloseTo(0.891);
    expect(codeOf(() => resolveBudgets({ minAccuracy: '0.9x' }, { latencyP95Ms: 1, peakMemoryMB: 1, modelSizeKB: 1 }))).toBe('EDGEKT_ERR_PROFILE');
  });

  it('profile show and detect run through the CLI', async () => {
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (lines.push(String(s)), true)) as typeof process.stdout.write;
    try {
      expect(await main(['node', 'edgekt', 'profile', 'show', 'jetson-nano', '--json'])).toBe(0);
      expect(JSON.parse(lines.join('')).name).toBe('jetson-nano');
      lines.length = 0;
      expect(await main(['node', 'edgekt', 'profile', 'detect', '--json'])).toBe(0);
      const detected = JSON.parse(lines.join('')) as { machine: { arch: string }; profile: string | null };
      expect(typeof detected.machine.arch).toBe('string');
      if (detected.machine.arch === 'x64') expect(detected.profile).toBe('x86-64-dev');
      lines.length = 0;
      expect(await main(['node', 'edgekt', 'profile', 'show', 'nope'])).toBe(3);
    } finally {
      process.stdout.write = write;
    }
  });
});
