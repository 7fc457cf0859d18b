import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../src/config/manifest.js';
import { canonicalJson } from '../src/transport/canonical-json.js';
import { parsePrivateKey, parsePublicKey, privateKeyPem, publicKeyPem, rawPublicKey, trustedKeyMap } from '../src/transport/keys.js';
import { digestFile, manifestForDir } from '../src/transport/manifest-dir.js';
import { generateKeyPair, keyIdOf, signManifest, verifyEnvelope, verifyManifest } from '../src/transport/signing.js';
import { codeOf } from './helpers/errors.js';

const NOW = Date.parse('2025-01-01T00:00:00Z');
const signer = generateKeyPair();
const trusted = trustedKeyMap([signer.publicKey]);

function manifest(over: Partial<Manifest> = {}): Manifest {
  return {
    schema: 1,
    kind: 'teacher',
    name: 'fmnist-vgg',
    version: 3,
    target: { devices: ['pi-01'], groups: ['lab'] },
    issuedAt: new Date(NOW - 1000).toISOString(),
    expires: new Date(NOW + 3600_000).toISOString(),
    files: [{ path: 'model.json', size: 10, sha256: 'a'.repeat(64), blockSize: 65536 }],
    ...over,
  };
}

const opts = { trustedKeys: trusted, now: NOW, deviceId: 'pi-01', groups: [] as string[] };
const envelope = (m = manifest()) => JSON.stringify(signManifest(m, signer.privateKey));
const verifyCode = (input: unknown, o: Partial<Parameters<typeof verifyManifest>[1]> = {}) => codeOf(() => verifyManifest(input, { ...opts, ...o }));

describe('canonical JSON', () => {
  it('is independent of key order and formatting, and sorts nested keys', () => {
    const a = canonicalJson({ b: 1, a: { d: [1, 'x', null], c: true } });
    const b = canonicalJson(JSON.parse('{ "a": { "c": true, "d": [1, "x", null] }, "b": 1 }'));
    expect(a).toBe(b);
    expect(a).toBe('{"a":{"c":true,"d":[1,"x",null]},"b":1}');
  });
  it('refuses non-finite numbers, lone surrogates and non-plain objects', () => {
    expect(() => canonicalJson({ x: Number.NaN })).toThrow(TypeError);
    expect(() => canonicalJson([Infinity])).toThrow(TypeError);
    expect(() => canonicalJson('\ud800')).toThrow(TypeError);
    expect(() => canonicalJson({ d: new Date(0) })).toThrow(TypeError);
    expect(() => canonicalJson([undefined])).toThrow(TypeError);
  });
  it('omits undefined members like JSON.stringify', () => {
    expect(canonicalJson({ a: undefined, b: 2 })).toBe('{"b":2}');
  });
});

describe('manifest signing', () => {
  it('round-trips: the signed manifest verifies and comes back typed', () => {
    const m = verifyManifest(envelope(), opts);
    expect(m.version).toBe(3);
    expect(m.files[0]!.path).toBe('model.json');
  });
  it('verifies the same manifest with its keys reordered (canonical form is what is signed)', () => {
    const env = signManifest(manifest(), signer.privateKey);
    const reordered = { signatures: env.signatures, manifest: Object.fromEntries(Object.entries(env.manifest).reverse()) };
    expect(verifyManifest(JSON.stringify(reordered, null, 2), opts).name).toBe('fmnist-vgg');
  });
  it('keyId is the first 16 hex of sha256 over the raw public key, the same from PEM and raw base64', () => {
    const raw = rawPublicKey(signer.publicKey).toString('base64');
    expect(keyIdOf(parsePublicKey(raw))).toBe(signer.keyId);
    expect(keyIdOf(parsePublicKey(publicKeyPem(signer.publicKey)))).toBe(signer.keyId);
    expect(keyIdOf(parsePrivateKey(privateKeyPem(signer.privateKey)))).toBe(signer.keyId);
    expect(signer.keyId).toMatch(/^[0-9a-f]{16}$/);
  });
  it('accepts a trusted key list as well as a map, and bytes as well as strings', () => {
    expect(verifyManifest(Buffer.from(envelope()), { ...opts, trustedKeys: [signer.publicKey] }).version).toBe(3);
  });

  it('refuses malformed JSON and schema violations: EDGEKT_ERR_MALFORMED', () => {
    expect(verifyCode('{"manifest": ')).toBe('EDGEKT_ERR_MALFORMED');
    expect(verifyCode({ signatures: [] })).toBe('EDGEKT_ERR_MALFORMED');
    expect(codeOf(() => signManifest(manifest({ version: 0 }), signer.privateKey))).toBe('EDGEKT_ERR_MALFORMED');
    expect(codeOf(() => signManifest(manifest({ target: {} }), signer.privateKey))).toBe('EDGEKT_ERR_MALFORMED');
    const traversal = manifest({ files: [{ path: '../etc/passwd', size: 1, sha256: 'a'.repeat(64), blockSize: 65536 }] });
    expect(codeOf(() => signManifest(traversal, signer.privateKey))).toBe('EDGEKT_ERR_MALFORMED');
  });
  it('refuses a manifest without signatures: EDGEKT_ERR_UNSIGNED', () => {
    expect(verifyCode({ manifest: manifest() })).toBe('EDGEKT_ERR_UNSIGNED');
    expect(verifyCode({ manifest: manifest(), signatures: [] })).toBe('EDGEKT_ERR_UNSIGNED');
  });
  it('refuses a signature by an untrusted key: EDGEKT_ERR_UNKNOWN_KEY', () => {
    const other = generateKeyPair();
    expect(verifyCode(JSON.stringify(signManifest(manifest(), other.privateKey)))).toBe('EDGEKT_ERR_UNKNOWN_KEY');
  });
  it('refuses a bad signature and any tampered field: EDGEKT_ERR_SIGNATURE', () => {
    const env = signManifest(manifest(), signer.privateKey);
    const other = generateKeyPair();
    const forged = { ...env, signatures: [{ keyId: signer.keyId, sig: signManifest(manifest(), other.privateKey).signatures[0]!.sig }] };
    expect(verifyCode(forged)).toBe('EDGEKT_ERR_SIGNATURE');
    expect(verifyCode({ ...env, manifest: { ...env.manifest, version: 4 } })).toBe('EDGEKT_ERR_SIGNATURE');
    expect(verifyCode({ ...env, manifest: { ...env.manifest, target: { devices: ['pi-01', 'pi-02'] } } })).toBe('EDGEKT_ERR_SIGNATURE');
    const files = [{ ...env.manifest.files[0]!, sha256: 'b'.repeat(64) }];
    expect(verifyCode({ ...env, manifest: { ...env.manifest, files } })).toBe('EDGEKT_ERR_SIGNATURE');
  });
  it('refuses an expired manifest: EDGEKT_ERR_EXPIRED', () => {
    expect(verifyCode(envelope(), { now: NOW + 3600_000 })).toBe('EDGEKT_ERR_EXPIRED');
    expect(verifyCode(envelope(), { now: NOW + 3599_000 })).toBeUndefined();
  });
  it('refuses a version not newer than the last accepted: EDGEKT_ERR_REPLAY', () => {
    expect(verifyCode(envelope(), { lastVersion: 3 })).toBe('EDGEKT_ERR_REPLAY');
    expect(verifyCode(envelope(), { lastVersion: 7 })).toBe('EDGEKT_ERR_REPLAY');
    expect(verifyCode(envelope(), { lastVersion: 2 })).toBeUndefined();
  });
  it("refuses another device's or group's manifest: EDGEKT_ERR_WRONG_TARGET", () => {
    expect(verifyCode(envelope(), { deviceId: 'pi-02' })).toBe('EDGEKT_ERR_WRONG_TARGET');
    expect(verifyCode(envelope(), { deviceId: 'pi-02', groups: ['field'] })).toBe('EDGEKT_ERR_WRONG_TARGET');
    expect(verifyCode(envelope(), { deviceId: 'pi-02', groups: ['field', 'lab'] })).toBeUndefined();
  });
  it('refuses over the size limits: EDGEKT_ERR_TOO_LARGE', () => {
    expect(verifyCode(envelope(), { maxBytes: 9 })).toBe('EDGEKT_ERR_TOO_LARGE');
    expect(verifyCode(envelope(), { maxBytes: 10 })).toBeUndefined();
    expect(verifyCode(envelope(), { maxEnvelopeBytes: 100 })).toBe('EDGEKT_ERR_TOO_LARGE');
  });
  it('verifyEnvelope checks signature and expiry without a target', () => {
    expect(verifyEnvelope(envelope(), { trustedKeys: trusted, now: NOW }).name).toBe('fmnist-vgg');
    expect(codeOf(() => verifyEnvelope(envelope(), { trustedKeys: trusted, now: NOW + 7200_000 }))).toBe('EDGEKT_ERR_EXPIRED');
  });
});

describe('manifestForDir', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-mdir-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it('lists files with sizes, sha256 and per-block hashes, and signs', async () => {
    writeFileSync(path.join(dir, 'model.json'), '{"modelTopology":{}}');
    writeFileSync(path.join(dir, 'weights.bin'), Buffer.alloc(1000, 7));
    writeFileSync(path.join(dir, 'manifest.json'), 'old');
    const m = await manifestForDir(dir, { kind: 'teacher', name: 't', version: 1, target: { groups: ['lab'] }, expiresInSeconds: 60, blockSize: 256, now: NOW, exclude: ['manifest.json'] });
    expect(m.files.map((f) => [f.path, f.size, f.blocks?.length])).toEqual([['model.json', 20, 1], ['weights.bin', 1000, 4]]);
    const d = await digestFile(path.join(dir, 'weights.bin'), 256);
    expect(m.files[1]!.sha256).toBe(d.sha256);
    expect(m.expires).toBe(new Date(NOW + 60_000).toISOString());
    expect(verifyManifest(signManifest(m, signer.privateKey), { ...opts, deviceId: 'x', groups: ['lab'] }).files).toHaveLength(2);
  });
});
