import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

// End to end through the built binary on the embedded mnist package (tiny subsets, wasm backend).
const dir = mkdtempSync(path.join(tmpdir(), 'edgekt-distill-cli-'));
const env = { EDGEKT_CACHE: dir };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('edgekt teacher / distill / bench distill', () => {
  it('teacher train caches the reference teacher, and reuses the cache', () => {
    const r = runCli(['teacher', 'train', '--data', 'mnist', '--limit', '300', '--epochs', '1', '--json'], env);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    const meta = JSON.parse(r.stdout) as { dir: string; cached: boolean; params: number; testAccuracy: number };
    expect(meta.cached).toBe(false);
    expect(meta.dir).toBe(path.join(dir, 'teachers', 'mnist-0'));
    expect(meta.params).toBeGreaterThan(300_000);
    expect(existsSync(path.join(meta.dir, 'model.json'))).toBe(true);
    const again = runCli(['teacher', 'train', '--data', 'mnist', '--json'], env);
    expect(JSON.parse(again.stdout).cached).toBe(true);
  });

  it('distill trains a lightened student with hints at every stage and saves it', () => {
    const teacher = path.join(dir, 'teachers', 'mnist-0');
    const student = path.join(dir, 'student');
    const out = path.join(dir, 'distilled');
    expect(runCli(['lighten', '--teacher', teacher, '--out', student, '--json'], env).code).toBe(0);
    const r = runCli(['distill', '--teacher', teacher, '--student', student, '--data', 'mnist', '--out', out, '--limit', '300', '--epochs', '1', '--json'], env);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as { hints: unknown[]; steps: number; accuracy: { studentAfter: number }; labeled: boolean };
    expect(rep.hints).toHaveLength(3);
    expect(rep.labeled).toBe(true);
    expect(rep.steps).toBeGreaterThan(0);
    expect(rep.accuracy.studentAfter).toBeGreaterThanOrEqual(0);
    expect(existsSync(path.join(out, 'model.json'))).toBe(true);
    expect(JSON.parse(readFileSync(path.join(out, 'distill.json'), 'utf8')).steps).toBe(rep.steps);
  });

  it('refuses a bad schedule with the usage exit code', () => {
    const r = runCli(['distill', '--teacher', dir, '--student', dir, '--data', 'mnist', '--out', dir, '--schedule', 'sideways'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('EDGEKT_ERR_USAGE');
  });

  it('bench distill reports the four methods with mean ± std and the relative claim', () => {
    const r = runCli(['bench', 'distill', '--data', 'mnist', '--seeds', '1', '--epochs', '2', '--train-limit', '128', '--test-limit', '200', '--workers', '2', '--depth', '1,2,1', '--json'], env);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as {
      methods: Array<{ method: string; accuracy: { n: number } }>; claim: unknown; settings: { trainSamples: number; workers: number; depth: number[] };
      runs: Array<{ method: string; epochLosses: Array<{ kd: number | null; ce: number | null }> }>;
    };
    expect(rep.methods.map((m) => m.method)).toEqual(['labels', 'kd', 'multilevel', 'multilevel-noise']);
    expect(rep.settings).toMatchObject({ trainSamples: 128, workers: 2, depth: [1, 2, 1] });
    // Every run reports a loss per epoch: KD for the teacher-guided methods, hard labels only for (a).
    for (const run of rep.runs) expect(run.epochLosses).toHaveLength(2);
    expect(rep.runs.find((x) => x.method === 'labels')!.epochLosses[0]).toMatchObject({ kd: null });
    expect(rep.runs.find((x) => x.method === 'kd')!.epochLosses.every((e) => typeof e.kd === 'number')).toBe(true);
    expect(rep.claim).not.toBeNull();
  });

  it('bench distill --hint-loss attention runs the multi-level methods with attention hints; an unknown kind is EDGEKT_ERR_USAGE', () => {
    const r = runCli(['bench', 'distill', '--data', 'mnist', '--seeds', '1', '--epochs', '1', '--train-limit', '128', '--test-limit', '200', '--methods', 'multilevel', '--hint-loss', 'attention', '--hint-point', 'pre-relu', '--workers', '1', '--json'], env);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as { methods: Array<{ method: string }>; settings: { hintLoss: string; hintPoint: string } };
    expect(rep.settings).toMatchObject({ hintLoss: 'attention', hintPoint: 'pre-relu' });
    expect(rep.methods.map((m) => m.method)).toEqual(['multilevel']);
    const bad = runCli(['bench', 'distill', '--data', 'mnist', '--hint-loss', 'l7'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('EDGEKT_ERR_USAGE');
    const badPoint = runCli(['bench', 'distill', '--data', 'mnist', '--hint-point', 'mid'], env);
    expect(badPoint.code).toBe(2);
    expect(badPoint.stderr).toContain('EDGEKT_ERR_USAGE');
  });
});
