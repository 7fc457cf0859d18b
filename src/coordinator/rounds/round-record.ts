import { parseRoundConfig, type RoundConfig } from '../../config/federated.js';
import type { ManifestFile } from '../../config/manifest.js';
import type { JsonObject, Round, RoundUpdate } from '../../store/coordinator/index.js';

/**
 * What the coordinator keeps in a round row's `config`: the RoundConfig the devices saw, plus the
 * invited devices, the attempt and the invite's files, so a restarted coordinator can carry the
 * round on (and re-send invites) from the store alone.
 */
export interface RoundRecord {
  config: RoundConfig;
  invited: string[];
  attempt: number;
  files: ManifestFile[];
}

export function roundRowConfig(r: RoundRecord): JsonObject {
  return { ...r.config, invited: r.invited, attempt: r.attempt, files: r.files } as unknown as JsonObject;
}

export function readRoundRecord(round: Round): RoundRecord {
  const { invited, attempt, files, ...config } = round.config as Record<string, unknown>;
  return {
    config: parseRoundConfig(config),
    invited: Array.isArray(invited) ? invited.filter((x): x is string => typeof x === 'string') : [],
    attempt: typeof attempt === 'number' ? attempt : 1,
    files: Array.isArray(files) ? (files as ManifestFile[]) : [],
  };
}

/** How an intake classified a device's report (a round_updates row's metadata). */
export type IntakeKind = 'update' | 'refused' | 'late' | 'failed';

export interface IntakeMeta {
  kind: IntakeKind;
  codes: string[];
  numSamples?: number;
  metrics?: Record<string, number>;
  message?: string;
}

export function readIntakeMeta(u: RoundUpdate): IntakeMeta {
  const m = u.metadata as Record<string, unknown>;
  const kind = m.kind === 'update' || m.kind === 'refused' || m.kind === 'late' || m.kind === 'failed' ? m.kind : 'refused';
  const codes = Array.isArray(m.codes) ? m.codes.filter((c): c is string => typeof c === 'string') : [];
  return {
    kind, codes,
    ...(typeof m.numSamples === 'number' ? { numSamples: m.numSamples } : {}),
    ...(m.metrics && typeof m.metrics === 'object' ? { metrics: m.metrics as Record<string, number> } : {}),
  };
}

/** The result as it is persisted, published and served. */
export const roundIdFor = (runId: string, round: number, attempt: number): string => `${runId}-r${round}-a${attempt}`.slice(0, 128);
