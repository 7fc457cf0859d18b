import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

// The strong teacher through the built binary: its own cache key beside the quick one, and the
// benchmarks' --teacher-preset choosing between them.
const dir = mkdtempSync(path.join(tmpdir(), 'edgekt-teacher-preset-'));
const env = { EDGEKT_CACHE: dir };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('edgekt teacher train --preset', () => {
  it('strong trains augmented on 2 workers into teachers/<data>-strong-<seed>; quick keeps teachers/<data>-<seed>', () => {
    const r = runCli(['teacher', 'train', '--preset', 'strong', '--data', 'mnist', '--limit', '200', '--epochs', '1', '--workers', '2', '--json'], env);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    const strong = JSON.parse(r.stdout) as { dir: string; cached: boolean; preset: string; augment: boolean; workers: number; epochs: number };
    expect(strong).toMatchObject({ dir: path.join(dir, 'teachers', 'mnist-strong-0'), cached: false, preset: 'strong', augment: true, workers: 2, epochs: 1 });
    const quick = JSON.parse(runCli(['teacher', 'train', '--data', 'mnist', '--limit', '200', '--epochs', '1', '--json'], env).stdout) as { dir: string; cached: boolean; preset?: string; augment?: boolean };
    expect(quick.dir).toBe(path.join(dir, 'teachers', 'mnist-0'));
    expect(quick.cached).toBe(false);
    expect(quick.preset).toBeUndefined();
    expect(quick.augment).toBeUndefined();
    expect(JSON.parse(runCli(['teacher', 'train', '--preset', 'strong', '--data', 'mnist', '--json'], env).stdout).cached).toBe(true);
  }, 240_000);

  it('an unknown preset is EDGEKT_ERR_USAGE, and bench paper --teacher-preset strong looks for the strong teacher', () => {
    const bad = runCli(['teacher', 'train', '--preset', 'huge', '--data', 'mnist'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('EDGEKT_ERR_USAGE');
    const paper = runCli(['bench', 'paper', '--teacher-preset', 'strong'], env);
    expect(paper.code).not.toBe(0);
    expect(paper.stderr).toContain(path.join(dir, 'teachers', 'fashion-mnist-strong-0'));
    expect(paper.stderr).toContain('--preset strong');
    expect(runCli(['bench', 'distill', '--teacher-preset', 'huge'], env).stderr).toContain('EDGEKT_ERR_USAGE');
    const importance = runCli(['bench', 'paper', '--importance', 'l7', '--latency-aware'], env);
    expect(importance.code).toBe(2);
    expect(importance.stderr).toContain('EDGEKT_ERR_USAGE');
    expect(importance.stderr).toContain('l1 | l2 | fpgm');
    const preset = runCli(['bench', 'paper', '--preset', 'huge'], env);
    expect(preset.code).toBe(2);
    expect(preset.stderr).toContain('EDGEKT_ERR_USAGE');
    expect(preset.stderr).toContain('paper | beyond');
  });
});
