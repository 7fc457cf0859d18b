import { z } from 'zod';
import { Sha256HexSchema } from '../../config/manifest.js';
import { CorrelationSchema } from './protocol.js';

/** ASCII `EKB1`: edgekt block, frame version 1. */
export const FRAME_MAGIC = Buffer.from('EKB1', 'ascii');
const PREFIX = FRAME_MAGIC.length + 4;
/** A header is ~150 bytes; anything much longer is not ours. */
const MAX_HEADER = 1024;

/**
 * What MQTT 5 user properties and correlation data say about a block, for brokers without them:
 * which block, its sha256 as the server read it, and which request it answers.
 */
export const BlockFrameHeaderSchema = z
  .object({ index: z.number().int().nonnegative(), sha256: Sha256HexSchema, correlation: CorrelationSchema })
  .strict();
export type BlockFrameHeader = z.infer<typeof BlockFrameHeaderSchema>;

/** `EKB1` · u32 BE header length · JSON header · block bytes. */
export function encodeBlockFrame(header: BlockFrameHeader, bytes: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return Buffer.concat([FRAME_MAGIC, len, json, bytes]);
}

/** True when the payload claims to be a frame (it may still be malformed). */
export function isBlockFrame(payload: Buffer): boolean {
  return payload.length >= FRAME_MAGIC.length && payload.subarray(0, FRAME_MAGIC.length).equals(FRAME_MAGIC);
}

/** The header and block of a frame, or undefined for anything malformed (a peer could send anything). */
export function decodeBlockFrame(payload: Buffer): { header: BlockFrameHeader; bytes: Buffer } | undefined {
  if (!isBlockFrame(payload) || payload.length < PREFIX) return undefined;
  const len = payload.readUInt32BE(FRAME_MAGIC.length);
  if (len > MAX_HEADER || PREFIX + len > payload.length) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(payload.subarray(PREFIX, PREFIX + len).toString('utf8'));
  } catch {
    return undefined;
  }
  const r = BlockFrameHeaderSchema.safeParse(json);
  return r.success ? { header: r.data, bytes: payload.subarray(PREFIX + len) } : undefined;
}
