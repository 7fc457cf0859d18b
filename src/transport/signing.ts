import { sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { EnvelopeSchema, formatIssues, parseManifest, type Manifest, type SignedManifest } from '../config/manifest.js';
import { EdgektError } from '../core/errors.js';
import { canonicalJson } from './canonical-json.js';
import { keyIdOf } from './keys.js';

export { generateKeyPair, keyIdOf, type KeyPair } from './keys.js';

/**
 * Signatures cover this prefix + the canonical JSON of the manifest: the prefix keeps an edgekt
 * manifest signature from ever being valid for another kind of document signed by the same key.
 */
const SIGNING_CONTEXT = 'edgekt/v1 manifest\n';

/** A manifest document larger than this is refused before it is parsed. */
export const DEFAULT_MAX_ENVELOPE_BYTES = 4 * 1024 * 1024;

function signingBytes(manifest: unknown): Buffer {
  let text: string;
  try {
    text = canonicalJson(manifest);
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_MALFORMED', `manifest is not canonical JSON: ${(e as Error).message}`, {}, { cause: e });
  }
  return Buffer.from(SIGNING_CONTEXT + text, 'utf8');
}

/** Validates then signs; the result is what travels (and what `edgekt artifact sign` writes). */
export function signManifest(manifest: Manifest, privateKey: KeyObject): SignedManifest {
  const parsed = parseManifest(manifest);
  const sig = edSign(null, signingBytes(parsed), privateKey).toString('base64');
  return { manifest: parsed, signatures: [{ keyId: keyIdOf(privateKey), sig }] };
}

export type TrustedKeys = ReadonlyMap<string, KeyObject> | readonly KeyObject[];

export interface VerifyEnvelopeOptions {
  trustedKeys: TrustedKeys;
  /** Epoch milliseconds (inject the clock). */
  now: number;
  /** Largest total size of the files the manifest declares that the caller will fetch. */
  maxBytes?: number;
  /** Largest manifest document (string or bytes input); default 4 MiB. */
  maxEnvelopeBytes?: number;
}

export interface VerifyManifestOptions extends VerifyEnvelopeOptions {
  deviceId: string;
  groups: readonly string[];
  /** The last version accepted for this manifest's name: anything not newer is a replay. */
  lastVersion?: number;
}

function parseInput(input: unknown, maxEnvelopeBytes: number): unknown {
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) return input;
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength;
  if (size > maxEnvelopeBytes) throw new EdgektError('EDGEKT_ERR_TOO_LARGE', `manifest is ${size} bytes, limit ${maxEnvelopeBytes}`, { size, limit: maxEnvelopeBytes });
  try {
    return JSON.parse(typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8'));
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_MALFORMED', 'manifest is not JSON', {}, { cause: e });
  }
}

function lookup(keys: TrustedKeys, keyId: string): KeyObject | undefined {
  if (Array.isArray(keys)) return (keys as readonly KeyObject[]).find((k) => keyIdOf(k) === keyId);
  return (keys as ReadonlyMap<string, KeyObject>).get(keyId);
}

/**
 * Checks what any holder can check: size, JSON, a signature by a trusted key over the exact
 * document, the schema, expiry and the size limit. Use verifyManifest on devices: it adds replay
 * and target checks. Each refusal has its own code.
 */
export function verifyEnvelope(input: unknown, opts: VerifyEnvelopeOptions): Manifest {
  const json = parseInput(input, opts.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES);
  const env = EnvelopeSchema.safeParse(json);
  if (!env.success || env.data.manifest === undefined) {
    throw new EdgektError('EDGEKT_ERR_MALFORMED', `envelope: ${env.success ? 'manifest: missing' : formatIssues(env.error)}`);
  }
  const sigs = env.data.signatures ?? [];
  if (sigs.length === 0) throw new EdgektError('EDGEKT_ERR_UNSIGNED', 'manifest carries no signature');
  const known = sigs.flatMap((s) => {
    const key = lookup(opts.trustedKeys, s.keyId);
    return key ? [{ key, sig: s.sig }] : [];
  });
  if (known.length === 0) {
    throw new EdgektError('EDGEKT_ERR_UNKNOWN_KEY', `no signature by a trusted key (signed by ${sigs.map((s) => s.keyId).join(', ')})`, { keyIds: sigs.map((s) => s.keyId) });
  }
  const bytes = signingBytes(env.data.manifest);
  if (!known.some(({ key, sig }) => edVerify(null, bytes, key, Buffer.from(sig, 'base64')))) {
    throw new EdgektError('EDGEKT_ERR_SIGNATURE', 'manifest signature does not verify');
  }
  const m = parseManifest(env.data.manifest);
  if (opts.now >= Date.parse(m.expires)) throw new EdgektError('EDGEKT_ERR_EXPIRED', `manifest ${m.name} v${m.version} expired at ${m.expires}`, { expires: m.expires });
  const total = m.files.reduce((s, f) => s + f.size, 0);
  if (opts.maxBytes !== undefined && total > opts.maxBytes) {
    throw new EdgektError('EDGEKT_ERR_TOO_LARGE', `manifest ${m.name} declares ${total} bytes, limit ${opts.maxBytes}`, { size: total, limit: opts.maxBytes });
  }
  return m;
}

/** Everything verifyEnvelope checks, plus: newer than lastVersion, and meant for this device or one of its groups. */
export function verifyManifest(input: unknown, opts: VerifyManifestOptions): Manifest {
  const m = verifyEnvelope(input, opts);
  if (opts.lastVersion !== undefined && m.version <= opts.lastVersion) {
    throw new EdgektError('EDGEKT_ERR_REPLAY', `manifest ${m.name} v${m.version} is not newer than v${opts.lastVersion}`, { version: m.version, lastVersion: opts.lastVersion });
  }
  const forDevice = m.target.devices?.includes(opts.deviceId) ?? false;
  const forGroup = m.target.groups?.some((g) => opts.groups.includes(g)) ?? false;
  if (!forDevice && !forGroup) {
    throw new EdgektError('EDGEKT_ERR_WRONG_TARGET', `manifest ${m.name} v${m.version} is not for device ${opts.deviceId}`, { target: m.target });
  }
  return m;
}
