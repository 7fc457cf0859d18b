import { createHash } from 'node:crypto';
import { JobMessageSchema, type JobMessage } from '../config/messages.js';
import type { Manifest } from '../config/manifest.js';
import { EdgektError, toEdgektError } from '../core/errors.js';
import { verifyManifest, type TrustedKeys } from '../transport/signing.js';

/** What intake needs to judge a job without side effects (the daemon passes its live values). */
export interface IntakeContext {
  deviceId: string;
  groups: readonly string[];
  trustedKeys: TrustedKeys;
  datasets: Readonly<Record<string, string>>;
  maxArtifactBytes: number;
  now: number;
  /** Last accepted version of a manifest name (anti-rollback: only newer versions pass). */
  lastAccepted(name: string): number | null;
}

export type Intake =
  | { ok: true; kind: 'compress'; message: Extract<JobMessage, { type: 'compress' }>; manifest: Manifest; digest: string; datasetSpec: string }
  | { ok: true; kind: 'cancel'; message: Extract<JobMessage, { type: 'cancel' }> }
  | { ok: false; jobId: string; error: EdgektError };

export function manifestDigest(envelope: unknown): string {
  return createHash('sha256').update(JSON.stringify(envelope)).digest('hex');
}

/** The `type` of a JSON payload on the jobs topic (dispatch: job offers vs round invites), or null. */
export function payloadType(payload: Uint8Array): string | null {
  try {
    const t = (JSON.parse(Buffer.from(payload).toString('utf8')) as { type?: unknown } | null)?.type;
    return typeof t === 'string' ? t : null;
  } catch {
    return null;
  }
}

/**
 * Parses and judges one payload from `devices/{id}/jobs`, before anything is acted on: JSON, the
 * message schema, the manifest signature, expiry, target, version (strictly newer than the last
 * accepted: coordinators sign a fresh version per dispatch, retries included), size and dataset.
 * Refusals come back as data with their code; a payload too broken to name its job gets a jobId
 * derived from its bytes, so the refusal is still reported once.
 */
export function judgeJobPayload(payload: Uint8Array, c: IntakeContext): Intake {
  const fallbackId = `malformed-${createHash('sha256').update(payload).digest('hex').slice(0, 16)}`;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return { ok: false, jobId: fallbackId, error: new EdgektError('EDGEKT_ERR_MALFORMED', 'job message is not JSON') };
  }
  const parsed = JobMessageSchema.safeParse(json);
  if (!parsed.success) {
    const jobId = typeof (json as { jobId?: unknown })?.jobId === 'string' && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test((json as { jobId: string }).jobId) ? (json as { jobId: string }).jobId : fallbackId;
    const where = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    return { ok: false, jobId, error: new EdgektError('EDGEKT_ERR_MALFORMED', `job message: ${where}`) };
  }
  const message = parsed.data;
  if (message.type === 'cancel') return { ok: true, kind: 'cancel', message };
  try {
    const digest = manifestDigest(message.manifest);
    const peek = (message.manifest as { manifest?: { name?: unknown } } | null)?.manifest?.name;
    const lastVersion = typeof peek === 'string' ? c.lastAccepted(peek) ?? undefined : undefined;
    const manifest = verifyManifest(message.manifest, {
      trustedKeys: c.trustedKeys, now: c.now, deviceId: c.deviceId, groups: c.groups, maxBytes: c.maxArtifactBytes,
      ...(lastVersion !== undefined ? { lastVersion } : {}),
    });
    if (manifest.kind !== 'teacher') throw new EdgektError('EDGEKT_ERR_MALFORMED', `a compress job needs a teacher manifest, got ${manifest.kind}`);
    const datasetSpec = c.datasets[message.dataset];
    if (datasetSpec === undefined) {
      throw new EdgektError('EDGEKT_ERR_DATASET_UNKNOWN', `dataset "${message.dataset}" is not configured on ${c.deviceId} (has: ${Object.keys(c.datasets).join(', ') || 'none'})`);
    }
    return { ok: true, kind: 'compress', message, manifest, digest, datasetSpec };
  } catch (e) {
    return { ok: false, jobId: message.jobId, error: toEdgektError(e) };
  }
}
