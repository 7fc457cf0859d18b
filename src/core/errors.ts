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
  EDGEKT_ERR_WORKER: 'a training worker thread failed, exited or was used after dispose',
  EDGEKT_ERR_JOB_SPEC: 'a compression job spec is invalid (the message names each bad field)',
  EDGEKT_ERR_ABORTED: 'a job was cancelled; its checkpoints hold the progress so far',
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
    case 'EDGEKT_ERR_BACKEND':
    case 'EDGEKT_ERR_WORKER':
    case 'EDGEKT_ERR_ABORTED':
      return EXIT.FAILURE;
    default:
      return EXIT.BAD_INPUT;
  }
}

/** Throws EDGEKT_ERR_ABORTED once `signal` is aborted: long jobs call it at their safe points. */
export function throwIfAborted(signal: AbortSignal | undefined, where: string): void {
  if (signal?.aborted) throw new EdgektError('EDGEKT_ERR_ABORTED', `aborted ${where}`);
}
