import { z } from 'zod';

/**
 * The JSON the coordinator store persists, as zod schemas: every JSON column is parsed on the way
 * out, so a row written by an older build or edited by hand fails loudly instead of being cast.
 */
export const jsonObject = z.record(z.string(), z.json());
export type JsonObject = z.infer<typeof jsonObject>;
export type Json = z.infer<ReturnType<typeof z.json>>;

/**
 * A JSON column's text once JSON.parse has read it: JSON by construction, so only its shape (an
 * object, not an array or a scalar) is checked. `jsonObject` walked every value of every row again
 * and was most of the coordinator's garbage: reading 10,000 results (signed manifests, reports)
 * allocated about 1.5 GB.
 */
export const parsedJsonObject = z.custom<JsonObject>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), 'not a JSON object');
/** Any parsed JSON value (see parsedJsonObject). */
export const parsedJson = z.custom<Json>(() => true);

/** An error as data, the way agents report `failed`/`rejected` (the code comes from the catalog). */
export const jobErrorSchema = z.object({
  code: z.string().min(1),
  message: z.string(),
  details: jsonObject.optional(),
});
export type JobError = z.infer<typeof jobErrorSchema>;

// The rollout spec is configuration (config/rollout.ts); the store persists and re-validates it.
export { rolloutSpecSchema, rolloutTargetSchema, rolloutStagingSchema, ROLLOUT_STATES, type RolloutSpec, type RolloutSpecInput, type RolloutState } from '../../config/rollout.js';
import { ROLLOUT_STATES } from '../../config/rollout.js';
export const rolloutStateSchema = z.enum(ROLLOUT_STATES);

/** Versions of the software on a device, e.g. { agent: '0.3.1', tfjs: '4.22.0' }. */
export const versionsSchema = z.record(z.string(), z.string());
