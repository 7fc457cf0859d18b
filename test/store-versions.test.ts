import { afterEach, describe, expect, it } from 'vitest';
import { createJobStore } from '../src/store/jobs.js';
import { createVersionStore } from '../src/store/versions.js';
import { codeOf } from './helpers/errors.js';
import { manualClock, tempDb, type TempDb } from './helpers/store-db.js';

let t: TempDb | undefined;
afterEach(() => t?.cleanup());

describe('createVersionStore', () => {
  it('accepts strictly newer versions only, per artifact name, across a reopen', () => {
    t = tempDb();
    const clock = manualClock();
    const versions = createVersionStore(t.db, { clock });
    expect(versions.lastAccepted('teacher-vgg')).toBeNull();
    versions.accept('teacher-vgg', 3, 'j1');
    expect(codeOf(() => versions.accept('teacher-vgg', 3))).toBe('EDGEKT_ERR_MANIFEST_VERSION'); // replay
    expect(codeOf(() => versions.accept('teacher-vgg', 2))).toBe('EDGEKT_ERR_MANIFEST_VERSION'); // downgrade
    versions.accept('other', 1);
    versions.accept('teacher-vgg', 4);
    expect(createVersionStore(t.reopen(), { clock }).lastAccepted('teacher-vgg')).toBe(4);
  });

  it('in one transaction with receive: a refused version creates no job and no outbox row', () => {
    t = tempDb();
    const clock = manualClock();
    const versions = createVersionStore(t.db, { clock });
    const jobs = createJobStore(t.db, { clock, updateTopic: (id) => `u/${id}` });
    const accept = t.db.transaction((jobId: string, version: number) => {
      const r = jobs.receive(jobId, {}, { version });
      if (r.created) versions.accept('teacher', version, jobId);
      return r;
    });
    accept('j1', 5);
    expect(codeOf(() => accept('j2', 5))).toBe('EDGEKT_ERR_MANIFEST_VERSION');
    expect(accept('j1', 5).created).toBe(false); // redelivery of the accepted job is not a replay
    expect(jobs.get('j2')).toBeNull();
    expect(jobs.outbox.pending().map((r) => r.key)).toEqual(['j1:1']);
  });
});
