import { z } from 'zod';
import { BLOCK_SIZE_MAX, BLOCK_SIZE_MIN, Sha256HexSchema } from '../../config/manifest.js';
import { ERROR_CODES, type ErrorCode } from '../../core/errors.js';

/** At most this many blocks per request (2 MB at 64 KB blocks): bounds one request's work. */
export const MAX_BLOCKS_PER_REQUEST = 32;

/** Correlation data carried in JSON (MQTT 3.1.1 has no property for it): base64, at most 64 bytes. */
export const CorrelationSchema = z.base64().min(4).max(88);

/** A concrete topic a reply may go to (the server's allowResponseTopic still decides whether it may). */
export const ResponseTopicSchema = z.string().min(1).max(1024).regex(/^[^+#\u0000]+$/, 'no wildcards');

/**
 * Where a request wants its answers, in the body: what MQTT 5 says with the response topic and
 * correlation data properties, for brokers that speak only 3.1.1 (aedes, many embedded ones).
 */
export const BodyRouteSchema = z.object({ responseTopic: ResponseTopicSchema, correlation: CorrelationSchema });
export type BodyRoute = z.infer<typeof BodyRouteSchema>;

/**
 * A block request: `count` blocks of `blockSize` from block `index` of the file `sha256`. The
 * route fields are used only when the request carries no MQTT 5 response topic.
 */
export const BlockRequestSchema = z
  .object({
    sha256: Sha256HexSchema,
    index: z.number().int().nonnegative(),
    count: z.number().int().positive(),
    blockSize: z.number().int(),
    responseTopic: ResponseTopicSchema.optional(),
    correlation: CorrelationSchema.optional(),
  })
  .strict();
export type BlockRequest = z.infer<typeof BlockRequestSchema>;

export function checkBlockSize(blockSize: number): boolean {
  return Number.isInteger(blockSize) && blockSize >= BLOCK_SIZE_MIN && blockSize <= BLOCK_SIZE_MAX;
}

/**
 * Errors travel as data on the response topic, never as a dropped request; `correlation` is
 * there when the request was routed by its body (no MQTT 5 correlation data to carry it).
 */
export const BlockErrorReplySchema = z
  .object({ error: z.object({ code: z.string(), message: z.string() }).strict(), correlation: CorrelationSchema.optional() })
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
