import type { IPublishPacket } from 'mqtt';
import type { ErrorCode } from '../../core/errors.js';
import { decodeBlockFrame, isBlockFrame } from './frame.js';
import { BlockErrorReplySchema, PROP_INDEX, PROP_SHA256, knownCode, userProp } from './protocol.js';

/** One answer on a response topic, in either wire form; `key` is the correlation in hex. */
export type BlockReply =
  | { kind: 'block'; key: string; index: number; sha256: string | undefined; bytes: Buffer }
  | { kind: 'error'; key: string; code: ErrorCode | undefined; message: string };

function parseError(payload: Buffer): { code: ErrorCode | undefined; message: string; correlation?: string } {
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch {
    json = undefined;
  }
  const r = BlockErrorReplySchema.safeParse(json);
  if (!r.success) return { code: undefined, message: 'unreadable reply' };
  return { code: knownCode(r.data.error.code), message: r.data.error.message, correlation: r.data.correlation };
}

const hexOf = (b64: string): string => Buffer.from(b64, 'base64').toString('hex');

/**
 * Reads a reply either way the server may send it: MQTT 5 (correlation data and user properties
 * on the packet) or MQTT 3.1.1 (an `EKB1` frame, or a JSON error carrying its correlation).
 * Undefined when the reply cannot be attributed to a request: the caller ignores it.
 */
export function decodeReply(payload: Buffer, properties: IPublishPacket['properties']): BlockReply | undefined {
  const corr = properties?.correlationData;
  if (corr !== undefined) {
    const key = corr.toString('hex');
    const indexProp = userProp(properties?.userProperties, PROP_INDEX);
    if (indexProp === undefined) return { kind: 'error', key, ...pick(parseError(payload)) };
    const index = /^\d+$/.test(indexProp) ? Number(indexProp) : -1;
    return { kind: 'block', key, index, sha256: userProp(properties?.userProperties, PROP_SHA256), bytes: payload };
  }
  if (isBlockFrame(payload)) {
    const f = decodeBlockFrame(payload);
    if (!f) return undefined;
    return { kind: 'block', key: hexOf(f.header.correlation), index: f.header.index, sha256: f.header.sha256, bytes: f.bytes };
  }
  const e = parseError(payload);
  return e.correlation === undefined ? undefined : { kind: 'error', key: hexOf(e.correlation), ...pick(e) };
}

const pick = (e: { code: ErrorCode | undefined; message: string }): { code: ErrorCode | undefined; message: string } => ({ code: e.code, message: e.message });
