import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { cronAllows } from '../../config/cron-window.js';
import type { RoundSelectionSchema } from '../../config/federated.js';

export type RoundSelection = z.infer<typeof RoundSelectionSchema>;

/** What selection reads of a registry device (a store `Device` fits). */
export interface SelectableDevice {
  id: string;
  online: boolean;
  profile: string | null;
  /** Latest telemetry: `activeJob` and `paused` decide idleness; null = never heard, so not known to be idle. */
  telemetry: { activeJob?: unknown; paused?: unknown } | null;
}

export interface SelectionInput {
  devices: readonly SelectableDevice[];
  selection: RoundSelection;
  seed: number;
  round: number;
  /** Attempt of this round number (from 1): a retry draws again. */
  attempt?: number;
  /** The coordinator's clock (the fleet window is judged on it). */
  now: Date;
}

export type SelectionOutcome =
  | { ok: true; selected: string[]; eligible: string[] }
  /** `window`: outside the fleet window; `quorum`: fewer eligible devices than minCount. The round waits. */
  | { ok: false; reason: 'window' | 'quorum'; eligible: string[] };

const rank = (seed: number, round: number, attempt: number, id: string): string => createHash('sha256').update(`${seed}:${round}:${attempt}:${id}`).digest('hex');

/** Online, in the profile filter, and (with idleOnly) reporting no active job and no paused work. */
export function isEligible(d: SelectableDevice, s: RoundSelection): boolean {
  if (!d.online) return false;
  if (s.profiles.length > 0 && (d.profile === null || !s.profiles.includes(d.profile))) return false;
  if (!s.idleOnly) return true;
  return d.telemetry !== null && (d.telemetry.activeJob ?? null) === null && (d.telemetry.paused ?? null) === null;
}

/**
 * Picks a round's clients as a pure function: max(minCount, ⌈fraction · eligible⌉) of the eligible
 * devices, ordered by sha256(seed:round:attempt:id), so the same run, round and fleet always invite
 * the same devices (reproducible, and not biased toward low ids). Returned ids are sorted.
 */
export function selectRoundClients(i: SelectionInput): SelectionOutcome {
  const s = i.selection;
  const eligible = i.devices.filter((d) => isEligible(d, s)).map((d) => d.id).sort();
  if (s.window !== undefined && !cronAllows(s.window, i.now)) return { ok: false, reason: 'window', eligible };
  if (eligible.length < s.minCount) return { ok: false, reason: 'quorum', eligible };
  const count = Math.min(eligible.length, Math.max(s.minCount, Math.ceil(s.fraction * eligible.length)));
  const attempt = i.attempt ?? 1;
  const ranked = eligible.map((id) => ({ id, r: rank(i.seed, i.round, attempt, id) })).sort((a, b) => (a.r < b.r ? -1 : a.r > b.r ? 1 : 0));
  return { ok: true, selected: ranked.slice(0, count).map((x) => x.id).sort(), eligible };
}
