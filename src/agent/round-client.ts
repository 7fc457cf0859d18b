import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { parseRoundConfig, RoundInviteSchema, RoundReportSchema, UpdateSummarySchema, updateManifestIdentity, type RoundConfig, type RoundReport } from '../config/federated.js';
import type { Manifest, ManifestFile } from '../config/manifest.js';
import type { Clock } from '../core/clock.js';
import { EdgektError, toEdgektError } from '../core/errors.js';
import { decodeUpdate, encodeUpdate, toDeltaUpdate, type ClientUpdate, type RoundTrainer, type WeightSet } from '../federated/index.js';
import type { Db } from '../store/sqlite.js';
import type { RoundAnswerStore } from '../store/round-answers.js';
import { manifestForDir } from '../transport/manifest-dir.js';
import { signManifest, verifyManifest, type TrustedKeys } from '../transport/signing.js';
import { topics } from '../transport/topics.js';
import { pullManifestFile } from './pull.js';

/** The round's base model as the invite carries it: topology only (empty weightsManifest). */
export interface RoundBase {
  modelJson: string;
  /** sha256 of model.json: the key an enrolment is cached under. */
  baseSha256: string;
}

/** Builds (or reuses) the device's trainer for a round: the daemon's injected seam. */
export type RoundTrainerFor = (config: RoundConfig, base: RoundBase, global: WeightSet) => Promise<RoundTrainer>;

export interface RoundClientDeps {
  deviceId: string;
  groups: readonly string[];
  trustedKeys: TrustedKeys;
  deviceKey: KeyObject;
  stateDir: string;
  db: Db;
  answers: RoundAnswerStore;
  client: MqttClient;
  enabled: boolean;
  trainerFor?: RoundTrainerFor;
  window: number;
  maxArtifactBytes: number;
  /** Why this device cannot take a round now (work paused, a compress job running), or null. */
  unavailable(): string | null;
  /** Adds a file to what the device's block server serves. */
  serve(sha256: string, file: string, size: number): void;
  /** The report was enqueued: deliver it. */
  kick(): void;
  /** A round started (true) or ended (false). */
  onBusy(busy: boolean): void;
  clock: Clock;
  logger: Logger;
}

export interface RoundClient {
  /** Takes one `round-invite` payload from the jobs topic; never throws. */
  handle(payload: Uint8Array): void;
  /** The round being trained, or null. */
  active(): { roundId: string; round: number } | null;
  /** Aborts the active round (no report: it was not answered) and waits for it to wind down. */
  stop(): Promise<void>;
}

const GLOBAL_FILE = 'global.ekup';
const MODEL_FILE = 'model.json';
const UPDATE_FILE = 'update.ekup';
/** Run key of refusals before the signature verified: a forged round number must not make later real rounds stale. */
const UNVERIFIED = '(unverified)';

const fail = (code: 'EDGEKT_ERR_MALFORMED' | 'EDGEKT_ERR_HASH' | 'EDGEKT_ERR_ROUND_UNAVAILABLE' | 'EDGEKT_ERR_ROUND_TRAIN', message: string): never => {
  throw new EdgektError(code, message);
};

/** The round number an invite claims, before anything is verified (only to label a refusal). */
function claimedRound(envelope: unknown): number {
  const r = (envelope as { manifest?: { meta?: { round?: { round?: unknown } } } } | null)?.manifest?.meta?.round?.round;
  return typeof r === 'number' && Number.isSafeInteger(r) && r >= 0 ? r : 0;
}

function fileOf(m: Manifest, name: string): ManifestFile {
  return m.files.find((f) => f.path === name) ?? fail('EDGEKT_ERR_MALFORMED', `round manifest ${m.name} has no ${name}`);
}

/** The promise, or a rejection as soon as `signal` aborts: a trainer that ignores its signal cannot hold the round past its deadline. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new EdgektError('EDGEKT_ERR_ABORTED', `round aborted (${String(signal.reason)})`));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new EdgektError('EDGEKT_ERR_ABORTED', `round aborted (${String(signal.reason)})`));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * The device side of a federated round (protocol step 3): verify the fleet-signed invite, decline
 * with a code when the device cannot take part, pull the global and the base topology, train with
 * the injected trainer until the deadline, then sign the update with the device key, serve it like
 * a student and report it through the outbox. One round at a time, idempotent by roundId, and a
 * round older than the last one answered for its run is ignored.
 */
export function createRoundClient(d: RoundClientDeps): RoundClient {
  const log = d.logger;
  /** Invites being handled (verified or training): a redelivery is a no-op. */
  const inFlight = new Set<string>();
  let current: { roundId: string; round: number; controller: AbortController; done: Promise<void> } | null = null;

  const report = (r: RoundReport, answer: Parameters<RoundAnswerStore['answer']>[0]): void => {
    const msg = RoundReportSchema.parse(r);
    const created = d.answers.answer(answer, { topic: topics.roundReport(r.roundId, d.deviceId), payload: JSON.stringify(msg), qos: 1, retain: false, key: `round:${r.roundId}` });
    if (created) d.kick();
  };
  const refuse = (roundId: string, runKey: string, round: number, e: unknown): void => {
    const err = toEdgektError(e);
    log.warn({ roundId, round, code: err.code }, `round refused: ${err.message}`);
    report({ type: 'round-failed', roundId, deviceId: d.deviceId, round, error: { code: err.code, message: err.message } }, { roundId, runKey, round, outcome: 'failed', served: null });
  };

  function handle(payload: Uint8Array): void {
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(payload).toString('utf8'));
    } catch {
      log.warn('round invite is not JSON; ignored');
      return;
    }
    const inv = RoundInviteSchema.safeParse(json);
    if (!inv.success) {
      log.warn({ issues: inv.error.issues.length }, 'round invite fails its schema; ignored');
      return;
    }
    const { roundId, manifest: envelope } = inv.data;
    if (inFlight.has(roundId) || d.answers.get(roundId)) {
      log.debug({ roundId }, 'round invite already handled');
      return;
    }
    let manifest: Manifest;
    let config: RoundConfig;
    try {
      manifest = verifyManifest(envelope, { trustedKeys: d.trustedKeys, now: d.clock.now(), deviceId: d.deviceId, groups: d.groups, maxBytes: d.maxArtifactBytes });
    } catch (e) {
      return refuse(roundId, UNVERIFIED, claimedRound(envelope), e);
    }
    const claimed = claimedRound(envelope);
    try {
      if (manifest.kind !== 'weights') fail('EDGEKT_ERR_MALFORMED', `a round invite needs a weights manifest, got ${manifest.kind}`);
      config = parseRoundConfig(manifest.meta?.['round']);
      if (config.roundId !== roundId) fail('EDGEKT_ERR_MALFORMED', `invite for ${roundId} carries the config of ${config.roundId}`);
      const global = fileOf(manifest, GLOBAL_FILE);
      const model = fileOf(manifest, MODEL_FILE);
      if (config.globalSha256 !== undefined && config.globalSha256 !== global.sha256) fail('EDGEKT_ERR_HASH', `${GLOBAL_FILE} is ${global.sha256}, the round config says ${config.globalSha256}`);
      if (config.baseSha256 !== undefined && config.baseSha256 !== model.sha256) fail('EDGEKT_ERR_HASH', `${MODEL_FILE} is ${model.sha256}, the round config says ${config.baseSha256}`);
    } catch (e) {
      return refuse(roundId, UNVERIFIED, claimed, e);
    }
    const runKey = config.runId ?? '';
    const last = d.answers.lastRound(runKey);
    // Strictly older only: a retried attempt of the same round number comes under a new roundId.
    if (last !== null && config.round < last) {
      log.info({ roundId, runId: config.runId, round: config.round, lastAnswered: last }, 'stale round invite ignored');
      return;
    }
    try {
      if (!d.enabled) fail('EDGEKT_ERR_ROUND_UNAVAILABLE', `federated rounds are disabled on ${d.deviceId}`);
      if (current) fail('EDGEKT_ERR_ROUND_UNAVAILABLE', `round ${current.roundId} is in progress`);
      const why = d.unavailable();
      if (why) fail('EDGEKT_ERR_ROUND_UNAVAILABLE', why);
      if (d.clock.now() >= Date.parse(config.deadline)) fail('EDGEKT_ERR_ROUND_UNAVAILABLE', `the deadline ${config.deadline} has passed`);
      if (!d.trainerFor) fail('EDGEKT_ERR_ROUND_TRAIN', `${d.deviceId} has no round trainer`);
    } catch (e) {
      return refuse(roundId, runKey, config.round, e);
    }
    inFlight.add(roundId);
    const controller = new AbortController();
    const done = participate(manifest, config, runKey, controller)
      .catch((e) => log.error({ roundId, err: toEdgektError(e).toJSON() }, 'round client'))
      .finally(() => {
        current = null;
        inFlight.delete(roundId);
        d.onBusy(false);
      });
    current = { roundId, round: config.round, controller, done };
    d.onBusy(true);
  }

  async function participate(manifest: Manifest, config: RoundConfig, runKey: string, controller: AbortController): Promise<void> {
    const { roundId, round } = config;
    const signal = controller.signal;
    const timer = setTimeout(() => controller.abort('deadline'), Math.max(0, Date.parse(config.deadline) - d.clock.now()));
    const started = d.clock.now();
    try {
      const dir = path.join(d.stateDir, 'rounds', roundId);
      await mkdir(path.join(dir, 'update'), { recursive: true });
      for (const name of [GLOBAL_FILE, MODEL_FILE]) {
        await pullManifestFile(fileOf(manifest, name), path.join(dir, name), {
          client: d.client, db: d.db, deviceId: d.deviceId, ledgerKey: `round:${roundId}:${name}`, responseLevel: `round-${roundId}`, window: d.window, signal,
        });
      }
      const global = decodeUpdate(new Uint8Array(await readFile(path.join(dir, GLOBAL_FILE)))).update.weights;
      const base: RoundBase = { modelJson: await readFile(path.join(dir, MODEL_FILE), 'utf8'), baseSha256: fileOf(manifest, MODEL_FILE).sha256 };
      let result;
      try {
        const trainer = await d.trainerFor!(config, base, global);
        result = await untilAborted(trainer({ roundId, round, config, global, signal }), signal);
      } catch (e) {
        if (signal.aborted) throw e;
        const err = toEdgektError(e);
        throw new EdgektError('EDGEKT_ERR_ROUND_TRAIN', `trainer failed (${err.code}): ${err.message}`, {}, { cause: e });
      }
      const trained: ClientUpdate = { clientId: d.deviceId, round, numSamples: result.numSamples, weights: result.weights, indexMap: result.indexMap };
      const update = config.encoding === 'float16' ? toDeltaUpdate(global, trained) : trained;
      const metrics = Object.fromEntries(Object.entries({ ...result.metrics, roundSeconds: (d.clock.now() - started) / 1000 }).filter(([, v]) => Number.isFinite(v)));
      const bytes = encodeUpdate(update, { roundId, encoding: config.encoding, metrics });
      const file = path.join(dir, 'update', UPDATE_FILE);
      await writeFile(file, bytes);
      const summary = UpdateSummarySchema.parse({ roundId, round, numSamples: result.numSamples, encoding: config.encoding, payload: update.isDelta ? 'delta' : 'weights', metrics });
      const signed = signManifest(
        await manifestForDir(path.join(dir, 'update'), {
          kind: 'weights', ...updateManifestIdentity(roundId, d.deviceId), version: 1, expiresInSeconds: 7 * 24 * 3600, now: d.clock.now(), meta: { update: summary },
        }),
        d.deviceKey,
      );
      const f = signed.manifest.files[0]!;
      d.serve(f.sha256, file, f.size);
      report({ type: 'round-update', roundId, deviceId: d.deviceId, round, manifest: signed }, { roundId, runKey, round, outcome: 'update', served: { file, sha256: f.sha256, size: f.size } });
      log.info({ roundId, round, numSamples: result.numSamples, bytes: bytes.byteLength, encoding: config.encoding }, 'round update reported');
    } catch (e) {
      const why: unknown = signal.reason;
      if (signal.aborted && why !== 'deadline') {
        log.info({ roundId, reason: String(why) }, 'round interrupted; not answered');
        return;
      }
      if (why === 'deadline') refuse(roundId, runKey, round, new EdgektError('EDGEKT_ERR_ROUND_UNAVAILABLE', `the deadline ${config.deadline} passed during the round`));
      else refuse(roundId, runKey, round, e);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    handle(payload) {
      try {
        handle(payload);
      } catch (e) {
        log.error({ err: toEdgektError(e).toJSON() }, 'round invite handling failed');
      }
    },
    active: () => (current ? { roundId: current.roundId, round: current.round } : null),
    async stop() {
      const c = current;
      if (!c) return;
      c.controller.abort('stop');
      await c.done;
    },
  };
}
