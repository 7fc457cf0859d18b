import { mkdirSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { saveModel } from '../src/model/index.js';
import { initBackend } from '../src/runtime/backend.js';
import { runCli } from './helpers/cli.js';
import { tmpDir, writeIdxPair } from './helpers/data-fixtures.js';

let root = '';

describe('edgekt --log-json', () => {
  beforeAll(async () => {
    await initBackend('cpu');
    root = tmpDir('edgekt-logjson-');
    mkdirSync(path.join(root, 'data'));
    writeIdxPair(path.join(root, 'data'), 'train', 32, { h: 8, w: 8, classes: 2 });
    writeIdxPair(path.join(root, 'data'), 't10k', 8, { h: 8, w: 8, classes: 2 });
    const m = tf.sequential();
    m.add(tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 8, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }));
    m.add(tf.layers.batchNormalization());
    m.add(tf.layers.activation({ activation: 'relu' }));
    m.add(tf.layers.globalAveragePooling2d({}));
    m.add(tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
    await saveModel(m, path.join(root, 'teacher'));
    m.dispose();
  });

  it('compress prints pino JSON lines on stderr instead of progress lines; an unreachable budget still exits 4', () => {
    const r = runCli(['--backend', 'cpu', '--log-json', 'compress', '--teacher', path.join(root, 'teacher'), '--data', `idx:${root}/data`, '--profile', 'x86-64-dev',
      '--out', path.join(root, 'out'), '--width', '1', '--distill-epochs', '1', '--final-epochs', '1', '--brief-samples', '8', '--batch-size', '8',
      '--max-iterations', '1', '--runs', '2', '--min-channels', '2', '--round-to', '1', '--json']);
    expect([0, 4]).toContain(r.code);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('{'));
    const records = lines.map((l) => JSON.parse(l) as { level: number; msg: string; stage?: string });
    expect(records.map((x) => x.msg)).toContain('compress job started');
    expect(records.filter((x) => x.msg === 'stage done').map((x) => x.stage)).toEqual(['teacher', 'lighten', 'distill', 'prune']);
    expect(r.stderr).not.toContain('compress: distill');
    expect(JSON.parse(r.stdout).version).toBe(2);
  });

  it('a bad spec value exits 2 naming the field', () => {
    const r = runCli(['--backend', 'cpu', 'compress', '--teacher', path.join(root, 'teacher'), '--data', `idx:${root}/data`, '--profile', 'x86-64-dev', '--step', '1.5', '--importance', 'l7']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('EDGEKT_ERR_JOB_SPEC');
    expect(r.stderr).toContain('step');
    expect(r.stderr).toContain('importance');
  });
});
