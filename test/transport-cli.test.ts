import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { tmpDir } from './helpers/data-fixtures.js';

// Runs the built binary (`npx tsc -p tsconfig.build.json`, done by `npm test`).
const dir = tmpDir('edgekt-artifact-');
const model = path.join(dir, 'model');
const keys = path.join(dir, 'keys');
const manifest = path.join(model, 'manifest.json');
const codeLine = (stderr: string): string | undefined => /edgekt: error (EDGEKT_ERR_[A-Z_]+):/.exec(stderr)?.[1];

beforeAll(() => {
  mkdirSync(model);
  writeFileSync(path.join(model, 'model.json'), JSON.stringify({ modelTopology: {}, weightsManifest: [] }));
  writeFileSync(path.join(model, 'group1-shard1of1.bin'), randomBytes(200_000));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('edgekt keys / artifact (real binary)', () => {
  let keyId = '';
  it('keys generate writes NAME.key (0600) and NAME.pub and prints the keyId', () => {
    const r = runCli(['keys', 'generate', '--out', keys, '--name', 'coord', '--json']);
    expect(r.code).toBe(0);
    keyId = (JSON.parse(r.stdout) as { keyId: string }).keyId;
    expect(keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(statSync(path.join(keys, 'coord.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(keys, 'coord.pub'), 'utf8')).toContain('BEGIN PUBLIC KEY');
    expect(runCli(['keys', 'generate', '--out', keys, '--name', 'coord']).code).toBe(2);
    expect(runCli(['keys', 'generate', '--out', keys, '--name', 'other']).code).toBe(0);
  });

  it('artifact sign writes the envelope next to the files; artifact verify accepts it', () => {
    const s = runCli(['artifact', 'sign', model, '--key', path.join(keys, 'coord.key'), '--name', 'fm-teacher', '--artifact-version', '3', '--target-group', 'lab', '--expires', '2h', '--block-size', '16384', '--json']);
    expect(s.code).toBe(0);
    const env = JSON.parse(readFileSync(manifest, 'utf8')) as { manifest: { version: number; files: Array<{ path: string; blocks: string[] }> }; signatures: Array<{ keyId: string }> };
    expect(env.signatures[0]!.keyId).toBe(keyId);
    expect(env.manifest.files.map((f) => f.path)).toEqual(['group1-shard1of1.bin', 'model.json']);
    expect(env.manifest.files[0]!.blocks).toHaveLength(Math.ceil(200_000 / 16384));
    const v = runCli(['artifact', 'verify', manifest, '--trust', path.join(keys, 'coord.pub'), '--device', 'pi-9', '--group', 'lab', '--last-version', '2']);
    expect(v.code).toBe(0);
  });

  it('refusals exit 3 with their code: untrusted key, wrong target, replay', () => {
    const untrusted = runCli(['artifact', 'verify', manifest, '--trust', path.join(keys, 'other.pub')]);
    expect([untrusted.code, codeLine(untrusted.stderr)]).toEqual([3, 'EDGEKT_ERR_UNKNOWN_KEY']);
    const target = runCli(['artifact', 'verify', manifest, '--trust', path.join(keys, 'coord.pub'), '--device', 'pi-9']);
    expect([target.code, codeLine(target.stderr)]).toEqual([3, 'EDGEKT_ERR_WRONG_TARGET']);
    const replay = runCli(['artifact', 'verify', manifest, '--trust', path.join(keys, 'coord.pub'), '--group', 'lab', '--last-version', '3']);
    expect([replay.code, codeLine(replay.stderr)]).toEqual([3, 'EDGEKT_ERR_REPLAY']);
  });

  it('a tampered manifest exits 3 with EDGEKT_ERR_SIGNATURE, a tampered file with EDGEKT_ERR_HASH', () => {
    const original = readFileSync(manifest, 'utf8');
    writeFileSync(manifest, original.replace('"version": 3', '"version": 4'));
    const sig = runCli(['artifact', 'verify', manifest, '--trust', path.join(keys, 'coord.pub')]);
    expect([sig.code, codeLine(sig.stderr)]).toEqual([3, 'EDGEKT_ERR_SIGNATURE']);
    writeFileSync(manifest, original);
    const shard = path.join(model, 'group1-shard1of1.bin');
    const bytes = readFileSync(shard);
    bytes[1000] = bytes[1000]! ^ 1;
    writeFileSync(shard, bytes);
    const hash = runCli(['artifact', 'verify', manifest, '--trust', path.join(keys, 'coord.pub')]);
    expect([hash.code, codeLine(hash.stderr)]).toEqual([3, 'EDGEKT_ERR_HASH']);
    expect(runCli(['artifact', 'verify', manifest, '--trust', path.join(keys, 'coord.pub'), '--no-files']).code).toBe(0);
  });

  it('usage errors exit 2: no target, bad --expires', () => {
    const key = path.join(keys, 'coord.key');
    expect(runCli(['artifact', 'sign', model, '--key', key, '--name', 'x', '--artifact-version', '1']).code).toBe(2);
    expect(runCli(['artifact', 'sign', model, '--key', key, '--name', 'x', '--artifact-version', '1', '--target-group', 'g', '--expires', 'soon']).code).toBe(2);
  });
});
