import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

describe('edgekt runtime', () => {
  it('auto picks wasm here (no libtensorflow) and says why', () => {
    const r = runCli(['runtime', '--json'], { EDGEKT_BACKEND: '' });
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as { backend: string; reason: string; tfjsVersion: string; machine: { cores: number } };
    expect(['wasm', 'tensorflow']).toContain(info.backend);
    if (info.backend === 'wasm') expect(info.reason).toMatch(/tfjs-node/);
    expect(info.tfjsVersion).toMatch(/^4\./);
    expect(info.machine.cores).toBeGreaterThan(0);
  });

  it('EDGEKT_BACKEND=cpu selects cpu', () => {
    const r = runCli(['runtime'], { EDGEKT_BACKEND: 'cpu' });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^backend\s+cpu$/m);
  });

  it('--backend overrides the environment', () => {
    const r = runCli(['--backend', 'wasm', 'runtime', '--json'], { EDGEKT_BACKEND: 'cpu' });
    expect(JSON.parse(r.stdout).backend).toBe('wasm');
  });

  it('an unknown backend is a usage error: code, exit 2, no stack trace', () => {
    const r = runCli(['runtime'], { EDGEKT_BACKEND: 'gpu9000' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('EDGEKT_ERR_USAGE');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('an unknown command exits 2 with help', () => {
    const r = runCli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command/);
  });

  it('--help lists the commands', () => {
    const r = runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/runtime/);
    expect(r.stdout).toMatch(/bench/);
  });
});
