import { afterEach, describe, expect, it } from 'vitest';
import { JOB_STATES, JOB_TRANSITIONS, TERMINAL_STATES, type JobState } from '../src/store/job-states.js';
import { createJobStore, type JobStore, type JobUpdateMessage } from '../src/store/jobs.js';
import { codeOf } from './helpers/errors.js';
import { manualClock, tempDb, type TempDb } from './helpers/store-db.js';

let t: TempDb | undefined;
afterEach(() => t?.cleanup());

const topic = (jobId: string): string => `edgekt/v1/devices/pi-1/jobs/${jobId}/update`;
const HAPPY: JobState[] = ['downloading', 'verified', 'lightening', 'distilling', 'pruning', 'benchmarking', 'pruning', 'benchmarking', 'reporting', 'succeeded'];

function setup(progressIntervalMs = 1000): { jobs: JobStore; clock: ReturnType<typeof manualClock> } {
  t = tempDb();
  const clock = manualClock();
  return { jobs: createJobStore(t.db, { clock, updateTopic: topic, progressIntervalMs }), clock };
}

function messages(jobs: JobStore): Array<{ key: string; topic: string; msg: JobUpdateMessage }> {
  return jobs.outbox.pending(1000).map((r) => ({ key: r.key, topic: r.topic, msg: JSON.parse(String(r.payload)) as JobUpdateMessage }));
}

describe('job transition table', () => {
  it('terminal states are final; failed and canceled are reachable from every other state; rejected only before verified', () => {
    for (const s of JOB_STATES) {
      if (TERMINAL_STATES.has(s)) expect(JOB_TRANSITIONS[s]).toEqual([]);
      else expect(JOB_TRANSITIONS[s]).toEqual(expect.arrayContaining(['failed', 'canceled']));
    }
    const rejectable = JOB_STATES.filter((s) => JOB_TRANSITIONS[s].includes('rejected'));
    expect(rejectable).toEqual(['received', 'downloading']);
  });
});

describe('createJobStore', () => {
  it('tells its listener after each committed write that enqueued (so the pump is kicked), never inside an outer transaction', () => {
    t = tempDb();
    const clock = manualClock();
    let told = 0;
    const jobs = createJobStore(t.db, { clock, updateTopic: topic, progressIntervalMs: 0, onEnqueue: () => void told++ });
    jobs.receive('j1', {}, {});
    jobs.transition('j1', 'downloading');
    jobs.progress('j1', { done: 1 });
    expect(told).toBe(3);
    t.db.transaction(() => jobs.transition('j1', 'verified'))();
    expect(told).toBe(3);
  });

  it('receive is idempotent: a redelivery creates no second job and no second message', () => {
    const { jobs } = setup();
    const first = jobs.receive('j1', { profile: 'pi4' }, { version: 3 });
    const again = jobs.receive('j1', { profile: 'other' }, { version: 4 });
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.job).toEqual(first.job);
    expect(again.job.spec).toEqual({ profile: 'pi4' });
    expect(messages(jobs).map((m) => m.key)).toEqual(['j1:1']);
    expect(messages(jobs)[0]!.msg).toMatchObject({ kind: 'state', jobId: 'j1', seq: 1, state: 'received' });
  });

  it('each transition bumps seq by one and enqueues one update keyed jobId:seq, in order', () => {
    const { jobs, clock } = setup();
    jobs.receive('j1', {}, {});
    for (const to of HAPPY) {
      clock.advance(10);
      jobs.transition('j1', to, to === 'succeeded' ? { result: { student: 'sha256:ab' } } : {});
    }
    const job = jobs.get('j1')!;
    expect(job.state).toBe('succeeded');
    expect(job.seq).toBe(HAPPY.length + 1);
    const ms = messages(jobs);
    expect(ms.map((m) => m.key)).toEqual(Array.from({ length: HAPPY.length + 1 }, (_, i) => `j1:${i + 1}`));
    expect(ms.map((m) => m.msg.state)).toEqual(['received', ...HAPPY]);
    expect(ms.every((m) => m.topic === topic('j1'))).toBe(true);
    expect(ms.at(-1)!.msg).toMatchObject({ from: 'reporting', result: { student: 'sha256:ab' }, at: clock.now() });
  });

  it('an illegal transition throws EDGEKT_ERR_JOB_STATE and changes nothing', () => {
    const { jobs } = setup();
    jobs.receive('j1', {}, {});
    expect(codeOf(() => jobs.transition('j1', 'pruning'))).toBe('EDGEKT_ERR_JOB_STATE');
    jobs.transition('j1', 'downloading');
    jobs.transition('j1', 'verified');
    expect(codeOf(() => jobs.transition('j1', 'rejected', { error: { code: 'EDGEKT_ERR_SIGNATURE', message: 'x' } }))).toBe('EDGEKT_ERR_JOB_STATE');
    jobs.transition('j1', 'canceled');
    expect(codeOf(() => jobs.transition('j1', 'failed', { error: { code: 'EDGEKT_ERR_INTERNAL', message: 'x' } }))).toBe('EDGEKT_ERR_JOB_STATE');
    expect(jobs.get('j1')!.seq).toBe(4);
    expect(jobs.outbox.counts().pending).toBe(4);
    expect(codeOf(() => jobs.transition('nope', 'downloading'))).toBe('EDGEKT_ERR_JOB_UNKNOWN');
  });

  it('failed and rejected need an error code, which is stored and reported', () => {
    const { jobs } = setup();
    jobs.receive('j1', {}, {});
    expect(codeOf(() => jobs.transition('j1', 'rejected'))).toBe('EDGEKT_ERR_JOB_STATE');
    jobs.transition('j1', 'rejected', { error: { code: 'EDGEKT_ERR_SIGNATURE', message: 'bad signature' } });
    expect(jobs.get('j1')!.error).toEqual({ code: 'EDGEKT_ERR_SIGNATURE', message: 'bad signature' });
    expect(messages(jobs).at(-1)!.msg.error?.code).toBe('EDGEKT_ERR_SIGNATURE');
  });

  it('state change and outbox row are one transaction: a failing enqueue rolls the state back', () => {
    const { jobs } = setup();
    jobs.receive('j1', {}, {});
    t!.db.exec("CREATE TEMP TRIGGER no_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    expect(() => jobs.transition('j1', 'downloading')).toThrow();
    expect(jobs.get('j1')).toMatchObject({ state: 'received', seq: 1 });
    t!.db.exec('DROP TRIGGER no_outbox');
    jobs.transition('j1', 'downloading');
    expect(messages(jobs).map((m) => m.key)).toEqual(['j1:1', 'j1:2']);
  });

  it('progress updates the row every time but enqueues at most once per interval, with the current seq and a new progressSeq', () => {
    const { jobs, clock } = setup(1000);
    jobs.receive('j1', {}, {});
    jobs.transition('j1', 'downloading');
    jobs.progress('j1', { blocks: 1 });
    clock.advance(300);
    jobs.progress('j1', { blocks: 2 });
    expect(jobs.get('j1')!.progress).toEqual({ blocks: 2 });
    clock.advance(700);
    jobs.progress('j1', { blocks: 3 });
    const progress = messages(jobs).filter((m) => m.msg.kind === 'progress');
    expect(progress.map((m) => m.key)).toEqual(['j1:2:p1', 'j1:2:p2']);
    expect(progress.map((m) => m.msg.progress)).toEqual([{ blocks: 1 }, { blocks: 3 }]);
    expect(jobs.get('j1')).toMatchObject({ seq: 2, progressSeq: 2 });
  });

  it('pause and resume are a flag with a reason, reported as progress, cleared by a terminal state', () => {
    const { jobs } = setup();
    jobs.receive('j1', {}, {});
    jobs.transition('j1', 'downloading');
    expect(jobs.pause('j1', 'temperature 82 °C').pausedReason).toBe('temperature 82 °C');
    jobs.pause('j1', 'temperature 82 °C'); // no second message for the same reason
    jobs.transition('j1', 'verified');
    expect(jobs.get('j1')).toMatchObject({ state: 'verified', pausedReason: 'temperature 82 °C' });
    expect(jobs.resume('j1').pausedReason).toBeNull();
    jobs.pause('j1', 'cron window');
    jobs.transition('j1', 'canceled');
    expect(jobs.get('j1')!.pausedReason).toBeNull();
    expect(codeOf(() => jobs.pause('j1', 'x'))).toBe('EDGEKT_ERR_JOB_STATE');
    const pauses = messages(jobs).filter((m) => m.msg.kind === 'progress').map((m) => [m.key, m.msg.pausedReason]);
    expect(pauses).toEqual([['j1:2:p1', 'temperature 82 °C'], ['j1:3:p2', null], ['j1:3:p3', 'cron window']]);
  });

  it('listActive returns the non-terminal jobs after a reopen; list is newest first with a limit', () => {
    const { jobs, clock } = setup();
    for (const id of ['a', 'b', 'c', 'd']) {
      clock.advance(1);
      jobs.receive(id, { id }, {});
    }
    jobs.transition('b', 'canceled');
    jobs.transition('d', 'downloading');
    t!.db.close();
    const again = createJobStore(t!.reopen(), { clock, updateTopic: topic });
    expect(again.listActive().map((j) => [j.jobId, j.state])).toEqual([['a', 'received'], ['c', 'received'], ['d', 'downloading']]);
    expect(again.list({ limit: 2 }).map((j) => j.jobId)).toEqual(['d', 'c']);
    expect(again.get('c')!.spec).toEqual({ id: 'c' });
    expect(again.get('zz')).toBeNull();
  });

  it('a row whose JSON was corrupted on disk is refused with EDGEKT_ERR_STORE, not returned half-typed', () => {
    const { jobs } = setup();
    jobs.receive('j1', {}, {});
    t!.db.prepare("UPDATE jobs SET error = '{\"code\": 1}' WHERE job_id = 'j1'").run();
    expect(codeOf(() => jobs.get('j1'))).toBe('EDGEKT_ERR_STORE');
  });
});
