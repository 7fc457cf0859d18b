/**
 * Checkpoints of a compression run, on model *bytes* (store/ ranks below model/, so it never sees a
 * tfjs model). The CLI keeps them in directories, the agent in its SQLite job store; both pass the
 * contract suite in test/contracts/checkpoint-store.contract.ts.
 */

/** A tfjs LayersModel serialized to one shard: model.json text and weights.bin bytes. */
export interface ModelBytes {
  modelJson: string;
  weights: Uint8Array;
}

export interface Checkpoint {
  /** JSON-serialisable stage metadata; the caller parses it with zod on load. */
  meta: unknown;
  /** The stage's model, or null for a stage that produces figures only. */
  model: ModelBytes | null;
}

export interface CheckpointStore {
  /** The checkpoint of a stage, or null if that stage never completed. */
  load(stage: string): Promise<Checkpoint | null>;
  /** Replaces a stage's checkpoint atomically: a crash mid-save leaves the old one or none, never half. */
  save(stage: string, checkpoint: Checkpoint): Promise<void>;
  /** Removes one stage's checkpoint (no-op when absent). */
  remove(stage: string): Promise<void>;
  /** Names of the stages that hold a checkpoint, sorted ascending. */
  list(): Promise<string[]>;
  /** Removes every checkpoint of the run. */
  clear(): Promise<void>;
}
