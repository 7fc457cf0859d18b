import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { weightSetFromModel } from '../src/federated/tfjs-weights.js';
import { saveModel } from '../src/model/io.js';
import { startAedes, type AedesBroker } from './helpers/aedes.js';
import { ROOT } from './helpers/cli.js';
import { coordinatorFiles, waitUntil, type CoordinatorFiles } from './helpers/coordinator-harness.js';
import { startRoundClient, type RoundClient } from './helpers/round-client.js';
import { globalOf, startAedesCoordinator, waitForRun } from './helpers/round-harness.js';

const BIN = path.join(ROOT, 'bin', 'edgekt.js');

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    p.once('error', reject);
    p.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js')))('edgekt fleet federated start|status (built CLI, aedes, SQLite)', () => {
  let broker: AedesBroker;
  let files: CoordinatorFiles;
  let c: Awaited<ReturnType<typeof startAedesCoordinator>>;
  let client: RoundClient;
  let dir: string;
  let base: ReturnType<typeof weightSetFromModel>;

  beforeAll(async () => {
    broker = await startAedes();
    files = coordinatorFiles();
    c = await startAedesCoordinator({ id: 'fcli', brokerUrl: broker.url, files });
    client = await startRoundClient({ url: broker.url, id: 'k1', fleetKey: files.fleet, behaviour: { delta: 0.25, numSamples: 8 } });
    await waitUntil('k1 registered', async () => Boolean((await c.store.getDevice('k1'))?.telemetry), 10_000);
    dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-fedcli-'));
    const m = tf.sequential({ layers: [tf.layers.dense({ name: 'd', units: 3, inputShape: [4] })] });
    await saveModel(m, path.join(dir, 'base'));
    base = weightSetFromModel(m);
    m.dispose();
    writeFileSync(path.join(dir, 'run.yaml'), 'rounds: 1\ndeadlineSeconds: 20\nselection:\n  minCount: 1\n');
  });
  afterAll(async () => {
    await client?.stop();
    await c?.stop();
    await broker?.stop();
    files?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts a run from a tfjs model dir and shows its rounds; a read-only token is refused with EDGEKT_ERR_FORBIDDEN', async () => {
    const common = ['fleet', '--url', c.url, '--token-file'];
    const ro = await cli([...common, files.readTokensFile, 'federated', 'start', '--config', path.join(dir, 'run.yaml'), '--base', path.join(dir, 'base'), '--id', 'ro']);
    expect(ro.code).toBe(3);
    expect(ro.stderr).toMatch(/^edgekt: error EDGEKT_ERR_FORBIDDEN: /m);
    const badSpec = path.join(dir, 'bad.yaml');
    writeFileSync(badSpec, 'rounds: 0\n');
    const bad = await cli([...common, files.adminTokensFile, 'federated', 'start', '--config', badSpec, '--base', path.join(dir, 'base')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/EDGEKT_ERR_USAGE: .*rounds/);

    const ok = await cli([...common, files.adminTokensFile, 'federated', 'start', '--config', path.join(dir, 'run.yaml'), '--base', path.join(dir, 'base'), '--id', 'cli1']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^federated run cli1 started/);
    const run = await waitForRun(c.store, 'cli1', ['completed', 'failed']);
    expect(run.state).toBe('completed');
    const g = await globalOf(c.store, run.globalSha256);
    expect(Object.keys(g).sort()).toEqual(['d/bias', 'd/kernel']);
    Array.from(g['d/kernel']!.values).forEach((v, i) => expect(v).toBeCloseTo(base['d/kernel']!.values[i]! + 0.25, 6));

    const status = await cli([...common, files.readTokensFile, 'federated', 'status', 'cli1']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/federated run cli1: completed, 1\/1 rounds/);
    expect(status.stdout).toMatch(/^1\s+1\s+completed\s+1\s+1\s+0\s+0\s+0\s+-/m);
    const js = await cli([...common, files.readTokensFile, '--json', 'federated', 'status', 'cli1']);
    expect(JSON.parse(js.stdout)).toMatchObject({ id: 'cli1', rounds: [{ round: 1, result: { included: ['k1'] } }] });
    const missing = await cli([...common, files.readTokensFile, 'federated', 'status', 'nope']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/EDGEKT_ERR_NOT_FOUND/);
  });
});
