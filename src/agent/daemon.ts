import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/agent-config.js';
import type { DeviceProfile } from '../config/device-profile.js';
import { type StatusMessage, type TelemetryMessage } from '../config/messages.js';
import { parseCompressJobSpec } from '../config/job-spec.js';
import { systemClock, type Clock } from '../core/clock.js';
import { toEdgektError } from '../core/errors.js';
import { openDatabase, type Db } from '../store/sqlite.js';
import { createJobStore, type JobStore } from '../store/jobs.js';
import { createVersionStore } from '../store/versions.js';
import { createOutboxPump, type OutboxPump } from '../store/outbox-pump.js';
import { isTerminal } from '../store/job-states.js';
import { allowServeResponse, topics } from '../transport/topics.js';
import { createBlockServer } from '../transport/blocks/index.js';
import { closeMqttClient } from '../transport/mqtt-close.js';
import { deviceClientOptions, type BrokerSecrets } from './connection.js';
import { createExecutor } from './executor.js';
import { judgeJobPayload } from './intake.js';
import type { CompressJobRunner } from './runner.js';
import { createHostSampler, type HostSample } from './telemetry.js';
import { pauseReason } from './work-gate.js';
import { createFileArtifactSource } from './artifact-source.js';
import { createRoundAnswerStore } from '../store/round-answers.js';
import { createRoundClient, type RoundClient, type RoundTrainerFor } from './round-client.js';
import { payloadType } from './intake.js';

export interface AgentOptions {
  config: AgentConfig;
  profile: DeviceProfile;
  secrets: BrokerSecrets;
  trustedKeys: ReadonlyMap<string, KeyObject>;
  deviceKey: { privateKey: KeyObject; publicKeyPem: string };
  run: CompressJobRunner;
  logger: Logger;
  clock?: Clock;
  sampler?: () => Promise<HostSample>;
  versions?: Record<string, string>;
  /** Federated rounds: builds the device's trainer for a round (tests inject a light one; `edgekt agent` enrols). */
  roundTrainerFor?: RoundTrainerFor;
}

export interface Agent {
  start(): Promise<void>;
  /** Stops cleanly: the active job is interrupted at a checkpoint and resumes on the next start. */
  stop(): Promise<void>;
  readonly client: MqttClient | null;
  /** For tests and the fleet benchmark: the job store and whether work is paused. */
  readonly jobs: JobStore | null;
  paused(): string | null;
  /** Resolves when no job is queued or running. */
  whenIdle(): Promise<void>;
  /** The federated round being trained, or null. */
  activeRound(): { roundId: string; round: number } | null;
}

/**
 * The device daemon: one MQTT 5 session, a SQLite job store with its outbox, one job at a time in
 * a worker, telemetry on a cron schedule, and the work gate (cron window, temperature, RSS).
 */
export function createAgent(o: AgentOptions): Agent {
  const c = o.config;
  const id = c.device.id;
  const clock = o.clock ?? systemClock;
  const log = o.logger;
  const sample = o.sampler ?? createHostSampler();
  let db: Db | null = null;
  let jobs: JobStore | null = null;
  let client: MqttClient | null = null;
  let pump: OutboxPump | null = null;
  let task: ScheduledTask | null = null;
  let paused: string | null = null;
  let stopping = false;
  const queue: string[] = [];
  let active: { jobId: string; controller: AbortController } | null = null;
  /** Cancels of the active job: a cancel that lands while a pause or stop is winding it down must not be lost. */
  const cancels = new Set<string>();
  let wake: (() => void) | null = null;
  let loop: Promise<void> | null = null;
  const idleWaiters: Array<() => void> = [];
  const source = createFileArtifactSource();
  let rounds: RoundClient | null = null;
  /** Why the compress loop must wait: paused work, or a federated round training (the job stays queued). */
  const blocked = (): string | null => paused ?? (rounds?.active() ? `federated round ${rounds.active()!.roundId} in progress` : null);

  const status = (state: 'online' | 'offline'): StatusMessage => ({
    type: 'status', deviceId: id, state, at: new Date(clock.now()).toISOString(), profile: o.profile.name, groups: c.device.groups,
    versions: o.versions ?? {}, capacity: { arch: os.arch(), cpus: os.cpus().length, memoryMB: Math.round(os.totalmem() / 2 ** 20) },
    publicKey: o.deviceKey.publicKeyPem,
  });

  const enqueue = (jobId: string): void => {
    if (!queue.includes(jobId)) queue.push(jobId);
    wake?.();
  };

  function onJobPayload(payload: Buffer): void {
    const j = jobs!;
    const versions = createVersionStore(db!, { clock });
    const intake = judgeJobPayload(payload, {
      deviceId: id, groups: c.device.groups, trustedKeys: o.trustedKeys, datasets: c.datasets,
      maxArtifactBytes: c.limits.maxArtifactBytes, now: clock.now(), lastAccepted: (name) => versions.lastAccepted(name),
    });
    if (!intake.ok) {
      if (j.get(intake.jobId)) return; // a redelivery of something already refused
      j.receive(intake.jobId, { refused: true }, null);
      j.transition(intake.jobId, 'rejected', { error: { code: intake.error.code, message: intake.error.message } });
      log.warn({ jobId: intake.jobId, code: intake.error.code }, `job rejected: ${intake.error.message}`);
      pump?.kick();
      return;
    }
    if (intake.kind === 'cancel') return cancel(intake.message.jobId);
    const msg = intake.message;
    if (j.get(msg.jobId)) return; // duplicate delivery: one job
    const created = db!.transaction(() => {
      const r = j.receive(msg.jobId, { ...msg, datasetSpec: intake.datasetSpec }, msg.manifest);
      if (!r.created) return false;
      try {
        parseCompressJobSpec({ ...msg.settings, teacher: path.join(c.stateDir, 'jobs', msg.jobId, 'teacher'), data: intake.datasetSpec, profile: o.profile });
        versions.accept(intake.manifest.name, intake.manifest.version, msg.jobId);
      } catch (e) {
        const err = toEdgektError(e);
        j.transition(msg.jobId, 'rejected', { error: { code: err.code, message: err.message } });
        log.warn({ jobId: msg.jobId, code: err.code }, `job rejected: ${err.message}`);
        return false;
      }
      return true;
    }).immediate();
    pump?.kick();
    if (created) enqueue(msg.jobId);
  }

  function cancel(jobId: string): void {
    const job = jobs!.get(jobId);
    if (!job || isTerminal(job.state)) return;
    if (active?.jobId === jobId) {
      cancels.add(jobId);
      active.controller.abort('cancel');
    } else {
      const at = queue.indexOf(jobId);
      if (at >= 0) queue.splice(at, 1);
      jobs!.transition(jobId, 'canceled');
      pump?.kick();
    }
  }

  async function runLoop(executor: ReturnType<typeof createExecutor>): Promise<void> {
    while (!stopping) {
      const jobId = queue[0];
      const why = blocked();
      if (jobId === undefined || why) {
        if (!jobId) idleWaiters.splice(0).forEach((f) => f());
        else if (!jobs!.get(jobId)!.pausedReason) jobs!.pause(jobId, why!);
        await new Promise<void>((r) => (wake = r));
        wake = null;
        continue;
      }
      if (jobs!.get(jobId)!.pausedReason) jobs!.resume(jobId);
      const controller = new AbortController();
      active = { jobId, controller };
      try {
        await executor.drive(jobId, controller.signal);
      } catch (e) {
        const why: unknown = cancels.has(jobId) ? 'cancel' : controller.signal.reason;
        if (why !== 'cancel' && why !== 'pause' && why !== 'stop') log.error({ jobId, err: toEdgektError(e).toJSON() }, 'job loop');
      } finally {
        active = null;
        // However the run ended, a cancel asked for while it ran wins over a pause or a stop.
        if (cancels.delete(jobId) && !isTerminal(jobs!.get(jobId)!.state)) jobs!.transition(jobId, 'canceled');
        pump?.kick();
      }
      const after = jobs!.get(jobId);
      if (!after || isTerminal(after.state)) queue.shift();
    }
  }

  async function tick(): Promise<void> {
    if (!client || stopping) return;
    const s = await sample();
    const reason = pauseReason(o.profile, { now: new Date(clock.now()), temperatureC: s.temperatureC, rssMB: s.rssMB }, paused);
    if (reason !== paused) {
      paused = reason;
      log.info({ paused: reason }, reason ? `work paused: ${reason}` : 'work resumed');
      if (reason && active) {
        jobs!.pause(active.jobId, reason);
        active.controller.abort('pause');
      }
      wake?.();
    }
    const a = active ? jobs!.get(active.jobId) : null;
    const r = rounds?.active();
    // A training round makes the device busy for the coordinator's idle selection, like a job.
    const activeJob = a ? { jobId: a.jobId, state: a.state } : r ? { jobId: r.roundId, state: 'federated-round' } : null;
    const msg: TelemetryMessage = { type: 'telemetry', deviceId: id, at: new Date(clock.now()).toISOString(), ...s, activeJob, paused };
    client.publish(topics.telemetry(id), JSON.stringify(msg), { qos: 0 });
  }

  return {
    get client() {
      return client;
    },
    get jobs() {
      return jobs;
    },
    paused: () => paused,
    activeRound: () => rounds?.active() ?? null,
    whenIdle: () => (queue.length === 0 && !active ? Promise.resolve() : new Promise((r) => idleWaiters.push(r))),
    async start() {
      await mkdir(c.stateDir, { recursive: true });
      const dbFile = path.join(c.stateDir, 'agent.db');
      db = openDatabase(dbFile);
      jobs = createJobStore(db, { clock, updateTopic: (jobId) => topics.jobUpdate(id, jobId), progressIntervalMs: c.progressSeconds * 1000, onEnqueue: () => pump?.kick() });
      client = mqtt.connect(c.broker.url, deviceClientOptions(c, o.secrets, { topic: topics.status(id), status: status('offline') }));
      const cl = client;
      pump = createOutboxPump({
        outbox: jobs.outbox, clock,
        publish: async (row) => {
          await cl.publishAsync(row.topic, typeof row.payload === 'string' ? row.payload : Buffer.from(row.payload), { qos: row.qos, retain: row.retain });
        },
        onError: (e, _row, attempt) => {
          if (attempt === 1 || attempt % 20 === 0) log.warn({ attempt, err: String(e) }, 'outbox delivery failing; will retry');
        },
      });
      cl.on('connect', () => {
        cl.publish(topics.status(id), JSON.stringify(status('online')), { qos: 1, retain: true });
        cl.subscribe([topics.jobs(id), topics.serve(id)], { qos: 1 });
        pump!.kick();
        log.info({ broker: c.broker.url }, 'connected');
      });
      cl.on('error', (e) => log.warn({ err: e.message }, 'mqtt error'));
      cl.on('message', (topic, payload) => {
        if (topic !== topics.jobs(id)) return;
        if (payloadType(payload) === 'round-invite') return rounds!.handle(payload);
        try {
          onJobPayload(payload);
        } catch (e) {
          log.error({ err: toEdgektError(e).toJSON() }, 'job message handling failed');
        }
      });
      createBlockServer({ client: cl, requestFilter: topics.serve(id), source, allowResponseTopic: allowServeResponse, logger: log });
      const executor = createExecutor({
        deviceId: id, profile: o.profile, stateDir: c.stateDir, db, dbFile, jobs, versions: createVersionStore(db, { clock }), client: cl,
        deviceKey: o.deviceKey.privateKey, minFreeDiskBytes: c.limits.minFreeDiskBytes, window: c.limits.window, run: o.run, clock, logger: log,
        publishArtifact: (files) => files.forEach((f) => source.add(f.sha256, f.file, f.size)),
      });
      await executor.restoreArtifacts();
      const answers = createRoundAnswerStore(db, { clock, outbox: jobs.outbox });
      for (const a of answers.served()) if (a.served) source.add(a.served.sha256, a.served.file, a.served.size);
      rounds = createRoundClient({
        deviceId: id, groups: c.device.groups, trustedKeys: o.trustedKeys, deviceKey: o.deviceKey.privateKey, stateDir: c.stateDir, db, answers, client: cl,
        enabled: c.federated.enabled, ...(o.roundTrainerFor ? { trainerFor: o.roundTrainerFor } : {}), window: c.limits.window, maxArtifactBytes: c.limits.maxArtifactBytes,
        unavailable: () => paused ?? (active ? `compress job ${active.jobId} is running` : null),
        serve: (sha, file, size) => source.add(sha, file, size),
        kick: () => pump?.kick(),
        onBusy: (busy) => {
          void tick().catch(() => {}); // the coordinator sees the change at once, not at the next cron tick
          if (!busy) wake?.();
        },
        clock, logger: log,
      });
      for (const job of jobs.listActive()) enqueue(job.jobId);
      task = cron.schedule(c.telemetry.cron, () => void tick().catch((e) => log.warn({ err: String(e) }, 'telemetry failed')));
      void tick().catch(() => {});
      loop = runLoop(executor);
    },
    async stop() {
      stopping = true;
      await task?.stop();
      active?.controller.abort('stop');
      wake?.();
      await rounds?.stop();
      await loop;
      if (client?.connected) await client.publishAsync(topics.status(id), JSON.stringify(status('offline')), { qos: 1, retain: true }).catch(() => {});
      await pump?.stop();
      if (client) await closeMqttClient(client);
      db?.close();
    },
  };
}
