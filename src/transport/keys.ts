import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { EdgektError } from '../core/errors.js';

/** DER prefixes that turn a raw 32-byte Ed25519 key into PKCS#8 / SPKI (RFC 8410). */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
}

export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

/** The raw 32 bytes of an Ed25519 public key (what keyIds hash, what "raw base64" files hold). */
export function rawPublicKey(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - 32);
}

/** keyIdOf per KeyObject (KeyObjects are immutable): signing and verifying would otherwise re-export the key every time. */
const keyIds = new WeakMap<KeyObject, string>();

/** First 16 hex digits of sha256 over the raw public key: short, stable, independent of PEM formatting. */
export function keyIdOf(key: KeyObject): string {
  const cached = keyIds.get(key);
  if (cached !== undefined) return cached;
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const id = createHash('sha256').update(rawPublicKey(pub)).digest('hex').slice(0, 16);
  keyIds.set(key, id);
  return id;
}

function raw32(text: string): Buffer | null {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(t)) return null;
  return Buffer.from(t, 'base64');
}

function parseKey(text: string, kind: 'private' | 'public'): KeyObject {
  try {
    const raw = raw32(text);
    const key =
      kind === 'private'
        ? createPrivateKey(raw ? { key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' } : { key: text, format: 'pem' })
        : createPublicKey(raw ? { key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' } : { key: text, format: 'pem' });
    if (key.asymmetricKeyType !== 'ed25519') throw new EdgektError('EDGEKT_ERR_MALFORMED', `${kind} key is not an Ed25519 key`);
    return key;
  } catch (e) {
    throw e instanceof EdgektError ? e : new EdgektError('EDGEKT_ERR_MALFORMED', `not a PEM or raw base64 Ed25519 ${kind} key`, {}, { cause: e });
  }
}

/** Parses a PEM (PKCS#8) or raw-base64 (32-byte seed) Ed25519 private key. */
export function parsePrivateKey(text: string): KeyObject {
  return parseKey(text, 'private');
}

/** Parses a PEM (SPKI) or raw-base64 (32 bytes) Ed25519 public key. */
export function parsePublicKey(text: string): KeyObject {
  return parseKey(text, 'public');
}

export function privateKeyPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export function publicKeyPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'spki' }).toString();
}

async function readKeyText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_MALFORMED', `cannot read key file ${file}`, { file }, { cause: e });
  }
}

export async function readPrivateKeyFile(file: string): Promise<KeyObject> {
  return parsePrivateKey(await readKeyText(file));
}

export async function readPublicKeyFile(file: string): Promise<KeyObject> {
  return parsePublicKey(await readKeyText(file));
}

/** A trust store keyed by keyId, the shape verifyManifest looks signatures up in. */
export function trustedKeyMap(keys: Iterable<KeyObject>): Map<string, KeyObject> {
  const map = new Map<string, KeyObject>();
  for (const k of keys) map.set(keyIdOf(k), k.type === 'private' ? createPublicKey(k) : k);
  return map;
}
