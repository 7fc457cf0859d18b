import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { RoundReportSchema, UpdateSummarySchema, updateManifestIdentity, type RoundReport } from '../../config/federated.js';
import type { Clock } from '../../core/clock.js';
import { EdgektError, toEdgektError } from '../../core/errors.js';
import { decodeUpdate, validateUpdate, type WeightTensor } from '../../federated/index.js';
import type { CoordinatorStore, JsonObject, Round } from '../../store/coordinator/index.js';
import { createFileBlockSink, createMemoryBlockLedger, pullFile } from '../../transport/blocks/index.js';
import { verifyEnvelope } from '../../transport/signing.js';
import { parseRoundReportTopic, topics } from '../../transport/topics.js';
import type { ArtifactStore } from '../artifacts.js';
import { decodeGlobal } from './files.js';
import { readRoundRecord, type IntakeMeta } from './round-record.js';

const PULLS_AT_ONCE = 16;

export interface RoundIntakeOptions {
  coordinatorId: string;
  store: CoordinatorStore;
  artifacts: ArtifactStore;
  client: MqttClient;
  /** Update files land in `<dir>/updates/<roundId>/<deviceId>.ekup`. */
  artifactsDir: string;
  clock: Clock;
  logger: Logger;
  /** After a report was recorded for an open round: the driver may close it early. */
  onRecorded?: (roundId: string) => void;
  /** Block pull timeout per request (ms); default 5000. */
  pullTimeoutMs?: number;
}

/**
 * The coordinator's side of protocol §4: classifies each device report (late, not selected,
 * stale, failed, refused, or a valid update), pulls and checks update files over the device's
 * `serve` topic, and records exactly one row per device per round. Errors travel as data: every
 * refusal is a row with its codes, never an exception out of `handle`.
 */
export function createRoundIntake(o: RoundIntakeOptions) {
  const keys = new Map<string, KeyObject>();
  const globals = new Map<string, Record<string, WeightTensor>>();
  /** `roundId/deviceId` → sha256 of the report being taken in. */
  const inFlight = new Map<string, string>();
  /** Second reports of a device in a round: the store keeps the first, the result lists these. */
  const duplicates = new Map<string, Set<string>>();
  const queued: Array<() => void> = [];
  let active = 0;

  async function deviceKey(deviceId: string): Promise<KeyObject | null> {
    const hit = keys.get(deviceId);
    if (hit) return hit;
    const pem = ((await o.store.getDevice(deviceId))?.capacity as { publicKey?: unknown } | undefined)?.publicKey;
    if (typeof pem !== 'string') return null;
    const k = createPublicKey(pem);
    keys.set(deviceId, k);
    return k;
  }

  async function globalOf(sha256: string): Promise<Record<string, WeightTensor>> {
    const hit = globals.get(sha256);
    if (hit) return hit;
    const g = decodeGlobal(await o.artifacts.readBytes(sha256));
    if (globals.size >= 4) globals.delete(globals.keys().next().value!);
    globals.set(sha256, g);
    return g;
  }

  async function record(round: Round, deviceId: string, meta: IntakeMeta, payloadLocation = ''): Promise<void> {
    const report = inFlight.get(`${round.id}/${deviceId}`);
    const metadata = { ...meta, ...(report ? { report } : {}) } as unknown as JsonObject;
    const { inserted } = await o.store.addRoundUpdate({ roundId: round.id, deviceId, metadata, payloadLocation });
    if (!inserted) {
      markDuplicate(round.id, deviceId);
      if (payloadLocation) await rm(payloadLocation, { force: true });
      return;
    }
    o.logger.info({ round: round.id, deviceId, kind: meta.kind, codes: meta.codes }, 'round report recorded');
    if (round.state === 'open') o.onRecorded?.(round.id);
  }

  function markDuplicate(roundId: string, deviceId: string): void {
    o.logger.warn({ round: roundId, deviceId, code: 'EDGEKT_ERR_UPDATE_DUPLICATE' }, 'second round report from a device: ignored');
    const s = duplicates.get(roundId) ?? new Set<string>();
    s.add(deviceId);
    duplicates.set(roundId, s);
  }

  /** Pulls, verifies and validates one update; returns the intake row (update or refused) and its file. */
  async function intakeUpdate(round: Round, report: Extract<RoundReport, { type: 'round-update' }>): Promise<{ meta: IntakeMeta; file: string }> {
    const rec = readRoundRecord(round);
    const deviceId = report.deviceId;
    const dir = path.join(o.artifactsDir, 'updates', round.id);
    const dest = path.join(dir, `${deviceId}.ekup`);
    try {
      const key = await deviceKey(deviceId);
      if (!key) throw new EdgektError('EDGEKT_ERR_UNKNOWN_KEY', `no pinned key for ${deviceId}`);
      const m = verifyEnvelope(report.manifest, { trustedKeys: [key], now: o.clock.now() });
      const summary = UpdateSummarySchema.safeParse(m.meta?.update);
      if (m.kind !== 'weights' || m.files.length !== 1 || !summary.success) throw new EdgektError('EDGEKT_ERR_MALFORMED', 'an update manifest is kind weights with one file and meta.update');
      if (summary.data.roundId !== round.id || summary.data.round !== rec.config.round) {
        throw new EdgektError('EDGEKT_ERR_UPDATE_STALE', `update manifest is for ${summary.data.roundId} round ${summary.data.round}`);
      }
      // The signed name and target bind the manifest to this run's round and this device.
      const want = updateManifestIdentity(round.id, deviceId);
      if (m.name !== want.name) throw new EdgektError('EDGEKT_ERR_UPDATE_STALE', `update manifest is named ${m.name}, not after round ${round.id}`);
      if (m.target.devices?.length !== 1 || m.target.devices[0] !== deviceId) {
        throw new EdgektError('EDGEKT_ERR_WRONG_TARGET', `update manifest targets ${JSON.stringify(m.target.devices ?? [])}, not the reporting device ${deviceId}`);
      }
      const f = m.files[0]!;
      await mkdir(dir, { recursive: true });
      const tmp = `${dest}.${o.coordinatorId}.part`;
      const sink = await createFileBlockSink(tmp, f.size);
      try {
        await pullFile({
          client: o.client, requestTopic: topics.serve(deviceId), responseTopicPrefix: topics.coordinatorBlocks(o.coordinatorId, `fed-${deviceId}`.slice(0, 100)),
          file: { sha256: f.sha256, size: f.size, blockSize: f.blockSize, ...(f.blocks ? { blocks: f.blocks } : {}) }, ledger: createMemoryBlockLedger(), sink,
          timeoutMs: o.pullTimeoutMs ?? 5000, retries: 3,
        });
      } catch (e) {
        await sink.close();
        await rm(tmp, { force: true });
        throw e;
      }
      await sink.close();
      await rename(tmp, dest);
      const { header, update } = decodeUpdate(new Uint8Array(await readFile(dest)));
      const problems = header.roundId !== round.id ? [{ code: 'EDGEKT_ERR_UPDATE_STALE', message: `update header names round ${header.roundId}` }] : [];
      if (update.clientId !== deviceId) problems.push({ code: 'EDGEKT_ERR_UPDATE_FORMAT', message: `update from ${update.clientId} on ${deviceId}'s report` });
      problems.push(...validateUpdate(await globalOf(rec.config.globalSha256!), update, rec.config.round));
      if (problems.length > 0) {
        await rm(dest, { force: true });
        return { meta: { kind: 'refused', codes: [...new Set(problems.map((p) => p.code))], message: problems.map((p) => p.message).join('; ').slice(0, 500) }, file: '' };
      }
      return { meta: { kind: 'update', codes: [], numSamples: update.numSamples, metrics: header.metrics }, file: dest };
    } catch (e) {
      const err = toEdgektError(e);
      await rm(dest, { force: true });
      return { meta: { kind: 'refused', codes: [err.code], message: err.message.slice(0, 500) }, file: '' };
    }
  }

  async function onReport(topicRound: string, topicDevice: string, payload: Buffer): Promise<void> {
    const report = RoundReportSchema.parse(JSON.parse(payload.toString('utf8')));
    if (report.roundId !== topicRound || report.deviceId !== topicDevice) throw new Error(`report of ${report.deviceId}/${report.roundId} on ${topicDevice}/${topicRound}'s topic`);
    const round = await o.store.getRound(report.roundId);
    if (!round) throw new Error(`no round ${report.roundId}`);
    const rec = readRoundRecord(round);
    const key = `${round.id}/${report.deviceId}`;
    // A redelivery (QoS 1, the agent's outbox) carries the same bytes: ignored quietly. A different
    // second report is a duplicate: the first one stands.
    const digest = createHash('sha256').update(payload).digest('hex');
    const prior = inFlight.get(key) ?? (await o.store.listRoundUpdates(round.id)).find((u) => u.deviceId === report.deviceId)?.metadata.report;
    if (prior !== undefined) {
      if (prior !== digest) markDuplicate(round.id, report.deviceId);
      return;
    }
    inFlight.set(key, digest);
    try {
      const now = o.clock.now();
      if (round.state !== 'open' || (round.deadline !== null && now >= round.deadline)) {
        return await record(round, report.deviceId, { kind: 'late', codes: ['EDGEKT_ERR_ROUND_LATE'] });
      }
      if (!rec.invited.includes(report.deviceId)) return await record(round, report.deviceId, { kind: 'refused', codes: ['EDGEKT_ERR_ROUND_NOT_SELECTED'] });
      if (report.round !== rec.config.round) return await record(round, report.deviceId, { kind: 'refused', codes: ['EDGEKT_ERR_UPDATE_STALE'] });
      if (report.type === 'round-failed') return await record(round, report.deviceId, { kind: 'failed', codes: [report.error.code], message: report.error.message });
      while (active >= PULLS_AT_ONCE) await new Promise<void>((r) => queued.push(r));
      active++;
      try {
        const { meta, file } = await intakeUpdate(round, report);
        await record(round, report.deviceId, meta, file);
      } finally {
        active--;
        queued.shift()?.();
      }
    } finally {
      inFlight.delete(key);
    }
  }

  return {
    /** Routes one `rounds/+/updates/+` message; malformed ones are logged and dropped. */
    async handle(topic: string, payload: Buffer): Promise<void> {
      const t = parseRoundReportTopic(topic);
      if (!t) return;
      try {
        await onReport(t.roundId, t.deviceId, payload);
      } catch (e) {
        o.logger.warn({ topic, err: e instanceof Error ? e.message : String(e) }, 'round report dropped');
      }
    },
    /** Devices whose second report in `roundId` was ignored (this process only). */
    duplicatesOf(roundId: string): string[] {
      return [...(duplicates.get(roundId) ?? [])].sort();
    },
    /** Pulls still running for a round (the driver lets them finish before closing on all-reported). */
    pending(roundId: string): number {
      let n = 0;
      for (const k of inFlight.keys()) if (k.startsWith(`${roundId}/`)) n++;
      return n;
    },
  };
}
export type RoundIntake = ReturnType<typeof createRoundIntake>;
