import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/core/clock.js';
import type { CoordinatorStore, DeviceFilter, DeviceStatus, RolloutSpecInput } from '../../src/store/coordinator/types.js';

/** A clock the test moves by hand; every store instance of one test shares it. */
export interface FakeClock extends Clock {
  set(ms: number): void;
  advance(ms: number): void;
}

export function fakeClock(start = 1_700_000_000_000): FakeClock {
  let t = start;
  return { now: () => t, hrMs: () => t, set: (ms) => void (t = ms), advance: (ms) => void (t += ms) };
}

export interface CoordinatorStoreFixture {
  store: CoordinatorStore;
  /** Another store on the same database, as a second coordinator process would open it. */
  open(): Promise<CoordinatorStore>;
  cleanup(): Promise<void>;
}

export const SHA = (n: number): string => n.toString(16).padStart(64, '0');

export const status = (id: string, over: Partial<DeviceStatus> = {}): DeviceStatus => ({
  id, online: true, profile: 'rpi4', groups: [], versions: { agent: '0.1.0' }, capacity: { memoryMb: 4096 }, state: 'idle', lastSeen: 1000, ...over,
});

export const spec = (over: Partial<RolloutSpecInput> = {}): RolloutSpecInput => ({
  teacherSha256: SHA(1), target: { kind: 'all' }, staging: { kind: 'percentages', steps: [10, 100] }, ...over,
});

/** 2,500 devices whose attributes follow their index, so the expected filter counts can be computed. */
function fleet(n: number): DeviceStatus[] {
  return Array.from({ length: n }, (_, i) => status(`dev-${String(i).padStart(5, '0')}`, {
    profile: `p${i % 3}`, online: i % 4 !== 0, state: i % 5 === 0 ? 'busy' : 'idle',
    groups: i % 10 === 0 ? ['even', 'tens'] : i % 2 === 0 ? ['even'] : ['odd'], lastSeen: 1000 + i,
  }));
}

function matches(d: DeviceStatus, f: DeviceFilter): boolean {
  return (f.profile === undefined || d.profile === f.profile) && (f.online === undefined || d.online === f.online)
    && (f.state === undefined || d.state === f.state) && (f.group === undefined || d.groups.includes(f.group));
}

/**
 * The behaviour every CoordinatorStore must have. `make` returns a fresh, empty database per call;
 * the clock it is given drives leases and recorded times.
 */
export function coordinatorStoreContract(name: string, make: (clock: FakeClock) => Promise<CoordinatorStoreFixture>): void {
  const withStore = (fn: (f: CoordinatorStoreFixture, clock: FakeClock) => Promise<void>) => async () => {
    const clock = fakeClock();
    const f = await make(clock);
    try {
      await fn(f, clock);
    } finally {
      await f.cleanup();
    }
  };

  describe(`CoordinatorStore contract: ${name}`, () => {
    it('upserts devices, ignores stale statuses, marks offline, keeps the latest telemetry', withStore(async ({ store }) => {
      expect(await store.upsertDevices([status('a', { groups: ['lab', 'eu'] }), status('b')])).toEqual(['a', 'b']);
      expect(await store.upsertDevices([status('a', { lastSeen: 500, profile: 'old' })])).toEqual([]);
      expect(await store.upsertDevices([status('a', { lastSeen: 2000, groups: ['eu'], versions: { agent: '0.2.0' } })])).toEqual(['a']);
      const a = await store.getDevice('a');
      expect(a).toMatchObject({ id: 'a', online: true, profile: 'rpi4', groups: ['eu'], versions: { agent: '0.2.0' }, lastSeen: 2000, telemetry: null });
      expect(a?.capacity).toEqual({ memoryMb: 4096 });
      expect(await store.markOffline('a', 1500)).toBe(false);
      expect(await store.markOffline('a', 2500)).toBe(true);
      expect((await store.getDevice('a'))?.online).toBe(false);
      expect(await store.markOffline('nope', 2500)).toBe(false);
      expect(await store.recordTelemetry('b', { cpu: 0.5, tempC: 61 }, 3000)).toBe(true);
      expect(await store.recordTelemetry('b', { cpu: 0.9 }, 2000)).toBe(false);
      expect(await store.recordTelemetry('nope', { cpu: 0.9 }, 2000)).toBe(false);
      expect(await store.getDevice('b')).toMatchObject({ telemetry: { cpu: 0.5, tempC: 61 }, telemetryAt: 3000 });
      expect(await store.getDevice('nope')).toBeNull();
    }));

    it('pages 2,500 devices with filters and counts them', withStore(async ({ store }) => {
      const all = fleet(2500);
      expect((await store.upsertDevices(all)).length).toBe(2500);
      const filters: DeviceFilter[] = [{}, { profile: 'p1' }, { group: 'tens' }, { online: false }, { state: 'busy' }, { profile: 'p2', group: 'even', online: true, state: 'idle' }];
      for (const f of filters) {
        const expected = all.filter((d) => matches(d, f)).map((d) => d.id).sort();
        expect(await store.countDevices(f)).toBe(expected.length);
        const seen: string[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const page = await store.listDevices(f, { limit: 400, cursor });
          for (const d of page.items) expect(matches(d, f)).toBe(true);
          seen.push(...page.items.map((d) => d.id));
          cursor = page.nextCursor;
          pages++;
        } while (cursor !== null);
        expect(seen).toEqual(expected);
        expect(pages).toBe(Math.max(1, Math.ceil(expected.length / 400)));
        const ids: string[] = [];
        cursor = null;
        do {
          const page = await store.listDeviceIds(f, { limit: 400, cursor });
          ids.push(...page.items);
          cursor = page.nextCursor;
        } while (cursor !== null);
        expect(ids).toEqual(expected);
      }
      const first = await store.listDevices({ group: 'tens' }, { limit: 3 });
      expect(first.items.map((d) => [d.id, d.groups])).toEqual([['dev-00000', ['even', 'tens']], ['dev-00010', ['even', 'tens']], ['dev-00020', ['even', 'tens']]]);
      await expect(store.listDevices({}, { limit: 0 })).rejects.toMatchObject({ code: 'EDGEKT_ERR_USAGE' });
    }));

    it('stores artifacts by sha256 and numbers versions per name', withStore(async ({ store }) => {
      const art = { sha256: SHA(1), kind: 'teacher', name: 'fmnist-vgg', version: 1, size: 3_512_424, location: 'artifacts/aa/bb', manifest: { signed: { v: 1 }, sig: 'x' } };
      expect(await store.nextArtifactVersion('fmnist-vgg')).toBe(1);
      expect((await store.putArtifact(art)).inserted).toBe(true);
      const again = await store.putArtifact({ ...art, location: 'elsewhere' });
      expect(again.inserted).toBe(false);
      expect(again.artifact.location).toBe('artifacts/aa/bb');
      await expect(store.putArtifact({ ...art, sha256: SHA(2) })).rejects.toMatchObject({ code: 'EDGEKT_ERR_STORE_CONFLICT' });
      await store.putArtifact({ ...art, sha256: SHA(3), version: 2, kind: 'student' });
      expect(await store.nextArtifactVersion('fmnist-vgg')).toBe(3);
      expect((await store.getArtifact(SHA(1)))?.manifest).toEqual({ signed: { v: 1 }, sig: 'x' });
      expect((await store.listArtifacts({ kind: 'student' })).map((a) => a.sha256)).toEqual([SHA(3)]);
      expect(await store.getArtifact(SHA(9))).toBeNull();
    }));

    it('validates rollout specs and moves state only from the expected states', withStore(async ({ store }, clock) => {
      await expect(store.createRollout({ id: 'r0', spec: { ...spec(), teacherSha256: 'short' } })).rejects.toMatchObject({ code: 'EDGEKT_ERR_ROLLOUT_SPEC' });
      const r = await store.createRollout({ id: 'r1', spec: spec({ staging: { kind: 'rate', perMinute: 10, incrementFactor: 2 } }) });
      expect(r).toMatchObject({ state: 'scheduled', startedAt: null, finishedAt: null });
      expect(r.spec.retries).toEqual({ max: 0, backoffMs: 0 });
      await expect(store.createRollout({ id: 'r1', spec: spec() })).rejects.toMatchObject({ code: 'EDGEKT_ERR_STORE_CONFLICT' });
      clock.advance(1000);
      expect(await store.setRolloutState('r1', 'running', ['paused'])).toBeNull();
      const running = await store.setRolloutState('r1', 'running', ['scheduled']);
      expect(running).toMatchObject({ state: 'running', startedAt: clock.now(), finishedAt: null });
      clock.advance(1000);
      expect(await store.setRolloutState('r1', 'completed', ['running'])).toMatchObject({ state: 'completed', startedAt: clock.now() - 1000, finishedAt: clock.now() });
      expect(await store.setRolloutState('nope', 'running')).toBeNull();
      await store.createRollout({ id: 'r2', spec: spec({ target: { kind: 'devices', deviceIds: ['a'] } }) });
      expect((await store.listRollouts({ states: ['scheduled', 'running'] })).map((x) => x.id)).toEqual(['r2']);
      expect((await store.getRollout('r2'))?.spec.target).toEqual({ kind: 'devices', deviceIds: ['a'] });
    }));

    it('leases a rollout to one owner at a time, with expiry, takeover and fencing', withStore(async ({ store, open }, clock) => {
      const other = await open();
      try {
        await store.createRollout({ id: 'r1', spec: spec() });
        const a = await store.acquireRolloutLease('r1', 'coord-a', 10_000);
        expect(a).toMatchObject({ owner: 'coord-a', fence: 1, expiresAt: clock.now() + 10_000 });
        expect(await other.acquireRolloutLease('r1', 'coord-b', 10_000)).toBeNull();
        clock.advance(5000);
        const renewed = await store.acquireRolloutLease('r1', 'coord-a', 10_000);
        expect(renewed).toMatchObject({ fence: 1, expiresAt: clock.now() + 10_000 });
        expect(await store.dispatchExecutions(renewed!, [{ deviceId: 'd1', jobId: 'j1' }])).toHaveLength(1);
        clock.advance(10_000);
        const b = await other.acquireRolloutLease('r1', 'coord-b', 10_000);
        expect(b).toMatchObject({ owner: 'coord-b', fence: 2 });
        await expect(store.dispatchExecutions(renewed!, [{ deviceId: 'd2', jobId: 'j2' }])).rejects.toMatchObject({ code: 'EDGEKT_ERR_LEASE_LOST' });
        await expect(store.retryExecution(renewed!, 'd1', 'j1b')).rejects.toMatchObject({ code: 'EDGEKT_ERR_LEASE_LOST' });
        expect(await store.acquireRolloutLease('r1', 'coord-a', 10_000)).toBeNull();
        expect(await store.releaseRolloutLease(renewed!)).toBe(false);
        expect(await other.releaseRolloutLease(b!)).toBe(true);
        expect(await store.acquireRolloutLease('r1', 'coord-a', 10_000)).toMatchObject({ owner: 'coord-a', fence: 3 });
        expect(await store.getRolloutLease('r1')).toMatchObject({ owner: 'coord-a', fence: 3 });
        const restarted = await open();
        const carried = await restarted.acquireRolloutLease('r1', 'coord-a', 10_000);
        expect(carried).toMatchObject({ owner: 'coord-a', fence: 3 });
        expect(await restarted.dispatchExecutions(carried!, [{ deviceId: 'd2', jobId: 'j2' }])).toHaveLength(1);
        expect((await other.getExecution('j1'))?.deviceId).toBe('d1');
      } finally {
        await other.close();
      }
    }));

    it('dispatches each device once, applies job updates by seq and retries under a new job id', withStore(async ({ store }, clock) => {
      await store.createRollout({ id: 'r1', spec: spec(), state: 'running' });
      const lease = (await store.acquireRolloutLease('r1', 'c', 60_000))!;
      const jobs = Array.from({ length: 25 }, (_, i) => ({ deviceId: `d${String(i).padStart(2, '0')}`, jobId: `j${i}` }));
      expect((await store.dispatchExecutions(lease, jobs)).map((e) => e.jobId)).toHaveLength(25);
      const again = await store.dispatchExecutions(lease, [{ deviceId: 'd00', jobId: 'j-new' }, { deviceId: 'd99', jobId: 'j1' }, { deviceId: 'd25', jobId: 'j25' }]);
      expect(again.map((e) => e.jobId)).toEqual(['j25']);
      expect(again[0]).toMatchObject({ state: 'dispatched', seq: 0, attempts: 1, dispatchedAt: clock.now(), error: null, progress: null });

      expect(await store.applyJobUpdate({ jobId: 'j3', seq: 3, state: 'running', progress: { stage: 'distill', fraction: 0.4 }, at: 5000 })).toMatchObject({ applied: true, execution: { seq: 3, state: 'running', updatedAt: 5000 } });
      const stale = await store.applyJobUpdate({ jobId: 'j3', seq: 2, state: 'accepted', at: 6000 });
      expect(stale).toMatchObject({ applied: false, execution: { seq: 3, state: 'running', progress: { stage: 'distill', fraction: 0.4 } } });
      expect((await store.applyJobUpdate({ jobId: 'j3', seq: 3, state: 'running', at: 7000 })).applied).toBe(false);
      const failed = await store.applyJobUpdate({ jobId: 'j3', seq: 4, state: 'failed', error: { code: 'EDGEKT_ERR_BUDGET_UNREACHABLE', message: 'p95 over', details: { p95: 9 } }, at: 8000 });
      expect(failed.execution).toMatchObject({ state: 'failed', error: { code: 'EDGEKT_ERR_BUDGET_UNREACHABLE', details: { p95: 9 } }, progress: { fraction: 0.4 } });
      expect(await store.applyJobUpdate({ jobId: 'unknown', seq: 1, state: 'running', at: 1 })).toEqual({ applied: false, execution: null });
      await store.applyJobUpdate({ jobId: 'j4', seq: 1, state: 'succeeded', at: 9000 });

      const retried = await store.retryExecution(lease, 'd03', 'j3-2');
      expect(retried).toMatchObject({ jobId: 'j3-2', state: 'dispatched', seq: 0, attempts: 2, error: null });
      expect(await store.applyJobUpdate({ jobId: 'j3', seq: 9, state: 'running', at: 9500 })).toEqual({ applied: false, execution: null });
      expect((await store.applyJobUpdate({ jobId: 'j3-2', seq: 1, state: 'accepted', at: 9600 })).applied).toBe(true);
      expect(await store.retryExecution(lease, 'nobody', 'jx')).toBeNull();

      expect(await store.countExecutions('r1')).toEqual({ dispatched: 24, accepted: 1, succeeded: 1 });
      const page1 = await store.listExecutions('r1', { states: ['dispatched'] }, { limit: 20 });
      const page2 = await store.listExecutions('r1', { states: ['dispatched'] }, { limit: 20, cursor: page1.nextCursor });
      expect([...page1.items, ...page2.items].map((e) => e.deviceId)).toHaveLength(24);
      expect(page2.nextCursor).toBeNull();
      expect(page1.items.some((e) => e.deviceId === 'd03' || e.deviceId === 'd04')).toBe(false);
    }));

    it('records each result exactly once and lists them by rollout and device', withStore(async ({ store, open }) => {
      const other = await open();
      try {
        await store.createRollout({ id: 'r1', spec: spec() });
        const lease = (await store.acquireRolloutLease('r1', 'c', 60_000))!;
        await store.dispatchExecutions(lease, [{ deviceId: 'd1', jobId: 'j1' }, { deviceId: 'd2', jobId: 'j2' }]);
        const result = (jobId: string, deviceId: string) => ({ jobId, deviceId, report: { accuracy: 0.964, params: 10_554 }, studentSha256: SHA(7), studentManifest: { v: 1 } });
        expect(await store.recordResult(result('j1', 'd1'))).toEqual({ inserted: true });
        expect(await other.recordResult(result('j1', 'd1'))).toEqual({ inserted: false });
        expect(await other.recordResult(result('j2', 'd2'))).toEqual({ inserted: true });
        expect(await store.recordResult(result('manual', 'd1'))).toEqual({ inserted: true });
        expect(await store.getResult('j1')).toMatchObject({ rolloutId: 'r1', report: { accuracy: 0.964 }, studentManifest: { v: 1 } });
        expect((await store.getResult('manual'))?.rolloutId).toBeNull();
        expect((await store.listResults({ rolloutId: 'r1' }, { limit: 10 })).items.map((r) => r.jobId)).toEqual(['j1', 'j2']);
        const p1 = await store.listResults({ deviceId: 'd1' }, { limit: 1 });
        const p2 = await store.listResults({ deviceId: 'd1' }, { limit: 1, cursor: p1.nextCursor });
        expect([...p1.items, ...p2.items].map((r) => r.jobId)).toEqual(['j1', 'manual']);
        expect(p2.nextCursor).toBeNull();
      } finally {
        await other.close();
      }
    }));

    it('keeps federated rounds and one update per device per round', withStore(async ({ store }, clock) => {
      const round = await store.createRound({ id: 'fr1', roundNumber: 1, config: { strategy: 'masked-fedavg', minClients: 2 }, state: 'open', deadline: clock.now() + 60_000 });
      expect(round).toMatchObject({ roundNumber: 1, state: 'open', config: { strategy: 'masked-fedavg' } });
      await expect(store.createRound({ id: 'fr1', roundNumber: 1, config: {}, state: 'open', deadline: null })).rejects.toMatchObject({ code: 'EDGEKT_ERR_STORE_CONFLICT' });
      expect(await store.addRoundUpdate({ roundId: 'fr1', deviceId: 'd2', metadata: { samples: 600 }, payloadLocation: SHA(4) })).toEqual({ inserted: true });
      expect(await store.addRoundUpdate({ roundId: 'fr1', deviceId: 'd2', metadata: { samples: 1 }, payloadLocation: SHA(5) })).toEqual({ inserted: false });
      await store.addRoundUpdate({ roundId: 'fr1', deviceId: 'd1', metadata: { samples: 400 }, payloadLocation: SHA(6) });
      expect((await store.listRoundUpdates('fr1')).map((u) => [u.deviceId, u.metadata.samples])).toEqual([['d1', 400], ['d2', 600]]);
      expect(await store.setRoundState('fr1', 'aggregating')).toMatchObject({ state: 'aggregating' });
      expect(await store.getRound('none')).toBeNull();
    }));

    it('keeps federated runs and lists and closes their rounds (compare-and-set)', withStore(async ({ store, open }, clock) => {
      const run = await store.createFederatedRun({ id: 'run1', spec: { rounds: 3 }, globalSha256: SHA(1) });
      expect(run).toMatchObject({ id: 'run1', state: 'running', roundNumber: 0, attempt: 1, globalSha256: SHA(1), serverState: null });
      await expect(store.createFederatedRun({ id: 'run1', spec: {}, globalSha256: SHA(1) })).rejects.toMatchObject({ code: 'EDGEKT_ERR_STORE_CONFLICT' });
      // A run can start later than round 1 (the federated bench resumes a fleet's rounds under a new run id).
      expect(await store.createFederatedRun({ id: 'run-late', spec: {}, globalSha256: SHA(1), roundNumber: 4 })).toMatchObject({ id: 'run-late', roundNumber: 4 });
      expect((await store.getFederatedRun('run-late'))!.roundNumber).toBe(4);
      await store.createRound({ id: 'run1.r1.1', runId: 'run1', roundNumber: 1, config: { round: 1 }, state: 'open', deadline: clock.now() + 1000 });
      clock.advance(5);
      await store.createRound({ id: 'other', roundNumber: 1, config: {}, state: 'open', deadline: null });
      expect((await store.listRounds({ runId: 'run1' })).map((r) => [r.id, r.runId, r.result])).toEqual([['run1.r1.1', 'run1', null]]);
      expect((await store.listRounds({ states: ['open'] })).map((r) => r.id)).toEqual(['run1.r1.1', 'other']);
      expect(await store.listRounds({ states: [] })).toEqual([]);
      const other = await open();
      try {
        const [a, b] = await Promise.all([
          store.finishRound('run1.r1.1', 'completed', { included: ['d1'] }, ['open']),
          other.finishRound('run1.r1.1', 'failed', { included: [] }, ['open']),
        ]);
        expect([a, b].filter((x) => x !== null)).toHaveLength(1);
      } finally {
        await other.close();
      }
      expect(await store.finishRound('run1.r1.1', 'aborted', {}, ['open'])).toBeNull();
      expect((await store.getRound('run1.r1.1'))!.result).not.toBeNull();
      const moved = await store.updateFederatedRun('run1', { roundNumber: 1, attempt: 1, globalSha256: SHA(2), serverState: { step: 1, sha256: SHA(3) } }, ['running']);
      expect(moved).toMatchObject({ roundNumber: 1, globalSha256: SHA(2), serverState: { step: 1, sha256: SHA(3) } });
      expect(await store.updateFederatedRun('run1', { state: 'completed' }, ['aborted'])).toBeNull();
      expect(await store.updateFederatedRun('run1', { state: 'completed' })).toMatchObject({ state: 'completed' });
      expect((await store.listFederatedRuns({ states: ['running'] })).map((r) => r.id)).toEqual(['run-late']);
      expect((await store.listFederatedRuns({})).map((r) => r.id).sort()).toEqual(['run-late', 'run1']);
      expect(await store.getFederatedRun('nope')).toBeNull();
    }));

    it('leases a federated run to one owner at a time; expiry or release hands it over with a higher fence', withStore(async ({ store }, clock) => {
      await store.createFederatedRun({ id: 'runL', spec: { rounds: 1 }, globalSha256: SHA(1) });
      const a = await store.acquireFederatedLease('runL', 'c1', 1000);
      expect(a).toMatchObject({ runId: 'runL', owner: 'c1', fence: 1 });
      expect(await store.acquireFederatedLease('runL', 'c2', 1000)).toBeNull();
      expect(await store.acquireFederatedLease('runL', 'c1', 1000)).toMatchObject({ owner: 'c1', fence: 1 });
      clock.advance(1001);
      const b = await store.acquireFederatedLease('runL', 'c2', 1000);
      expect(b).toMatchObject({ owner: 'c2', fence: 2 });
      expect(await store.releaseFederatedLease(a!)).toBe(false);
      expect(await store.releaseFederatedLease(b!)).toBe(true);
      expect(await store.acquireFederatedLease('runL', 'c1', 1000)).toMatchObject({ owner: 'c1', fence: 3 });
    }));

    it('two instances racing on the same 500 updates and 100 results apply each once', withStore(async ({ store, open }) => {
      const other = await open();
      try {
        await store.createRollout({ id: 'r1', spec: spec(), state: 'running' });
        const lease = (await store.acquireRolloutLease('r1', 'c', 60_000))!;
        const jobs = Array.from({ length: 100 }, (_, i) => ({ deviceId: `d${i}`, jobId: `j${i}` }));
        await store.dispatchExecutions(lease, jobs);
        const updates = jobs.flatMap((j) => [1, 2, 3, 4, 5].map((seq) => ({ jobId: j.jobId, seq, state: seq === 5 ? 'succeeded' : `s${seq}`, at: seq })));
        const shuffled = [...updates].sort((x, y) => ((x.seq * 7919 + Number(x.jobId.slice(1))) % 13) - ((y.seq * 7919 + Number(y.jobId.slice(1))) % 13));
        const runs = [shuffled, [...shuffled].reverse()] as const;
        const outcomes = await Promise.all([store, other].map((s, k) => Promise.all(runs[k]!.map((u) => s.applyJobUpdate(u)))));
        const applied = new Map<string, number>();
        runs.forEach((run, k) => run.forEach((u, i) => {
          if (outcomes[k]![i]!.applied) applied.set(`${u.jobId}:${u.seq}`, (applied.get(`${u.jobId}:${u.seq}`) ?? 0) + 1);
        }));
        expect([...applied.values()].filter((n) => n !== 1)).toEqual([]);
        expect(jobs.filter((j) => applied.get(`${j.jobId}:5`) !== 1)).toEqual([]);
        const results = jobs.map((j) => ({ jobId: j.jobId, deviceId: j.deviceId, report: {}, studentSha256: SHA(2), studentManifest: {} }));
        const inserted = await Promise.all([...results.map((r) => store.recordResult(r)), ...results.map((r) => other.recordResult(r))]);
        expect(inserted.filter((x) => x.inserted)).toHaveLength(100);
        expect(await store.countExecutions('r1')).toEqual({ succeeded: 100 });
        const all = await other.listExecutions('r1', {}, { limit: 1000 });
        expect(all.items.every((e) => e.seq === 5)).toBe(true);
        expect((await store.listResults({ rolloutId: 'r1' }, { limit: 1000 })).items).toHaveLength(100);
      } finally {
        await other.close();
      }
    }));
  });
}
