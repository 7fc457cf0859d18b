import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectModelDir, saveModel } from '../src/model/index.js';
import { runCli } from './helpers/cli.js';
import { residualTeacher } from './helpers/model-fixtures.js';

let dir: string;
let teacherParams = 0;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(path.join(tmpdir(), 'edgekt-lighten-cli-'));
  const t = residualTeacher({ size: 16 });
  teacherParams = t.countParams();
  await saveModel(t, path.join(dir, 'teacher'));
  t.dispose();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('edgekt lighten (built CLI)', () => {
  it('writes a loadable student and reports teacher/student params and MACs', async () => {
    const out = path.join(dir, 'student');
    const r = runCli(['--backend', 'cpu', 'lighten', '--teacher', path.join(dir, 'teacher'), '--out', out, '--width', '0.5', '--json']);
    expect(r.code, r.stderr).toBe(0);
    // tfjs's "install tfjs-node" banner (printed on the cpu backend's first tensor) is silenced.
    expect(r.stderr).not.toContain('tfjs-node');
    const j = JSON.parse(r.stdout);
    expect(j.teacher.params).toBe(teacherParams);
    expect(j.student.params).toBeLessThan(j.teacher.params);
    expect(j.student.macs).toBeLessThan(j.teacher.macs);
    expect(j.paramsRatio).toBeCloseTo(j.teacher.params / j.student.params, 9);
    expect(j.stages).toHaveLength(2);
    const saved = await inspectModelDir(out);
    expect(saved.graph.totalParams).toBe(j.student.params);
    expect(saved.graph.totalMacs).toBe(j.student.macs);
    const text = runCli(['--backend', 'cpu', 'lighten', '--teacher', path.join(dir, 'teacher'), '--out', path.join(dir, 's2'), '--depth', '1']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^teacher\s+[\d,]+ params\s+[\d,]+ MACs/m);
    expect(text.stdout).toMatch(/^ratio\s+params [\d.]+x\s+MACs [\d.]+x smaller/m);
  });

  it('refuses a missing teacher with its code and the bad-input exit code; bad options are usage errors', () => {
    const r = runCli(['--backend', 'cpu', 'lighten', '--teacher', path.join(dir, 'nope'), '--out', path.join(dir, 'x')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('EDGEKT_ERR_MODEL_FORMAT');
    const u = runCli(['--backend', 'cpu', 'lighten', '--teacher', path.join(dir, 'teacher'), '--out', path.join(dir, 'x'), '--width', 'wide']);
    expect(u.code).toBe(2);
  });
});
