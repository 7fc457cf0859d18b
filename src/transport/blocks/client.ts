import { randomBytes } from 'node:crypto';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { EdgektError, toEdgektError } from '../../core/errors.js';
import { assemblerFor, type Run } from './assembler.js';
import { MAX_BLOCKS_PER_REQUEST, type BlockRequest } from './protocol.js';
import { decodeReply } from './replies.js';
import type { PullCommonOptions } from './types.js';
import { silentLog } from './silent-log.js';

/**
 * Defaults: window 8, blocksPerRequest 4 (at most 32), timeoutMs 5000, retries 6 (a block's
 * timeouts; the broker may also stay away (retries + 1) × timeoutMs before EDGEKT_ERR_TRANSFER).
 */
export interface PullFileOptions extends PullCommonOptions {
  client: MqttClient;
  /** Where requests go, e.g. topics.pull(deviceId). */
  requestTopic: string;
  /** The requester's own response namespace, e.g. topics.deviceBlocksPrefix(deviceId); a unique level is appended. */
  responseTopicPrefix: string;
}

interface InFlight {
  run: Run;
  outstanding: Set<number>;
  timer: NodeJS.Timeout;
}

/**
 * Pulls one file block by block over MQTT request/response, resuming from the ledger: only
 * blocks it does not list are ever requested. Requests are QoS 0 and sent only while connected,
 * so a broker restart never replays a stale request; what was in flight is asked again on
 * reconnect, and what times out is asked again until `retries` runs out. Resolves once the
 * whole-file sha256 matches. The response topic and correlation always travel in the request body
 * as well, so a server on an MQTT 3.1.1 connection can answer (with frames); on an MQTT 5
 * connection they are also sent as properties, which a v5 server prefers.
 */
export function pullFile(o: PullFileOptions): Promise<void> {
  const log = o.logger ?? silentLog;
  const window = Math.max(1, o.window ?? 8);
  const perRequest = Math.min(MAX_BLOCKS_PER_REQUEST, Math.max(1, o.blocksPerRequest ?? 4));
  const timeoutMs = o.timeoutMs ?? 5000;
  const retries = o.retries ?? 6;
  const asm = assemblerFor(o);
  const responseTopic = `${o.responseTopicPrefix}/${randomBytes(8).toString('hex')}`;
  // mqtt.js defaults to 4 (3.1.1) when protocolVersion is unset; only 5 has properties.
  const v5 = o.client.options.protocolVersion === 5;
  const inflight = new Map<string, InFlight>();
  const issued = new Set<string>();
  const timeouts = new Map<number, number>();
  let queue: number[] = [];
  let offlineTimer: NodeJS.Timeout | undefined;
  let settled = false;
  let verifying = false;

  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      settled = true;
      for (const f of inflight.values()) clearTimeout(f.timer);
      inflight.clear();
      clearTimeout(offlineTimer);
      o.client.removeListener('message', onMessage);
      o.client.removeListener('connect', onConnect);
      o.client.removeListener('close', onClose);
      o.signal?.removeEventListener('abort', onAbort);
      if (o.client.connected) o.client.unsubscribe(responseTopic);
    };
    const fail = (e: unknown): void => {
      if (settled) return;
      cleanup();
      reject(toEdgektError(e));
    };
    const succeed = (): void => {
      if (settled) return;
      cleanup();
      resolve();
    };

    const send = (run: Run): void => {
      const corr = randomBytes(8);
      const key = corr.toString('hex');
      issued.add(key);
      const outstanding = new Set(Array.from({ length: run.count }, (_, k) => run.index + k));
      inflight.set(key, { run, outstanding, timer: setTimeout(() => onTimeout(key), timeoutMs) });
      const req: BlockRequest = { sha256: o.file.sha256, index: run.index, count: run.count, blockSize: o.file.blockSize, responseTopic, correlation: corr.toString('base64') };
      o.client.publish(o.requestTopic, JSON.stringify(req), v5 ? { qos: 0, properties: { responseTopic, correlationData: corr } } : { qos: 0 });
    };

    const pump = (): void => {
      if (settled || !o.client.connected) return;
      const busy = new Set<number>();
      for (const f of inflight.values()) for (const i of f.outstanding) busy.add(i);
      queue = queue.filter((i) => asm.isMissing(i) && !busy.has(i));
      while (inflight.size < window && queue.length > 0) {
        const index = queue[0]!;
        let count = 1;
        while (count < perRequest && queue[count] === index + count) count++;
        queue = queue.slice(count);
        send({ index, count });
      }
    };

    const requeue = (indices: Iterable<number>): void => {
      queue = [...new Set([...indices, ...queue])].sort((a, b) => a - b);
    };

    const onTimeout = (key: string): void => {
      const f = inflight.get(key);
      if (!f || settled) return;
      inflight.delete(key);
      const left = [...f.outstanding].filter((i) => asm.isMissing(i));
      for (const i of left) {
        const n = (timeouts.get(i) ?? 0) + 1;
        timeouts.set(i, n);
        if (n > retries) return fail(new EdgektError('EDGEKT_ERR_TRANSFER', `block ${i} of ${o.file.sha256}: no answer after ${n} requests`, { index: i }));
      }
      log.debug({ run: f.run, left: left.length }, 'block request timed out');
      requeue(left);
      pump();
    };

    const finishIfComplete = async (): Promise<void> => {
      if (!asm.complete() || verifying || settled) return;
      verifying = true;
      try {
        if (await asm.verify()) return succeed();
        requeue(asm.missing());
      } finally {
        verifying = false;
      }
      pump();
    };

    const onBlock = async (index: number, payload: Buffer, declared: string | undefined): Promise<void> => {
      const result = await asm.accept(index, payload, declared);
      if (result === 'bad') requeue([index]);
      // An index may sit in a retired and a current request: whichever copy landed settles both
      // (a bad copy is queued again, so it is no longer outstanding either).
      for (const [k, f] of inflight) {
        f.outstanding.delete(index);
        if (f.outstanding.size === 0) {
          clearTimeout(f.timer);
          inflight.delete(k);
        }
      }
      pump();
      await finishIfComplete();
    };

    function onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
      if (topic !== responseTopic || settled) return;
      const reply = decodeReply(payload, packet.properties);
      if (reply === undefined || !issued.has(reply.key)) return;
      if (reply.kind === 'error') return fail(new EdgektError(reply.code ?? 'EDGEKT_ERR_TRANSFER', `block server: ${reply.message}`, { remote: true }));
      onBlock(reply.index, reply.bytes, reply.sha256).catch(fail);
    }

    function onConnect(): void {
      clearTimeout(offlineTimer);
      offlineTimer = undefined;
      // Answers to what was in flight were lost with the old connection: ask again once subscribed.
      for (const f of inflight.values()) {
        clearTimeout(f.timer);
        requeue([...f.outstanding]);
      }
      inflight.clear();
      o.client.subscribeAsync(responseTopic, { qos: 1 }).then(pump, (err: unknown) => log.debug({ err }, 'resubscribe failed; waiting for the next connect'));
    }

    function onClose(): void {
      if (offlineTimer || settled) return;
      offlineTimer = setTimeout(() => fail(new EdgektError('EDGEKT_ERR_TRANSFER', `broker unreachable for ${timeoutMs * (retries + 1)} ms`)), timeoutMs * (retries + 1));
    }

    function onAbort(): void {
      fail(new EdgektError('EDGEKT_ERR_TRANSFER', 'pull aborted', { aborted: true }));
    }

    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort);
    o.client.on('message', onMessage);
    o.client.on('connect', onConnect);
    o.client.on('close', onClose);
    if (!o.client.connected) onClose();
    requeue(asm.missing());
    o.client
      .subscribeAsync(responseTopic, { qos: 1 })
      .then(() => {
        pump();
        return finishIfComplete();
      })
      .catch(fail);
  });
}
