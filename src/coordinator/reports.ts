import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { z } from 'zod';
import { JobUpdateMessageSchema, StatusMessageSchema, TelemetryMessageSchema } from '../config/messages.js';
import type { Clock } from '../core/clock.js';
import { toEdgektError } from '../core/errors.js';
import type { CoordinatorStore } from '../store/coordinator/index.js';
import { createFileBlockSink, createMemoryBlockLedger, createMemoryBlockSink, pullFile, type BlockSink } from '../transport/blocks/index.js';
import { verifyEnvelope } from '../transport/signing.js';
import { parseDeviceTopic, topics } from '../transport/topics.js';
import { TIMED_OUT_SEQ } from './rollout-driver.js';


const ResultSchema = z.object({ met: z.boolean(), report: z.record(z.string(), z.json()), student: z.unknown() });

const PULLS_AT_ONCE = 64;

/**
 * Student files up to this size are pulled into memory and written once (one open, write, fdatasync,
 * rename) instead of through a file sink (stat, open, ftruncate, an fdatasync per block, a re-read
 * to hash). A pull that dies is simply repeated, so its blocks need not be durable one by one.
 */
const IN_MEMORY_PULL_BYTES = 16 * 2 ** 20;

/** In-memory pulls together hold at most this much; past it a pull goes through a file sink. */
const IN_MEMORY_BUDGET_BYTES = 64 * 2 ** 20;

/** Writes bytes to `file` durably (fdatasync before close). */
async function writeDurably(file: string, bytes: Uint8Array): Promise<void> {
  const fh = await open(file, 'w', 0o600);
  try {
    let done = 0;
    while (done < bytes.byteLength) done += (await fh.write(bytes, done, bytes.byteLength - done, done)).bytesWritten;
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

export interface ReportHandlerOptions {
  coordinatorId: string;
  store: CoordinatorStore;
  client: MqttClient;
  artifactsDir: string;
  clock: Clock;
  logger: Logger;
  /** Live progress for the API and the dashboard (not persisted: the next state update supersedes it). */
  onProgress?: (deviceId: string, jobId: string, progress: unknown, state: string) => void;
  /** Every change the handler applied, after the store write (the dashboard's event stream). */
  onEvent?: (e: ReportEvent) => void;
}

/** What the report handler applied: small deltas, never whole rows. */
export type ReportEvent =
  | { type: 'status'; deviceId: string; online: boolean; profile: string | null; state: string | null; at: number }
  | { type: 'telemetry'; deviceId: string; at: number; cpuLoadPercent: number; temperatureC: number | null; memUsedMB: number; memTotalMB: number; activeJob: { jobId: string; state: string } | null }
  | { type: 'job'; deviceId: string; jobId: string; rolloutId: string | null; state: string; at: number; error: { code: string; message: string } | null }
  | { type: 'progress'; deviceId: string; jobId: string; state: string; progress: unknown; at: number }
  | { type: 'result'; deviceId: string; jobId: string; report: Record<string, unknown> };

/**
 * Turns device messages into store writes: status and Last Will into the registry (a device's
 * public key is pinned on first sight), telemetry, sequenced job updates (idempotent by jobId+seq),
 * and results: the student is pulled over the device's `serve` topic, its manifest verified with
 * the pinned key and its files with their hashes, then recorded exactly once.
 */
export function createReportHandler(o: ReportHandlerOptions) {
  const keys = new Map<string, KeyObject>();
  const pulling = new Set<string>();
  const queued: Array<() => void> = [];
  let active = 0;
  let inMemoryBytes = 0;
  let artifactsDirReady: Promise<unknown> | null = null;

  async function deviceKey(deviceId: string): Promise<KeyObject | null> {
    const cached = keys.get(deviceId);
    if (cached) return cached;
    const d = await o.store.getDevice(deviceId);
    const pem = (d?.capacity as { publicKey?: unknown } | undefined)?.publicKey;
    if (typeof pem !== 'string') return null;
    const k = createPublicKey(pem);
    keys.set(deviceId, k);
    return k;
  }

  async function onStatus(deviceId: string, payload: Buffer): Promise<void> {
    const s = StatusMessageSchema.parse(JSON.parse(payload.toString('utf8')));
    if (s.deviceId !== deviceId) throw new Error(`status of ${s.deviceId} on ${deviceId}'s topic`);
    const at = Date.parse(s.at);
    if (s.state === 'offline') {
      if (await o.store.markOffline(deviceId, at)) o.onEvent?.({ type: 'status', deviceId, online: false, profile: s.profile ?? null, state: 'offline', at });
      return;
    }
    const prev = await o.store.getDevice(deviceId);
    const pinned = (prev?.capacity as { publicKey?: unknown } | undefined)?.publicKey;
    if (typeof pinned === 'string' && s.publicKey && pinned !== s.publicKey) {
      o.logger.error({ deviceId }, 'device presented a different public key than the pinned one; status ignored');
      return;
    }
    const applied = await o.store.upsertDevices([{
      id: deviceId, online: true, profile: s.profile ?? null, groups: s.groups, versions: s.versions,
      capacity: { ...(s.capacity ?? {}), ...(typeof pinned === 'string' ? { publicKey: pinned } : s.publicKey ? { publicKey: s.publicKey } : {}) },
      state: 'online', lastSeen: at,
    }]);
    if (applied.length) o.onEvent?.({ type: 'status', deviceId, online: true, profile: s.profile ?? null, state: 'online', at });
  }

  async function pullStudent(deviceId: string, jobId: string, envelope: unknown, report: Record<string, unknown>): Promise<void> {
    if (pulling.has(jobId)) return;
    pulling.add(jobId);
    const known = await o.store.getResult(jobId).catch((e: unknown) => {
      o.logger.warn({ jobId, err: e instanceof Error ? e.message : String(e) }, 'could not look the result up; no pull');
      return true;
    });
    if (known) {
      pulling.delete(jobId);
      return;
    }
    // Every pull listens to the client's messages: at most PULLS_AT_ONCE of them, or each block
    // reply would be offered to thousands of listeners when a large fleet reports at once.
    while (active >= PULLS_AT_ONCE) await new Promise<void>((r) => queued.push(r));
    active++;
    try {
      const key = await deviceKey(deviceId);
      if (!key) throw new Error(`no pinned key for ${deviceId}`);
      const m = verifyEnvelope(envelope, { trustedKeys: [key], now: o.clock.now() });
      if (m.kind !== 'student' || m.name !== `${deviceId}.${jobId}`) throw new Error(`student manifest names ${m.kind} ${m.name}`);
      artifactsDirReady ??= mkdir(o.artifactsDir, { recursive: true }).catch((e: unknown) => {
        artifactsDirReady = null; // try again on the next pull
        throw e;
      });
      await artifactsDirReady;
      for (const f of m.files) {
        const dest = path.join(o.artifactsDir, f.sha256);
        const tmp = `${dest}.${o.coordinatorId}.part`;
        const inMemory = f.size <= IN_MEMORY_PULL_BYTES && inMemoryBytes + f.size <= IN_MEMORY_BUDGET_BYTES;
        if (inMemory) inMemoryBytes += f.size;
        const sink: BlockSink & { close?: () => Promise<void>; bytes?: Uint8Array } = inMemory ? createMemoryBlockSink(f.size) : await createFileBlockSink(tmp, f.size);
        try {
          await pullFile({
          client: o.client, requestTopic: topics.serve(deviceId), responseTopicPrefix: topics.coordinatorBlocks(o.coordinatorId, jobId.replace(/[^A-Za-z0-9._:-]/g, '_').slice(0, 100)),
          file: { sha256: f.sha256, size: f.size, blockSize: f.blockSize, ...(f.blocks ? { blocks: f.blocks } : {}) }, ledger: createMemoryBlockLedger(), sink,
          });
          if (sink.bytes) await writeDurably(tmp, sink.bytes); // verified by pullFile: only good bytes are written
        } catch (e) {
          await sink.close?.();
          await rm(tmp, { force: true }); // bytes that failed their hash are not kept
          throw e;
        } finally {
          if (inMemory) inMemoryBytes -= f.size;
        }
        await sink.close?.();
        await rename(tmp, dest);
        await o.store.putArtifact({ sha256: f.sha256, kind: 'file', name: `${m.name}/${f.path}`, version: 1, size: f.size, location: dest, manifest: { path: f.path } });
      }
      const main = m.files.find((f) => f.path === 'weights.bin') ?? m.files[0]!;
      const r = await o.store.recordResult({ jobId, deviceId, report: report as never, studentSha256: main.sha256, studentManifest: envelope as never });
      if (r.inserted) {
        o.logger.info({ deviceId, jobId }, 'student received and verified');
        o.onEvent?.({ type: 'result', deviceId, jobId, report });
      }
    } catch (e) {
      const err = toEdgektError(e);
      o.logger.warn({ deviceId, jobId, code: err.code }, `student refused: ${err.message}`);
      // No verified student is no success: the execution fails with the refusal's code (so it counts
      // against the abort threshold and may be retried); the fenced seq outranks any late device update.
      await o.store.applyJobUpdate({ jobId, seq: TIMED_OUT_SEQ, state: 'failed', at: o.clock.now(), error: { code: err.code, message: `student refused: ${err.message}` } })
        .catch((e2: unknown) => o.logger.warn({ jobId, err: e2 instanceof Error ? e2.message : String(e2) }, 'could not record the refusal'));
    } finally {
      active--;
      queued.shift()?.();
      pulling.delete(jobId);
    }
  }

  async function onUpdate(deviceId: string, jobId: string, payload: Buffer): Promise<void> {
    const u = JobUpdateMessageSchema.parse(JSON.parse(payload.toString('utf8')));
    if (u.jobId !== jobId) throw new Error(`update for ${u.jobId} on ${jobId}'s topic`);
    if (u.kind === 'progress') {
      o.onProgress?.(deviceId, jobId, u.progress, u.state);
      o.onEvent?.({ type: 'progress', deviceId, jobId, state: u.state, progress: u.progress, at: u.at });
      return;
    }
    const { applied, execution } = await o.store.applyJobUpdate({ jobId, seq: u.seq, state: u.state, at: u.at, ...(u.error ? { error: u.error } : {}) });
    if (!applied) return;
    o.onEvent?.({ type: 'job', deviceId, jobId, rolloutId: execution?.rolloutId ?? null, state: u.state, at: u.at, error: u.error ?? null });
    if ((u.state === 'succeeded' || u.state === 'failed') && u.result !== undefined) {
      const r = ResultSchema.safeParse(u.result);
      // In the background (at most PULLS_AT_ONCE at once): the message is handled once its update is
      // stored, so the daemon's bound on messages in hand never waits on a device's serve topic.
      if (r.success) void pullStudent(deviceId, jobId, r.data.student, { ...r.data.report, met: r.data.met });
    }
  }

  return {
    /**
     * Routes one message; malformed ones are logged and dropped (errors as data, never a crash).
     * Resolves once the message's store writes are done; a student pull it starts goes on after.
     */
    async handle(topic: string, payload: Buffer): Promise<void> {
      const t = parseDeviceTopic(topic);
      if (!t) return;
      try {
        if (t.kind === 'status') await onStatus(t.deviceId, payload);
        else if (t.kind === 'telemetry') {
          const m = TelemetryMessageSchema.parse(JSON.parse(payload.toString('utf8')));
          if (await o.store.recordTelemetry(t.deviceId, m as never, Date.parse(m.at))) {
            o.onEvent?.({ type: 'telemetry', deviceId: t.deviceId, at: Date.parse(m.at), cpuLoadPercent: m.cpuLoadPercent, temperatureC: m.temperatureC, memUsedMB: m.memUsedMB, memTotalMB: m.memTotalMB, activeJob: m.activeJob });
          }
        } else if (t.kind === 'jobUpdate') await onUpdate(t.deviceId, t.jobId, payload);
      } catch (e) {
        o.logger.warn({ topic, err: e instanceof Error ? e.message : String(e) }, 'device message dropped');
      }
    },
  };
}
