import { createHash } from 'node:crypto';
import type { IPublishPacket, MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { EdgektError, toEdgektError, type ErrorCode } from '../../core/errors.js';
import { topicMatches } from '../topics.js';
import { encodeBlockFrame } from './frame.js';
import {
  BlockRequestSchema,
  BodyRouteSchema,
  MAX_BLOCKS_PER_REQUEST,
  PROP_INDEX,
  PROP_SHA256,
  blockCount,
  blockLength,
  checkBlockSize,
  type BlockErrorReply,
  type BlockRequest,
} from './protocol.js';
import type { ArtifactSource } from './types.js';
import { silentLog } from './silent-log.js';

export interface BlockServerOptions {
  client: MqttClient;
  /** Subscription filter, e.g. `filters.sharedPulls()` on a coordinator or `topics.serve(id)` on a device. */
  requestFilter: string;
  source: ArtifactSource;
  /** Decides from the request topic whether the response topic is the requester's own (allowPullResponse). */
  allowResponseTopic(requestTopic: string, responseTopic: string): boolean;
  /**
   * Whether the requester (known by its request topic) may have this artifact, e.g. only what a
   * job offered to that device; a refusal is answered as not found, so existence does not leak.
   */
  authorize?(requestTopic: string, sha256: string): boolean | Promise<boolean>;
  maxBlocksPerRequest?: number;
  /** QoS of block messages (default 1: the broker paces them per subscriber). */
  qos?: 0 | 1;
  /**
   * Block bytes read but not yet acknowledged by the broker (PUBACK; at QoS 0, written to the
   * socket), across all requests; default 16 MB. A request past the budget waits its turn. Without
   * it, a thousand devices pulling at once had the server read every requested block into memory
   * ahead of the socket: gigabytes in hand.
   */
  maxBytesInFlight?: number;
  logger?: Logger;
}

export interface BlockServerStats {
  requests: number;
  blocksServed: number;
  bytesServed: number;
  /** Requests dropped because their response topic was refused or missing. */
  refused: number;
  /** Requests answered with an error reply. */
  errors: number;
  /** Block bytes read and not yet acknowledged, now and at most so far (bounded by maxBytesInFlight). */
  bytesInFlight: number;
  peakBytesInFlight: number;
}

export interface BlockServer {
  /** Resolves once the request subscription is granted. */
  ready: Promise<void>;
  stats(): BlockServerStats;
  close(): Promise<void>;
}

class RequestError extends EdgektError {}

const DEFAULT_BYTES_IN_FLIGHT = 16 * 2 ** 20;

/**
 * Bytes handed out up to a limit, waiters served in arrival order (so no request starves). One
 * amount larger than the whole limit still passes when nothing else is out.
 */
function createByteBudget(limit: number) {
  let used = 0;
  const waiting: Array<{ n: number; go: () => void }> = [];
  const fits = (n: number): boolean => used === 0 || used + n <= limit;
  return {
    used: () => used,
    async take(n: number): Promise<void> {
      if (waiting.length === 0 && fits(n)) {
        used += n;
        return;
      }
      await new Promise<void>((go) => waiting.push({ n, go }));
    },
    give(n: number): void {
      used -= n;
      while (waiting.length > 0 && fits(waiting[0]!.n)) {
        const w = waiting.shift()!;
        used += w.n;
        w.go();
      }
    },
  };
}

const NOT_JSON = Symbol('not JSON');

function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return NOT_JSON;
  }
}

function parseRequest(json: unknown): BlockRequest {
  if (json === NOT_JSON) throw new RequestError('EDGEKT_ERR_MALFORMED', 'block request is not JSON');
  const r = BlockRequestSchema.safeParse(json);
  if (!r.success) throw new RequestError('EDGEKT_ERR_MALFORMED', `block request: ${r.error.issues.map((i) => i.message).join('; ')}`);
  return r.data;
}

/** Where one request's answers go; `framed` when it came without MQTT 5 properties (3.1.1). */
type Route =
  | { framed: false; responseTopic: string; correlationData: Buffer | undefined }
  | { framed: true; responseTopic: string; correlation: string };

/** MQTT 5 properties when present, else the body's fields; undefined when neither names a topic. */
function routeOf(packet: IPublishPacket, json: unknown): Route | undefined {
  const p = packet.properties;
  if (p?.responseTopic) return { framed: false, responseTopic: p.responseTopic, correlationData: p.correlationData };
  const r = BodyRouteSchema.safeParse(json);
  return r.success ? { framed: true, ...r.data } : undefined;
}

/**
 * Serves file blocks over MQTT request/response. Every request is answered on its own response
 * topic with its correlation: one binary message per block, or one JSON error reply. A request
 * with MQTT 5 properties gets them back (user properties index and the block's sha256); one
 * routed by its body (MQTT 3.1.1) gets `EKB1` frames and a correlation field in errors. A request
 * whose response topic, whichever way given, is not the requester's own is dropped and counted,
 * so a device can never make the server publish elsewhere.
 */
export function createBlockServer(o: BlockServerOptions): BlockServer {
  const log = o.logger ?? silentLog;
  const maxBlocks = o.maxBlocksPerRequest ?? MAX_BLOCKS_PER_REQUEST;
  const qos = o.qos ?? 1;
  const stats: BlockServerStats = { requests: 0, blocksServed: 0, bytesServed: 0, refused: 0, errors: 0, bytesInFlight: 0, peakBytesInFlight: 0 };
  const budget = createByteBudget(o.maxBytesInFlight ?? DEFAULT_BYTES_IN_FLIGHT);

  const publish = (topic: string, payload: Buffer, properties?: NonNullable<IPublishPacket['properties']>): Promise<void> =>
    new Promise((resolve) => {
      o.client.publish(topic, payload, properties ? { qos, properties } : { qos }, (err) => {
        if (err) log.debug({ err, topic }, 'block reply not sent');
        resolve();
      });
    });

  const track = (): void => {
    stats.bytesInFlight = budget.used();
    stats.peakBytesInFlight = Math.max(stats.peakBytesInFlight, stats.bytesInFlight);
  };

  async function serve(requestTopic: string, req: BlockRequest, route: Route): Promise<void> {
    if (!checkBlockSize(req.blockSize)) throw new RequestError('EDGEKT_ERR_TOO_LARGE', `block size ${req.blockSize} outside 256 B – 128 KB`);
    if (req.count > maxBlocks) throw new RequestError('EDGEKT_ERR_TOO_LARGE', `${req.count} blocks requested, limit ${maxBlocks}`);
    const allowed = o.authorize ? await o.authorize(requestTopic, req.sha256) : true;
    const st = allowed ? await o.source.stat(req.sha256) : null;
    if (!st) throw new RequestError('EDGEKT_ERR_NOT_FOUND', `no artifact ${req.sha256}`);
    const total = blockCount(st.size, req.blockSize);
    if (req.index >= total) throw new RequestError('EDGEKT_ERR_MALFORMED', `block ${req.index} beyond the last (${total - 1})`);
    const end = Math.min(total, req.index + req.count);
    const sends: Promise<void>[] = [];
    for (let i = req.index; i < end; i++) {
      const len = blockLength(i, st.size, req.blockSize);
      // Budget first, read second: a block is in memory only once it fits in the bytes in flight.
      await budget.take(len);
      let bytes: Buffer;
      try {
        const read = await o.source.read(req.sha256, i * req.blockSize, len);
        bytes = Buffer.from(read.buffer, read.byteOffset, read.byteLength); // a view, not a copy
      } catch (e) {
        budget.give(len);
        throw e;
      }
      track();
      const sha = createHash('sha256').update(bytes).digest('hex');
      stats.blocksServed++;
      stats.bytesServed += bytes.length;
      const sent = route.framed
        ? publish(route.responseTopic, encodeBlockFrame({ index: i, sha256: sha, correlation: route.correlation }, bytes))
        : publish(route.responseTopic, bytes, { correlationData: route.correlationData, userProperties: { [PROP_INDEX]: String(i), [PROP_SHA256]: sha } });
      sends.push(sent.finally(() => {
        budget.give(len);
        track();
      }));
    }
    await Promise.all(sends);
  }

  async function onRequest(topic: string, payload: Buffer, packet: IPublishPacket): Promise<void> {
    stats.requests++;
    const json = parseJson(payload);
    const route = routeOf(packet, json);
    if (!route || !o.allowResponseTopic(topic, route.responseTopic)) {
      stats.refused++;
      log.warn({ topic, responseTopic: route?.responseTopic }, 'block request refused: response topic not allowed');
      return;
    }
    try {
      await serve(topic, parseRequest(json), route);
    } catch (e) {
      stats.errors++;
      const err = e instanceof RequestError ? e : toEdgektError(e);
      const code: ErrorCode = e instanceof RequestError ? err.code : 'EDGEKT_ERR_INTERNAL';
      log.info({ topic, code, message: err.message }, 'block request failed');
      const reply: BlockErrorReply = { error: { code, message: err.message }, ...(route.framed ? { correlation: route.correlation } : {}) };
      const json = Buffer.from(JSON.stringify(reply));
      await (route.framed ? publish(route.responseTopic, json) : publish(route.responseTopic, json, { correlationData: route.correlationData, contentType: 'application/json' }));
    }
  }

  const listener = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
    if (!topicMatches(o.requestFilter, topic)) return;
    void onRequest(topic, payload, packet);
  };
  o.client.on('message', listener);
  const ready = o.client.subscribeAsync(o.requestFilter, { qos: 1 }).then(() => undefined);

  return {
    ready,
    stats: () => ({ ...stats }),
    async close() {
      o.client.removeListener('message', listener);
      if (o.client.connected) await o.client.unsubscribeAsync(o.requestFilter).catch(() => undefined);
    },
  };
}
