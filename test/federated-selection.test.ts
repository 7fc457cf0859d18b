import { describe, expect, it } from 'vitest';
import { RoundSelectionSchema } from '../src/config/federated.js';
import { selectRoundClients, type SelectableDevice } from '../src/coordinator/rounds/selection.js';

const idle = { activeJob: null, paused: null };
const dev = (id: string, o: Partial<SelectableDevice> = {}): SelectableDevice => ({ id, online: true, profile: 'pi4', telemetry: idle, ...o });
const fleet = Array.from({ length: 10 }, (_, i) => dev(`d${i}`));
const sel = (o: object) => RoundSelectionSchema.parse(o);
const at = new Date(2026, 0, 5, 10, 30); // a Monday, 10:30 local time

describe('round selection (pure)', () => {
  it('invites ⌈fraction · eligible⌉ devices, at least minCount, deterministically for a seed and round', () => {
    const a = selectRoundClients({ devices: fleet, selection: sel({ fraction: 0.25, minCount: 1 }), seed: 7, round: 1, now: at });
    expect(a.ok && a.selected).toHaveLength(3); // ⌈2.5⌉
    expect(selectRoundClients({ devices: [...fleet].reverse(), selection: sel({ fraction: 0.25 }), seed: 7, round: 1, now: at })).toEqual(a);
    const b = selectRoundClients({ devices: fleet, selection: sel({ fraction: 0.1, minCount: 4 }), seed: 7, round: 1, now: at });
    expect(b.ok && b.selected).toHaveLength(4);
    // Another round or seed draws another subset (over a few draws, not always the same three).
    const draws = new Set([1, 2, 3, 4, 5].map((round) => JSON.stringify((selectRoundClients({ devices: fleet, selection: sel({ fraction: 0.25 }), seed: 7, round, now: at }) as { selected: string[] }).selected)));
    expect(draws.size).toBeGreaterThan(1);
  });

  it('keeps only online devices of the listed profiles and, with idleOnly, those with idle telemetry', () => {
    const devices = [
      dev('ok'), dev('off', { online: false }), dev('other', { profile: 'jetson' }), dev('busy', { telemetry: { activeJob: { jobId: 'j', state: 'pruning' }, paused: null } }),
      dev('paused', { telemetry: { activeJob: null, paused: 'outside window' } }), dev('silent', { telemetry: null }), dev('noprofile', { profile: null }),
    ];
    const r = selectRoundClients({ devices, selection: sel({ profiles: ['pi4'] }), seed: 0, round: 1, now: at });
    expect(r).toMatchObject({ ok: true, selected: ['ok'], eligible: ['ok'] });
    const any = selectRoundClients({ devices, selection: sel({ idleOnly: false }), seed: 0, round: 1, now: at });
    expect(any.ok && any.selected).toEqual(['busy', 'noprofile', 'ok', 'other', 'paused', 'silent']);
  });

  it('waits (quorum) with fewer eligible devices than minCount, and outside the fleet window', () => {
    expect(selectRoundClients({ devices: fleet.slice(0, 2), selection: sel({ minCount: 3 }), seed: 0, round: 1, now: at })).toMatchObject({ ok: false, reason: 'quorum' });
    expect(selectRoundClients({ devices: fleet, selection: sel({ window: '* 2-4 * * *' }), seed: 0, round: 1, now: at })).toMatchObject({ ok: false, reason: 'window' });
    expect(selectRoundClients({ devices: fleet, selection: sel({ window: '* 10 * * 1' }), seed: 0, round: 1, now: at }).ok).toBe(true);
  });
});
