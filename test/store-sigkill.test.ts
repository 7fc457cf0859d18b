import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRng } from '../src/core/random.js';
import { createJobStore, type JobUpdateMessage } from '../src/store/jobs.js';
import { openDatabase } from '../src/store/sqlite.js';
import { ROOT } from './helpers/cli.js';
import { manualClock, tempDb } from './helpers/store-db.js';
import { transpileTree } from './helpers/transpile.js';

const ROUNDS = 20;
const t = tempDb();
// Compiled once: 20 starts under tsx would spend most of the time budget compiling.
const HAMMER = transpileTree(path.join(ROOT, 'test', 'fixtures', 'store-hammer.ts'), path.join(t.dir, 'build'));

/** Starts the hammer, waits until it has written, lets it run `ms` more, then SIGKILLs it. */
function runAndKill(file: string, seed: number, ms: number): Promise<NodeJS.Signals | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HAMMER, file, String(seed)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) setTimeout(() => child.kill('SIGKILL'), ms);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve(signal) : reject(new Error(`hammer exited ${code}: ${stderr}`))));
  });
}

afterAll(() => t.cleanup());

describe('store under SIGKILL', () => {
  it(`stays intact and consistent after ${ROUNDS} kills at random moments`, async () => {
    t.db.close();
    const rng = createRng(20240611);
    for (let round = 0; round < ROUNDS; round++) {
      expect(await runAndKill(t.file, round + 1, Math.floor(rng() * 250))).toBe('SIGKILL');
    }

    const db = openDatabase(t.file);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    const jobs = createJobStore(db, { clock: manualClock(), updateTopic: (id) => `u/${id}` });
    const all = jobs.list({ limit: 1_000_000 });
    expect(all.length).toBeGreaterThan(ROUNDS); // the hammer really made progress across restarts

    // Every job's seq equals its number of state messages, numbered 1..seq in enqueue order, the last one its state.
    const rows = db.prepare('SELECT key, payload FROM outbox ORDER BY id').all() as Array<{ key: string; payload: Buffer }>;
    const byJob = new Map<string, JobUpdateMessage[]>();
    for (const r of rows) {
      const msg = JSON.parse(r.payload.toString()) as JobUpdateMessage;
      if (msg.kind === 'state') byJob.set(msg.jobId, [...(byJob.get(msg.jobId) ?? []), msg]);
    }
    for (const job of all) {
      const msgs = byJob.get(job.jobId) ?? [];
      expect(msgs.map((m) => m.seq)).toEqual(Array.from({ length: job.seq }, (_, i) => i + 1));
      expect(msgs.at(-1)?.state).toBe(job.state);
    }
    expect([...byJob.keys()].every((id) => jobs.get(id) !== null)).toBe(true);

    // No half checkpoint: every stored model's bytes hash to what its meta (written in the same row) says.
    const cps = db.prepare('SELECT meta, model_json, weights FROM checkpoints').all() as Array<{ meta: string; model_json: string; weights: Buffer }>;
    expect(cps.length).toBeGreaterThan(0);
    for (const cp of cps) {
      const meta = JSON.parse(cp.meta) as { sha: string; bytes: number };
      expect(cp.weights.byteLength).toBe(meta.bytes);
      expect(createHash('sha256').update(cp.weights).digest('hex')).toBe(meta.sha);
      expect(JSON.parse(cp.model_json)).toEqual({ sha: meta.sha });
    }
    const ledgers = db.prepare('SELECT length(bitmap) AS n FROM transfer_blocks').pluck().all();
    expect(ledgers.length).toBeGreaterThan(0);
    expect(ledgers.every((n) => n === 8)).toBe(true);
    db.close();
  }, 60_000);
});
