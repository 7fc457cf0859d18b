/**
 * One catalog of every error edgekt raises on purpose. Callers (tests, the CLI, the daemon's
 * `failed`/`rejected` reports) key on `code`, never on the message text, so codes are stable API.
 */
export const ERROR_CODES = {
  EDGEKT_ERR_USAGE: 'bad command-line usage or option value',
  EDGEKT_ERR_BACKEND: 'a tfjs backend could not be initialised',
  EDGEKT_ERR_DATA_NOT_FOUND: 'a dataset path does not exist',
  EDGEKT_ERR_DATA_FORMAT: 'a dataset file is malformed (bad magic, truncated, mismatched counts)',
  EDGEKT_ERR_DATA_IMAGE: 'an image file could not be decoded',
  EDGEKT_ERR_DATA_EMPTY: 'a dataset or class folder has no samples',
  EDGEKT_ERR_DATA_SPEC: 'a dataset spec string is not understood',
  EDGEKT_ERR_MODEL_FORMAT: 'a model file is not a valid tfjs LayersModel',
  EDGEKT_ERR_MODEL_UNSUPPORTED: 'a model uses a layer or configuration edgekt does not support',
  EDGEKT_ERR_MODEL_TOO_LARGE: 'a model declares more parameters or activation memory than allowed',
  EDGEKT_ERR_MODEL_WEIGHTS: 'model weight files are missing, truncated or non-finite',
  EDGEKT_ERR_PROFILE: 'a device profile is invalid or unknown',
  EDGEKT_ERR_BUDGET_UNREACHABLE: 'no pruned model met every budget',
  EDGEKT_ERR_PRUNE_PLAN: 'a pruning plan is inconsistent with the model',
  EDGEKT_ERR_CHECKPOINT: 'a checkpoint is corrupt or belongs to another run',
  EDGEKT_ERR_SIGNATURE: 'a manifest signature does not verify',
  EDGEKT_ERR_MALFORMED: 'a manifest or protocol message is not JSON or does not match its schema',
  EDGEKT_ERR_UNSIGNED: 'a manifest envelope carries no signature',
  EDGEKT_ERR_UNKNOWN_KEY: 'no signature of a manifest is by a trusted key',
  EDGEKT_ERR_EXPIRED: 'a manifest is past its expiry time',
  EDGEKT_ERR_REPLAY: 'a manifest version is not newer than the last one accepted for its name',
  EDGEKT_ERR_WRONG_TARGET: 'a manifest targets other devices or groups',
  EDGEKT_ERR_HASH: 'a block or file does not match its sha256',
  EDGEKT_ERR_TOO_LARGE: 'a manifest, artifact or request exceeds a size limit',
  EDGEKT_ERR_NOT_FOUND: 'a device, teacher, rollout or artifact does not exist (or is not held by the server asked)',
  EDGEKT_ERR_TRANSFER: 'a block transfer failed for good (retries exhausted, server refused, aborted)',
  EDGEKT_ERR_WORKER: 'a training worker thread failed, exited or was used after dispose',
  EDGEKT_ERR_CONFIG: 'an agent or coordinator config file is invalid (the message names each field)',
  EDGEKT_ERR_DISK_FULL: 'not enough free disk for an artifact on this device',
  EDGEKT_ERR_DATASET_UNKNOWN: 'a job names a dataset this device does not have',
  EDGEKT_ERR_COORDINATOR: 'the coordinator could not be reached or answered with an error',
  EDGEKT_ERR_AUTH: 'a request carried no bearer token',
  EDGEKT_ERR_FORBIDDEN: 'a token may not do what was asked (read-only token on an admin call)',
  EDGEKT_ERR_TIMEOUT: 'a device sent no update within the in-progress timeout',
  EDGEKT_ERR_STORE_SCHEMA: 'a store was written by a newer build, or a migration failed',
  EDGEKT_ERR_STORE_DATA: 'a persisted row failed validation on the way out',
  EDGEKT_ERR_STORE_CONFLICT: 'a row with that key already exists',
  EDGEKT_ERR_LEASE_LOST: 'a rollout lease expired or changed hands, so the write was refused',
  EDGEKT_ERR_ROLLOUT_SPEC: 'a rollout spec is invalid',
  EDGEKT_ERR_ABORTED: 'the operation was cancelled through its AbortSignal',
  EDGEKT_ERR_JOB_STATE: 'a job state change is not allowed from its current state (terminal, or not in the transition table)',
  EDGEKT_ERR_JOB_UNKNOWN: 'no job with that id is in the job store',
  EDGEKT_ERR_MANIFEST_VERSION: 'a manifest version is not newer than the last accepted one for its artifact (replay or downgrade)',
  EDGEKT_ERR_STORE: 'the local store is unusable or inconsistent (schema newer than this build, a row failing its schema, a ledger size mismatch)',
  EDGEKT_ERR_PUBLISH_TIMEOUT: 'an outbox message was not acknowledged by the broker in time',
  EDGEKT_ERR_PUBLISH_ABANDONED: 'an in-flight outbox message was given up on at stop (it stays queued and is sent on the next start)',
  EDGEKT_ERR_JOB_SPEC: 'a compression job spec is invalid (the message names each bad field)',
  EDGEKT_ERR_UPDATE_NONFINITE: 'a federated update carries NaN or Infinity (or a value float16 cannot hold)',
  EDGEKT_ERR_UPDATE_SHAPE: 'a federated update has a missing, extra or wrongly shaped tensor',
  EDGEKT_ERR_UPDATE_INDEX_MAP: 'a federated update index map does not match the global model or its own payload',
  EDGEKT_ERR_UPDATE_STALE: 'a federated update belongs to another round than the one being aggregated',
  EDGEKT_ERR_UPDATE_DUPLICATE: 'a second federated update from the same client in one round',
  EDGEKT_ERR_UPDATE_FORMAT: 'a federated update payload is not in the binary update format (magic, header schema, lengths, sample count)',
  EDGEKT_ERR_ROUND_LATE: 'a federated update was announced after its round deadline (or after the round closed); recorded, never aggregated',
  EDGEKT_ERR_ROUND_QUORUM: 'a federated round closed with fewer valid updates than its selection minCount',
  EDGEKT_ERR_ROUND_TRAIN: 'a device could not train for a federated round (its trainer threw, or it has none)',
  EDGEKT_ERR_ROUND_UNAVAILABLE: 'a device declined a federated round (federated disabled, work paused, past the deadline)',
  EDGEKT_ERR_ROUND_NOT_SELECTED: 'a federated update came from a device the round did not select',
  EDGEKT_ERR_INTERNAL: 'an unexpected internal failure',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class EdgektError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EdgektError';
    this.code = code;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isEdgektError(e: unknown): e is EdgektError {
  return e instanceof EdgektError;
}

/** Wraps anything thrown into an EdgektError so reports always carry a code. */
export function toEdgektError(e: unknown): EdgektError {
  if (e instanceof EdgektError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new EdgektError('EDGEKT_ERR_INTERNAL', message, {}, { cause: e });
}

/** CLI exit codes (documented in the README). */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  BAD_INPUT: 3,
  BUDGET_UNREACHABLE: 4,
} as const;

export function exitCodeFor(e: EdgektError): number {
  switch (e.code) {
    case 'EDGEKT_ERR_USAGE':
    case 'EDGEKT_ERR_JOB_SPEC':
      return EXIT.USAGE;
    case 'EDGEKT_ERR_BUDGET_UNREACHABLE':
      return EXIT.BUDGET_UNREACHABLE;
    case 'EDGEKT_ERR_INTERNAL':
    case 'EDGEKT_ERR_ABORTED':
    case 'EDGEKT_ERR_BACKEND':
    case 'EDGEKT_ERR_WORKER':
    case 'EDGEKT_ERR_TRANSFER':
      return EXIT.FAILURE;
    default:
      return EXIT.BAD_INPUT;
  }
}

/** Throws EDGEKT_ERR_ABORTED once `signal` is aborted: long jobs call it at their safe points. */
export function throwIfAborted(signal: AbortSignal | undefined, where: string): void {
  if (signal?.aborted) throw new EdgektError('EDGEKT_ERR_ABORTED', `aborted ${where}`);
}
