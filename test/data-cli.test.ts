import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FASHION_MNIST_DIR } from '../src/data/index.js';
import { runCli } from './helpers/cli.js';
import { writeIdxPair } from './helpers/data-fixtures.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'edgekt-data-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Summary {
  name: string;
  train: { count: number; perClass: number[] };
  validation: { count: number; perClass: number[] } | null;
  test: { count: number; perClass: number[] };
}

describe('edgekt data inspect', () => {
  it('mnist: the package holds 10000 digits', () => {
    const r = runCli(['data', 'inspect', 'mnist', '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as Summary;
    expect(s.train.count + (s.validation?.count ?? 0) + s.test.count).toBe(10000);
    const text = runCli(['data', 'inspect', 'mnist']);
    expect(text.stdout).toMatch(/^total\s+\d+\s+\d+\s+\d+\s+10000$/m);
  });

  it('idx:DIR with --val-fraction and --seed prints per-class counts per split', () => {
    writeIdxPair(tmp, 'train', 40, { classes: 4, gz: true });
    writeIdxPair(tmp, 't10k', 8, { classes: 4, gz: true });
    const r = runCli(['data', 'inspect', `idx:${tmp}`, '--val-fraction', '0.25', '--seed', '3', '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as Summary;
    expect(s.train.perClass.reduce((a, b) => a + b, 0)).toBe(30);
    expect(s.train.perClass.every((n) => n === 7 || n === 8)).toBe(true);
    expect(s.train.count).toBe(30);
    expect(s.validation!.count).toBe(10);
    expect(s.test.perClass).toEqual([2, 2, 2, 2]);
    const text = runCli(['data', 'inspect', `idx:${tmp}`]);
    expect(text.stdout).toMatch(/^class\s+train\s+test\s+all$/m);
    expect(text.stdout).toMatch(/^total\s+40\s+8\s+48$/m);
  });

  it('bad input: one line with the code, exit 3, no stack trace', () => {
    for (const [spec, code] of [['nope', 'EDGEKT_ERR_DATA_SPEC'], ['idx:/nonexistent/x', 'EDGEKT_ERR_DATA_NOT_FOUND']]) {
      const r = runCli(['data', 'inspect', spec!]);
      expect(r.code).toBe(3);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(code);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const usage = runCli(['data', 'inspect', 'mnist', '--val-fraction', 'lots']);
    expect(usage.code).toBe(2);
  });

  it.skipIf(!existsSync(FASHION_MNIST_DIR))('fashion-mnist: 60000 train / 10000 test, 6000 / 1000 per class', () => {
    const r = runCli(['data', 'inspect', 'fashion-mnist', '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as Summary;
    expect(s.train.count).toBe(60000);
    expect(s.test.count).toBe(10000);
    expect(s.validation).toBeNull();
    expect(s.train.perClass).toEqual(new Array(10).fill(6000));
    expect(s.test.perClass).toEqual(new Array(10).fill(1000));
  });
});
