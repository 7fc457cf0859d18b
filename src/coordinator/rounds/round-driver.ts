import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { FederatedRunSpecSchema, type FederatedRunSpec, type RoundConfig, type RoundInvite, type RoundResult } from '../../config/federated.js';
import type { Clock } from '../../core/clock.js';
import { aggregate, aggregateOptionsFor, decodeUpdate, type ClientUpdate, type WeightSet } from '../../federated/index.js';
import type { CoordinatorStore, Device, FederatedLease, FederatedRun, JsonObject, Round } from '../../store/coordinator/index.js';
import type { ArtifactStore } from '../artifacts.js';
import { decodeGlobal, encodeGlobal, GLOBAL_FILE, loadFedAdamState, MODEL_FILE, saveFedAdamState, signRoundManifest } from './files.js';
import type { RoundIntake } from './intake.js';
import { readIntakeMeta, readRoundRecord, roundIdFor, roundRowConfig, type RoundRecord } from './round-record.js';
import { selectRoundClients } from './selection.js';

export interface RoundDriverOptions {
  coordinatorId: string;
  store: CoordinatorStore;
  artifacts: ArtifactStore;
  intake: Pick<RoundIntake, 'duplicatesOf' | 'pending'>;
  fleetKey: KeyObject;
  clock: Clock;
  logger: Logger;
  leaseMs: number;
  publishInvite(deviceId: string, invite: RoundInvite): Promise<void>;
  /** Retained, QoS 1, on topics.roundResult(roundId). */
  publishResult(result: RoundResult): Promise<void>;
  /** Optional evaluation of each new global (e.g. accuracy on a held-out set); its keys go into RoundResult.metrics as they are. */
  evaluate?: (global: WeightSet, round: number) => Promise<Record<string, number>>;
}

/** A run row's spec: the run spec plus the sha256 of the run's topology-only model.json. */
export function readRunSpec(run: FederatedRun): { spec: FederatedRunSpec; baseSha256: string } {
  const { baseSha256, ...spec } = run.spec as Record<string, unknown>;
  return { spec: FederatedRunSpecSchema.parse(spec), baseSha256: String(baseSha256) };
}

async function allDevices(store: CoordinatorStore): Promise<Device[]> {
  const out: Device[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: Device[]; nextCursor: string | null } = await store.listDevices({ online: true }, { limit: 1000, cursor });
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

/** Sample-weighted mean of each metric the included clients reported, as `client.<name>`. */
function clientMetrics(parts: ReadonlyArray<{ numSamples: number; metrics: Record<string, number> }>): Record<string, number> {
  const sum = new Map<string, { v: number; n: number }>();
  for (const p of parts) {
    for (const [k, v] of Object.entries(p.metrics)) {
      if (!Number.isFinite(v)) continue;
      const s = sum.get(k) ?? { v: 0, n: 0 };
      s.v += v * p.numSamples;
      s.n += p.numSamples;
      sum.set(k, s);
    }
  }
  return Object.fromEntries([...sum].map(([k, s]) => [`client.${k}`, s.v / s.n]));
}

/**
 * Drives every running federated run whose lease this coordinator holds, one tick at a time and
 * entirely from the store: select and invite, close a round once every invited device reported
 * or at its deadline, aggregate, persist the new global, publish the retained result, go on. A
 * restarted coordinator (or another one, once the lease expires) picks up an open round as it is.
 */
export function createRoundDriver(o: RoundDriverOptions) {
  const leases = new Map<string, FederatedLease>();
  /** Open rounds this process has (re)sent invites for: after a restart, unreported devices get them again. */
  const invitedHere = new Set<string>();

  async function startRound(run: FederatedRun, spec: FederatedRunSpec, baseSha256: string, deadline: number, selected: string[]): Promise<void> {
    const n = run.roundNumber + 1;
    const roundId = roundIdFor(run.id, n, run.attempt);
    const now = o.clock.now();
    const global = decodeGlobal(await o.artifacts.readBytes(run.globalSha256));
    const globalFile = await o.artifacts.publishFile(`${roundId}/${GLOBAL_FILE}`, GLOBAL_FILE, encodeGlobal(global, n, roundId));
    const base = await o.store.getArtifact(baseSha256);
    if (!base) throw new Error(`run ${run.id}: base model.json ${baseSha256} is not stored`);
    const modelFile = { path: MODEL_FILE, size: base.size, sha256: base.sha256, blockSize: 64 * 1024 };
    const { rounds: _r, deadlineSeconds: _d, maxAttempts: _m, ...client } = spec;
    const config: RoundConfig = {
      ...client, type: 'round-config', roundId, round: n, deadline: new Date(deadline).toISOString(),
      runId: run.id, globalSha256: globalFile.sha256, baseSha256,
    };
    const rec: RoundRecord = { config, invited: selected, attempt: run.attempt, files: [globalFile, modelFile] };
    const round = await o.store.createRound({ id: roundId, runId: run.id, roundNumber: n, config: roundRowConfig(rec), state: 'open', deadline });
    o.logger.info({ run: run.id, round: roundId, invited: selected, at: now }, 'federated round opened');
    await invite(round, rec, selected);
  }

  async function invite(round: Round, rec: RoundRecord, deviceIds: string[]): Promise<void> {
    invitedHere.add(round.id);
    if (deviceIds.length === 0) return;
    const manifest = signRoundManifest({ config: rec.config, files: rec.files, deviceIds: rec.invited, fleetKey: o.fleetKey, now: o.clock.now() });
    for (const d of deviceIds) await o.publishInvite(d, { type: 'round-invite', roundId: round.id, manifest });
  }

  async function close(run: FederatedRun, spec: FederatedRunSpec, round: Round, rec: RoundRecord): Promise<void> {
    const rows = await o.store.listRoundUpdates(round.id);
    const refused: RoundResult['refused'] = [];
    const late: string[] = [];
    const failed: RoundResult['failed'] = [];
    const updates: ClientUpdate[] = [];
    const reported = new Set<string>();
    const parts = new Map<string, { numSamples: number; metrics: Record<string, number> }>();
    for (const u of rows) {
      const m = readIntakeMeta(u);
      if (m.kind === 'late') late.push(u.deviceId);
      else if (m.kind === 'refused') refused.push({ deviceId: u.deviceId, codes: m.codes });
      else if (m.kind === 'failed') failed.push({ deviceId: u.deviceId, code: m.codes[0] ?? 'EDGEKT_ERR_ROUND_TRAIN' });
      else {
        const { header, update } = decodeUpdate(new Uint8Array(await readFile(u.payloadLocation)));
        updates.push(update);
        parts.set(u.deviceId, { numSamples: update.numSamples, metrics: header.metrics });
      }
      if (m.kind !== 'late' && rec.invited.includes(u.deviceId)) reported.add(u.deviceId);
    }
    for (const d of o.intake.duplicatesOf(round.id)) refused.push({ deviceId: d, codes: ['EDGEKT_ERR_UPDATE_DUPLICATE'] });
    const global = decodeGlobal(await o.artifacts.readBytes(rec.config.globalSha256!));
    const fedAdam = rec.config.strategy === 'fedadam' ? await loadFedAdamState(o.artifacts, run.serverState) : null;
    const agg = aggregate(global, updates, aggregateOptionsFor(rec.config, fedAdam));
    for (const d of agg.dropped) refused.push({ deviceId: d.clientId, codes: [...new Set(d.problems.map((p) => p.code))] });
    const dropped = rec.invited.filter((d) => !reported.has(d));
    const base = { type: 'round-result' as const, roundId: round.id, runId: run.id, round: rec.config.round, included: agg.included, refused, late, failed, dropped };
    let result: RoundResult;
    let serverState: JsonObject | null = run.serverState;
    if (agg.included.length >= rec.config.selection.minCount) {
      const file = await o.artifacts.publishFile(`${run.id}/global-r${rec.config.round}`, GLOBAL_FILE, encodeGlobal(agg.weights, rec.config.round, round.id));
      if (agg.state) serverState = (await saveFedAdamState(o.artifacts, run.id, rec.config.round, agg.state)) as unknown as JsonObject;
      const evaluated = o.evaluate ? await o.evaluate(agg.weights, rec.config.round) : {};
      const metrics = { ...clientMetrics(agg.included.map((id) => parts.get(id)!)), ...evaluated };
      result = { ...base, state: 'completed', globalSha256: file.sha256, metrics };
    } else {
      result = {
        ...base, state: 'failed', globalSha256: null, metrics: {},
        error: { code: 'EDGEKT_ERR_ROUND_QUORUM', message: `${agg.included.length} valid updates, the round needs ${rec.config.selection.minCount} (attempt ${rec.attempt} of ${spec.maxAttempts})` },
      };
    }
    const stored = { ...result, serverState } as unknown as JsonObject;
    if (!(await o.store.finishRound(round.id, result.state, stored, ['open']))) return; // another coordinator closed it
    o.logger.info({ run: run.id, round: round.id, state: result.state, included: result.included.length, refused: refused.length, late: late.length, dropped: dropped.length }, 'federated round closed');
    await advance(run, spec, round.id, rec.attempt, stored);
  }

  /** Applies a closed round to its run (idempotent: also the recovery path after a crash between the two writes), then publishes the result. */
  async function advance(run: FederatedRun, spec: FederatedRunSpec, roundId: string, attempt: number, stored: JsonObject): Promise<void> {
    const result = stored as unknown as RoundResult & { serverState: JsonObject | null };
    const { serverState, ...wire } = result;
    if (result.state === 'completed') {
      const done = result.round >= spec.rounds;
      await o.store.updateFederatedRun(run.id, { roundNumber: result.round, attempt: 1, globalSha256: result.globalSha256!, serverState, ...(done ? { state: 'completed' } : {}) }, ['running']);
      if (done) o.logger.info({ run: run.id, rounds: result.round }, 'federated run completed');
    } else if (attempt < spec.maxAttempts) {
      await o.store.updateFederatedRun(run.id, { attempt: attempt + 1 }, ['running']);
    } else {
      await o.store.updateFederatedRun(run.id, { state: 'failed' }, ['running']);
      o.logger.warn({ run: run.id, round: roundId, code: result.error?.code }, 'federated run failed');
    }
    await o.publishResult(wire);
  }

  /** A quorum failure without a round row (nobody eligible until the deadline) still leaves a closed round and a result. */
  async function failWaiting(run: FederatedRun, spec: FederatedRunSpec, deadline: number, eligible: number, reason: string): Promise<void> {
    const n = run.roundNumber + 1;
    const roundId = roundIdFor(run.id, n, run.attempt);
    const stub = { type: 'round-config', roundId, round: n, runId: run.id, deadline: new Date(deadline).toISOString(), strategy: spec.strategy, epochs: spec.epochs, learningRate: spec.learningRate, batchSize: spec.batchSize, selection: spec.selection };
    const round = await o.store.createRound({ id: roundId, runId: run.id, roundNumber: n, config: roundRowConfig({ config: stub as RoundConfig, invited: [], attempt: run.attempt, files: [] }), state: 'open', deadline });
    const result: RoundResult = {
      type: 'round-result', roundId, runId: run.id, round: n, state: 'failed', included: [], refused: [], late: [], failed: [], dropped: [], globalSha256: null, metrics: {},
      error: { code: 'EDGEKT_ERR_ROUND_QUORUM', message: `${eligible} eligible devices until the deadline (${reason}), the round needs ${spec.selection.minCount}` },
    };
    const stored = { ...result, serverState: run.serverState } as unknown as JsonObject;
    if (await o.store.finishRound(round.id, 'failed', stored, ['open'])) await advance(run, spec, roundId, run.attempt, stored);
  }

  async function tickRun(run: FederatedRun): Promise<void> {
    const lease = await o.store.acquireFederatedLease(run.id, o.coordinatorId, o.leaseMs);
    if (!lease) return void leases.delete(run.id);
    leases.set(run.id, lease);
    let parsed: ReturnType<typeof readRunSpec>;
    try {
      parsed = readRunSpec(run);
    } catch (e) {
      // A stored spec that no longer parses can never run: fail the run once instead of warning every tick.
      const message = e instanceof Error ? e.message : String(e);
      if (await o.store.updateFederatedRun(run.id, { state: 'failed' }, ['running'])) o.logger.error({ run: run.id, code: 'EDGEKT_ERR_CONFIG', err: message }, 'federated run failed: its stored spec is invalid');
      return;
    }
    const { spec, baseSha256 } = parsed;
    const now = o.clock.now();
    const rounds = await o.store.listRounds({ runId: run.id });
    const open = rounds.find((r) => r.state === 'open');
    if (open) {
      const rec = readRoundRecord(open);
      const rows = await o.store.listRoundUpdates(open.id);
      const answered = new Set(rows.filter((u) => readIntakeMeta(u).kind !== 'late').map((u) => u.deviceId));
      const waiting = rec.invited.filter((d) => !answered.has(d));
      if (!invitedHere.has(open.id)) await invite(open, rec, waiting); // resumed here: unanswered invites again (devices make one round of a redelivery)
      const pastDeadline = open.deadline !== null && now >= open.deadline;
      if (pastDeadline || (waiting.length === 0 && o.intake.pending(open.id) === 0)) await close(run, spec, open, rec);
      return;
    }
    // No open round: a closed one the run does not reflect yet (a crash between finishRound and the run write) is applied first.
    const current = rounds.find((r) => r.id === roundIdFor(run.id, run.roundNumber + 1, run.attempt));
    if (current?.result) return advance(run, spec, current.id, run.attempt, current.result);
    if (run.roundNumber >= spec.rounds) {
      await o.store.updateFederatedRun(run.id, { state: 'completed' }, ['running']);
      return;
    }
    // Waiting for eligible devices: the deadline counts from when the run last moved (created, or its last round closed).
    const deadline = run.updatedAt + spec.deadlineSeconds * 1000;
    const pick = selectRoundClients({ devices: await allDevices(o.store), selection: spec.selection, seed: spec.seed, round: run.roundNumber + 1, attempt: run.attempt, now: new Date(now) });
    if (pick.ok) return startRound(run, spec, baseSha256, deadline, pick.selected);
    if (now >= deadline) await failWaiting(run, spec, deadline, pick.eligible.length, pick.reason);
  }

  return {
    async tick(): Promise<void> {
      for (const run of await o.store.listFederatedRuns({ states: ['running'] })) {
        try {
          await tickRun(run);
        } catch (e) {
          o.logger.warn({ run: run.id, err: e instanceof Error ? e.message : String(e) }, 'federated tick failed');
        }
      }
    },
    async release(): Promise<void> {
      for (const l of leases.values()) await o.store.releaseFederatedLease(l).catch(() => false);
      leases.clear();
    },
  };
}
export type RoundDriver = ReturnType<typeof createRoundDriver>;
