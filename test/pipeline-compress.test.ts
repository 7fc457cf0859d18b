import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCliContext } from '../src/cli/context.js';
import { progressLines, runCompressCommand } from '../src/cli/commands/compress.js';
import type { PipelineEvent } from '../src/compress/pipeline.js';
import type { CompressJobSpecInput } from '../src/config/job-spec.js';
import { lighten } from '../src/compress/lighten/index.js';
import type { CompressReport } from '../src/compress/report/index.js';
import { main } from '../src/cli/main.js';
import { loadModel, saveModel } from '../src/model/index.js';
import { initBackend } from '../src/runtime/backend.js';
import { tmpDir, writeIdxPair } from './helpers/data-fixtures.js';

function teacherModel(): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 8, kernelSize: 3, padding: 'same', useBias: false, name: 'c1', kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }));
  m.add(tf.layers.batchNormalization({ name: 'bn1' }));
  m.add(tf.layers.activation({ activation: 'relu', name: 'r1' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2, name: 'p1' }));
  m.add(tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', useBias: false, name: 'c2', kernelInitializer: tf.initializers.heNormal({ seed: 2 }) }));
  m.add(tf.layers.batchNormalization({ name: 'bn2' }));
  m.add(tf.layers.activation({ activation: 'relu', name: 'r2' }));
  m.add(tf.layers.flatten({ name: 'fl' }));
  m.add(tf.layers.dense({ units: 32, activation: 'relu', name: 'fc1', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }));
  m.add(tf.layers.dense({ units: 3, name: 'logits', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }));
  return m;
}

let root = '';
let teacherDir = '';
let dataSpec = '';
let studentKB = 0;

function profileFile(name: string, budgets: Record<string, unknown>): string {
  const file = path.join(root, `${name}.json`);
  writeFileSync(file, JSON.stringify({
    name, match: { arch: ['x64'] }, budgets,
    runtime: { backend: 'cpu', threads: 1 },
    training: { batchSize: 16, maxRssMB: 500, maxTemperatureC: 80 },
  }));
  return file;
}

type Spec = CompressJobSpecInput & { out: string };
function options(profile: string, out: string, extra: Partial<Spec> = {}): Spec {
  return {
    teacher: teacherDir, data: dataSpec, profile, out, seed: 3, width: 1, distillEpochs: 1, finalEpochs: 1,
    briefSamples: 24, batchSize: 16, step: 0.25, maxIterations: 6, importance: 'l1', minChannels: 2, roundTo: 2, runs: 2, ...extra,
  };
}

const ctx = () => createCliContext(new Command(), { EDGEKT_BACKEND: 'cpu' });

async function outputs(dir: string, x: tf.Tensor): Promise<Float32Array> {
  const m = (await loadModel(dir)).model;
  const y = tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array);
  m.dispose();
  return y;
}

describe('edgekt compress pipeline', () => {
  beforeAll(async () => {
    await initBackend('cpu');
    root = tmpDir('edgekt-compress-');
    const data = path.join(root, 'data');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(data);
    writeIdxPair(data, 'train', 96, { h: 8, w: 8, classes: 3 });
    writeIdxPair(data, 't10k', 24, { h: 8, w: 8, classes: 3 });
    dataSpec = `idx:${data}`;
    teacherDir = path.join(root, 'teacher');
    const t = teacherModel();
    await saveModel(t, teacherDir);
    const l = await lighten(t, { widthMultiplier: 1, seed: 3 });
    studentKB = (l.student.countParams() * 4) / 1024;
    l.student.dispose();
    t.dispose();
  });

  it('prunes until the size budget holds and writes student, report.json, report.md and an SVG chart', async () => {
    const out = path.join(root, 'out-ok');
    const { report, code } = await runCompressCommand(ctx(), options(profileFile('p-ok', { modelSizeKB: 0.6 * studentKB }), out));
    expect(code).toBe(0);
    expect(report.met).toBe(true);
    expect(report.history.filter((h) => h.kind === 'prune').length).toBeGreaterThanOrEqual(1);
    expect(report.student.modelSizeKB).toBeLessThanOrEqual(0.6 * studentKB);
    expect(report.stages.map((s) => s.name)).toEqual(['lighten', 'distill', 'prune']);
    const saved = (await loadModel(path.join(out, 'student'))).model;
    expect(saved.countParams()).toBe(report.student.params);
    saved.dispose();
    expect(JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')).met).toBe(true);
    expect(readFileSync(path.join(out, 'report.md'), 'utf8')).toContain('![accuracy against latency per iteration](report.svg)');
    const svg = readFileSync(path.join(out, 'report.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('teacher');
  });

  it('a killed run resumes from its checkpoints and ends with the same result', async () => {
    const profile = profileFile('p-resume', { modelSizeKB: 0.5 * studentKB });
    const full = (await runCompressCommand(ctx(), options(profile, path.join(root, 'out-full')))).report;
    const out = path.join(root, 'out-killed');
    const kill = new AbortController();
    await expect(
      runCompressCommand(ctx(), options(profile, out), {
        signal: kill.signal,
        onEvent: (e) => {
          if (e.type === 'iteration' && e.record.iteration === 1) kill.abort();
        },
      }),
    ).rejects.toMatchObject({ code: 'EDGEKT_ERR_ABORTED' });
    expect(existsSync(path.join(out, 'checkpoints', 'prune-001', 'meta.json'))).toBe(true);
    expect(existsSync(path.join(out, 'checkpoints', 'prune-002'))).toBe(false);
    expect(existsSync(path.join(out, 'student'))).toBe(false);
    const seen: PipelineEvent[] = [];
    const resumed = (await runCompressCommand(ctx(), options(profile, out, { resume: true }), { onEvent: (e) => void seen.push(e) })).report;
    const done = seen.filter((e) => e.type === 'stage-done');
    expect(done.filter((e) => e.resumed).map((e) => e.stage)).toEqual(['teacher', 'lighten', 'distill']);
    expect(seen.filter((e) => e.type === 'iteration').map((e) => e.record.iteration)[0]).toBe(2);
    const shape = (r: CompressReport) => r.history.map((h) => [h.kind, h.figures.params, h.figures.accuracy, JSON.stringify(h.plan)]);
    expect(shape(resumed)).toEqual(shape(full));
    expect(resumed.student.params).toBe(full.student.params);
    const x = tf.randomNormal([4, 8, 8, 1], 0.5, 0.3, 'float32', 5);
    const a = await outputs(path.join(root, 'out-full', 'student'), x);
    const b = await outputs(path.join(out, 'student'), x);
    x.dispose();
    expect(Array.from(b)).toEqual(Array.from(a));
    // A resume with other settings is refused.
    await expect(runCompressCommand(ctx(), options(profile, out, { resume: true, step: 0.3 }))).rejects.toMatchObject({ code: 'EDGEKT_ERR_CHECKPOINT' });
  });

  it('an unreachable budget exits 4 with the closest model saved; bad input exits 3', async () => {
    const out = path.join(root, 'out-unreachable');
    const profile = profileFile('p-unreachable', { modelSizeKB: 0.001 });
    const argv = ['node', 'edgekt', '--backend', 'cpu', 'compress', '--teacher', teacherDir, '--data', dataSpec, '--profile', profile,
      '--out', out, '--width', '1', '--distill-epochs', '1', '--final-epochs', '1', '--brief-samples', '16', '--step', '0.5', '--max-iterations', '3', '--runs', '2', '--min-channels', '2', '--round-to', '1'];
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (lines.push(String(s)), true)) as typeof process.stdout.write;
    try {
      expect(await main([...argv, '--json'])).toBe(4);
    } finally {
      process.stdout.write = write;
    }
    expect((JSON.parse(lines.join('')) as CompressReport).met).toBe(false);
    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as CompressReport;
    expect(report.met).toBe(false);
    const saved = (await loadModel(path.join(out, 'student'))).model;
    expect(saved.countParams()).toBe(report.history[report.chosen]!.figures.params);
    expect(report.history[report.chosen]!.check.distance).toBe(Math.min(...report.history.map((h) => h.check.distance)));
    saved.dispose();
    expect(await main(['node', 'edgekt', '--backend', 'cpu', 'compress', '--teacher', path.join(root, 'nope'), '--data', dataSpec, '--profile', profile])).toBe(3);
    expect(await main(['node', 'edgekt', '--backend', 'cpu', 'compress', '--teacher', teacherDir, '--data', dataSpec, '--profile', 'no-such-profile'])).toBe(3);
    expect(await main(['node', 'edgekt', '--backend', 'cpu', 'compress', '--teacher', teacherDir, '--data', dataSpec, '--profile', profile, '--schedule', 'later'])).toBe(2);
    expect(await main(['node', 'edgekt', '--backend', 'cpu', 'compress', '--teacher', teacherDir, '--data', dataSpec, '--profile', profile, '--temperature', 'hot'])).toBe(2);
  });

  it('a residual (functional) teacher compresses to a valid student under a relative budget', async () => {
    const x = tf.input({ shape: [8, 8, 1] });
    const conv = (t: tf.SymbolicTensor, f: number, seed: number): tf.SymbolicTensor =>
      tf.layers.conv2d({ filters: f, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed }) }).apply(t) as tf.SymbolicTensor;
    const bnRelu = (t: tf.SymbolicTensor): tf.SymbolicTensor =>
      tf.layers.activation({ activation: 'relu' }).apply(tf.layers.batchNormalization().apply(t)) as tf.SymbolicTensor;
    const stem = bnRelu(conv(x, 16, 1));
    const branch = tf.layers.batchNormalization().apply(conv(bnRelu(conv(stem, 16, 2)), 16, 3)) as tf.SymbolicTensor;
    const sum = tf.layers.activation({ activation: 'relu' }).apply(tf.layers.add().apply([stem, branch])) as tf.SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({}).apply(sum) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }).apply(gap) as tf.SymbolicTensor;
    const teacher = tf.model({ inputs: x, outputs: out });
    const dir = path.join(root, 'teacher-res');
    await saveModel(teacher, dir);
    const teacherParams = teacher.countParams();
    teacher.dispose();
    const out2 = path.join(root, 'out-res');
    const { report } = await runCompressCommand(ctx(), { ...options(profileFile('p-res', { modelSizeKB: '0.15x' }), out2), teacher: dir });
    expect(report.met).toBe(true);
    expect(report.student.params).toBeLessThanOrEqual(0.15 * teacherParams);
    const student = (await loadModel(path.join(out2, 'student'))).model;
    const y = tf.tidy(() => (student.predict(tf.zeros([2, 8, 8, 1])) as tf.Tensor).shape);
    expect(y).toEqual([2, 3]);
    for (const name of student.layers.filter((l) => l.getClassName() === 'Add').map((l) => l.name)) {
      const ch = student.getLayer(name).inboundNodes[0]!.inputTensors.map((t) => t.shape[3]);
      expect(new Set(ch).size).toBe(1);
    }
    student.dispose();
  });
});

describe('progress lines for logs', () => {
  it('prints stage ends and iterations, and progress at most every interval (and at 100 %)', () => {
    const lines: string[] = [];
    let t = 0;
    const p = progressLines((l) => lines.push(l), 30_000, () => t);
    p.onEvent({ type: 'stage-start', stage: 'distill' });
    for (let done = 1; done <= 100; done++) {
      t = done * 1000;
      p.onEvent({ type: 'progress', progress: { stage: 'distill', done, total: 100, detail: 'loss 0.5' } });
    }
    p.onEvent({ type: 'stage-done', stage: 'distill', resumed: false });
    expect(lines).toEqual([
      'compress: distill started',
      'compress: distill 1/100 (1%) loss 0.5',
      'compress: distill 31/100 (31%) loss 0.5',
      'compress: distill 61/100 (61%) loss 0.5',
      'compress: distill 91/100 (91%) loss 0.5',
      'compress: distill 100/100 (100%) loss 0.5',
      'compress: distill done',
    ]);
  });
});
