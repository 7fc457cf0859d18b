import { z } from 'zod';
import { BLOCK_SIZE_MAX, BLOCK_SIZE_MIN, Sha256HexSchema } from '../../config/manifest.js';
import { ERROR_CODES, type ErrorCode } from '../../core/errors.js';

/** At most this many blocks per request (2 MB at 64 KB blocks): bounds one request's work. */
export const MAX_BLOCKS_PER_REQUEST = 32;

/** A block request: `count` blocks of `blockSize` from block `index` of the file `sha256`. */
export const BlockRequestSchema = z
  .object({
    sha256: Sha256HexSchema,
    index: z.number().int().nonnegative(),
    count: z.number().int().positive(),
    blockSize: z.number().int(),
  })
  .strict();
export type BlockRequest = z.infer<typeof BlockRequestSchema>;

export function checkBlockSize(blockSize: number): boolean {
  return Number.isInteger(blockSize) && blockSize >= BLOCK_SIZE_MIN && blockSize <= BLOCK_SIZE_MAX;
}

/** Errors travel as data on the response topic, never as a dropped request. */
export const BlockErrorReplySchema = z
  .object({ error: z.object({ code: z.string(), message: z.string() }).strict() })
  .strict();
export type BlockErrorReply = z.infer<typeof BlockErrorReplySchema>;

/** MQTT 5 user properties on a block message. */
export const PROP_INDEX = 'index';
export const PROP_SHA256 = 'sha256';

export function blockCount(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}

export function blockLength(index: number, size: number, blockSize: number): number {
  return Math.min(blockSize, size - index * blockSize);
}

/** An error code from a reply, if it is one of ours (a peer could send anything). */
export function knownCode(code: string): ErrorCode | undefined {
  return Object.hasOwn(ERROR_CODES, code) ? (code as ErrorCode) : undefined;
}

export function userProp(props: Record<string, string | string[]> | undefined, name: string): string | undefined {
  const v = props?.[name];
  return Array.isArray(v) ? v[0] : v;
}
