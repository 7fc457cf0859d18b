import type { Json, JobError, JsonObject, RolloutSpec, RolloutSpecInput, RolloutState } from './schemas.js';

export type { Json, JobError, JsonObject, RolloutSpec, RolloutSpecInput, RolloutState } from './schemas.js';

/** What a `devices/{id}/status` message tells the registry (times are epoch ms). */
export interface DeviceStatus {
  id: string;
  online: boolean;
  profile: string | null;
  groups: string[];
  versions: Record<string, string>;
  capacity: JsonObject;
  /** The agent's own state word (idle, busy, ...), opaque to the store. */
  state: string | null;
  lastSeen: number;
}

export interface Device extends DeviceStatus {
  telemetry: JsonObject | null;
  telemetryAt: number | null;
}

export interface DeviceFilter {
  profile?: string;
  group?: string;
  online?: boolean;
  state?: string;
}

/** Keyset pagination: pass back `nextCursor` (opaque) to get the following page. */
export interface PageRequest {
  limit: number;
  cursor?: string | null;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface ArtifactInput {
  sha256: string;
  kind: string;
  name: string;
  version: number;
  size: number;
  /** Where the bytes live: a path under the coordinator's artifact dir, or a URL. */
  location: string;
  manifest: JsonObject;
}

export interface Artifact extends ArtifactInput {
  createdAt: number;
}

export interface Rollout {
  id: string;
  spec: RolloutSpec;
  state: RolloutState;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
}

/** The rollout's executions may only be written by the holder of this lease (fencing token). */
export interface RolloutLease {
  rolloutId: string;
  owner: string;
  /** Grows by one each time the lease changes hands: a write carrying an old fence is refused. */
  fence: number;
  expiresAt: number;
}

/**
 * One device's part in a rollout. `state` is the agent's job-state word (config/ owns the vocabulary);
 * the store only orders updates by `seq`.
 */
export interface Execution {
  rolloutId: string;
  deviceId: string;
  jobId: string;
  state: string;
  seq: number;
  attempts: number;
  progress: Json | null;
  dispatchedAt: number;
  updatedAt: number;
  error: JobError | null;
}

export interface JobUpdate {
  jobId: string;
  seq: number;
  state: string;
  progress?: Json;
  error?: JobError;
  at: number;
}

export interface ResultInput {
  jobId: string;
  deviceId: string;
  report: JsonObject;
  studentSha256: string;
  studentManifest: JsonObject;
}

export interface Result extends ResultInput {
  /** Filled from the execution that owns jobId, null for a job outside any rollout. */
  rolloutId: string | null;
  recordedAt: number;
}

export interface ResultFilter {
  rolloutId?: string;
  deviceId?: string;
}

export interface Round {
  id: string;
  /** The federated run the round belongs to (null for a round outside any run). */
  runId: string | null;
  roundNumber: number;
  config: JsonObject;
  state: string;
  deadline: number | null;
  /** Set when the round closes: counts, codes, metrics, the new global's sha256. */
  result: JsonObject | null;
  createdAt: number;
  updatedAt: number;
}

/** A federated run: R rounds; `roundNumber` rounds have completed, `globalSha256` is the current global. */
export interface FederatedRun {
  id: string;
  spec: JsonObject;
  state: string;
  roundNumber: number;
  /** Attempt of the next (or current) round number, from 1. */
  attempt: number;
  globalSha256: string;
  /** Server optimizer state (FedAdam: its step and the sha256 of its m/v file), null when stateless. */
  serverState: JsonObject | null;
  createdAt: number;
  updatedAt: number;
}

/** Who drives a federated run's rounds (same semantics as RolloutLease). */
export interface FederatedLease {
  runId: string;
  owner: string;
  fence: number;
  expiresAt: number;
}

export interface FederatedRunPatch {
  state?: string;
  roundNumber?: number;
  attempt?: number;
  globalSha256?: string;
  serverState?: JsonObject | null;
}

export interface RoundUpdate {
  roundId: string;
  deviceId: string;
  metadata: JsonObject;
  /** Where the update's weights are (artifact sha256, file path): the store keeps no tensors. */
  payloadLocation: string;
  receivedAt: number;
}

/**
 * Everything the fleet coordinator persists, behind one async interface so a single coordinator runs
 * on SQLite and several share PostgreSQL. Writes that two coordinators may race on (job updates,
 * results, leases, dispatch) are single conditional statements or fenced transactions, so the
 * outcome does not depend on which coordinator the broker handed a message to.
 */
export interface CoordinatorStore {
  /** Inserts or refreshes devices; a status older than the stored lastSeen is ignored. Returns the ids applied. */
  upsertDevices(statuses: readonly DeviceStatus[]): Promise<string[]>;
  /** Last Will: marks a device offline unless a newer status has been seen. */
  markOffline(deviceId: string, at: number): Promise<boolean>;
  /** Keeps the latest telemetry of a known device (older readings are ignored). */
  recordTelemetry(deviceId: string, telemetry: JsonObject, at: number): Promise<boolean>;
  getDevice(deviceId: string): Promise<Device | null>;
  /** Devices ordered by id. */
  listDevices(filter: DeviceFilter, page: PageRequest): Promise<Page<Device>>;
  /**
   * Only the ids of the devices listDevices would return, same order and cursors: what a rollout
   * tick needs of its targets. Whole rows of a 10,000-device fleet (telemetry, capacity, groups
   * parsed) cost 0.7 s and 30 MB of garbage per tick.
   */
  listDeviceIds(filter: DeviceFilter, page: PageRequest): Promise<Page<string>>;
  countDevices(filter: DeviceFilter): Promise<number>;

  /** Content-addressed: a second put of the same sha256 changes nothing and returns inserted: false. */
  putArtifact(artifact: ArtifactInput): Promise<{ inserted: boolean; artifact: Artifact }>;
  getArtifact(sha256: string): Promise<Artifact | null>;
  listArtifacts(filter: { name?: string; kind?: string }): Promise<Artifact[]>;
  /** 1 + the highest version stored under that name (1 for a new name). */
  nextArtifactVersion(name: string): Promise<number>;

  /** The spec is validated here; a duplicate id throws EDGEKT_ERR_STORE_CONFLICT. */
  createRollout(input: { id: string; spec: RolloutSpecInput; state?: RolloutState }): Promise<Rollout>;
  getRollout(id: string): Promise<Rollout | null>;
  listRollouts(filter: { states?: readonly RolloutState[] }): Promise<Rollout[]>;
  /** Compare-and-set: moves to `to` only from one of `from` (any state when omitted); null when it did not move. */
  setRolloutState(id: string, to: RolloutState, from?: readonly RolloutState[]): Promise<Rollout | null>;

  /** Takes, renews (same owner) or takes over an expired lease; null while another owner holds it. */
  acquireRolloutLease(rolloutId: string, owner: string, ttlMs: number): Promise<RolloutLease | null>;
  releaseRolloutLease(lease: RolloutLease): Promise<boolean>;
  getRolloutLease(rolloutId: string): Promise<RolloutLease | null>;

  /**
   * Creates executions (state `dispatched`, seq 0) under a live lease; devices already in the rollout
   * and job ids already used are skipped. Returns only what it created, i.e. what to publish.
   * Throws EDGEKT_ERR_LEASE_LOST when the lease expired or changed hands.
   */
  dispatchExecutions(lease: RolloutLease, jobs: readonly { deviceId: string; jobId: string }[]): Promise<Execution[]>;
  /** A new attempt under a new job id (seq back to 0, attempts + 1); late updates of the old job then match nothing. */
  retryExecution(lease: RolloutLease, deviceId: string, newJobId: string): Promise<Execution | null>;
  getExecution(jobId: string): Promise<Execution | null>;
  /** Executions ordered by device id. */
  listExecutions(rolloutId: string, filter: { states?: readonly string[] }, page: PageRequest): Promise<Page<Execution>>;
  /** Executions per state, for staging and abort decisions. */
  countExecutions(rolloutId: string): Promise<Record<string, number>>;
  /** Applies an update only if its seq is above the stored one: duplicates and stale redeliveries change nothing. */
  applyJobUpdate(update: JobUpdate): Promise<{ applied: boolean; execution: Execution | null }>;

  /** Exactly once per jobId, whichever coordinator gets there first. */
  recordResult(result: ResultInput): Promise<{ inserted: boolean }>;
  getResult(jobId: string): Promise<Result | null>;
  /** Results in the order they were recorded. */
  listResults(filter: ResultFilter, page: PageRequest): Promise<Page<Result>>;

  createRound(input: { id: string; runId?: string; roundNumber: number; config: JsonObject; state: string; deadline: number | null }): Promise<Round>;
  getRound(id: string): Promise<Round | null>;
  setRoundState(id: string, state: string): Promise<Round | null>;
  /** Rounds in creation order, optionally of one run and in some states. */
  listRounds(filter: { runId?: string; states?: readonly string[] }): Promise<Round[]>;
  /** Compare-and-set close: moves to `state` with its result only from one of `from`; null when it did not move. */
  finishRound(id: string, state: string, result: JsonObject, from: readonly string[]): Promise<Round | null>;

  /**
   * A duplicate id throws EDGEKT_ERR_STORE_CONFLICT. `roundNumber` (default 0): the round the
   * global is from, so a run can go on from another's round-N global (the federated bench runs
   * each of its rounds this way, with its own global); its next round is roundNumber + 1.
   */
  createFederatedRun(input: { id: string; spec: JsonObject; globalSha256: string; roundNumber?: number }): Promise<FederatedRun>;
  getFederatedRun(id: string): Promise<FederatedRun | null>;
  /** Runs by creation time. */
  listFederatedRuns(filter: { states?: readonly string[] }): Promise<FederatedRun[]>;
  /** Applies `patch` only while the run is in one of `from` (any state when omitted); null when nothing moved. */
  updateFederatedRun(id: string, patch: FederatedRunPatch, from?: readonly string[]): Promise<FederatedRun | null>;
  /** Takes, renews (same owner) or takes over an expired lease on a run's rounds; null while another owner holds it. */
  acquireFederatedLease(runId: string, owner: string, ttlMs: number): Promise<FederatedLease | null>;
  releaseFederatedLease(lease: FederatedLease): Promise<boolean>;
  /** One update per device per round: a second one returns inserted: false. */
  addRoundUpdate(update: Omit<RoundUpdate, 'receivedAt'>): Promise<{ inserted: boolean }>;
  listRoundUpdates(roundId: string): Promise<RoundUpdate[]>;

  /** Idempotent. A PostgreSQL store given a pool leaves the pool open: its owner ends it. */
  close(): Promise<void>;
}
