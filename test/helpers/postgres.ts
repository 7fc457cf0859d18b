import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

/**
 * A throw-away PostgreSQL cluster for tests: initdb into a temp dir, a free port on 127.0.0.1, a
 * socket dir inside the temp dir, fsync off. PostgreSQL refuses to run as root, so as root the
 * cluster runs as the `postgres` user (else `nobody`) through runuser; otherwise as the caller.
 */
export interface TestPostgres {
  /** URL of the cluster's `postgres` database (superuser `postgres`, trust auth). */
  url: string;
  /** Creates an empty database and returns its URL: one per test keeps tests independent. */
  newDatabase(): Promise<string>;
  stop(): Promise<void>;
}

export interface PostgresBinaries {
  initdb: string;
  pgCtl: string;
}

/** Where initdb/pg_ctl are: $EDGEKT_PG_BIN, /usr/local/bin, the newest /usr/lib/postgresql/N/bin, then PATH. */
export function findPostgresBinaries(): PostgresBinaries | null {
  const dirs: string[] = [];
  if (process.env.EDGEKT_PG_BIN) dirs.push(process.env.EDGEKT_PG_BIN);
  dirs.push('/usr/local/bin');
  const lib = '/usr/lib/postgresql';
  if (existsSync(lib)) {
    const versions = readdirSync(lib).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) dirs.push(path.join(lib, v, 'bin'));
  }
  dirs.push(...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean));
  for (const dir of dirs) {
    const initdb = path.join(dir, 'initdb');
    const pgCtl = path.join(dir, 'pg_ctl');
    if (existsSync(initdb) && existsSync(pgCtl)) return { initdb, pgCtl };
  }
  return null;
}

function userIds(name: string): { uid: number; gid: number } | null {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return null;
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** As root: the unprivileged user to run the server as, and a prefix that switches to it. */
function runAs(): { user: string; uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  for (const user of ['postgres', 'nobody']) {
    const ids = userIds(user);
    if (ids) return { user, ...ids };
  }
  throw new Error('running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts a fresh cluster; throws when no binaries exist (callers check findPostgresBinaries first). */
export async function startPostgres(): Promise<TestPostgres> {
  const bins = findPostgresBinaries();
  if (!bins) throw new Error('no PostgreSQL binaries (initdb, pg_ctl) found');
  const as = runAs();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-pg-'));
  if (as) chownSync(dir, as.uid, as.gid);
  const data = path.join(dir, 'data');
  const exec = (bin: string, args: string[]): void => {
    const [cmd, argv] = as ? ['runuser', ['-u', as.user, '--', bin, ...args]] : [bin, args];
    execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  };
  const ctl = (args: string[]): void => exec(bins.pgCtl, ['-D', data, ...args]);
  try {
    exec(bins.initdb, ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let port = 0;
  let started = false;
  for (let attempt = 0; attempt < 3 && !started; attempt++) {
    port = await freePort();
    const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
    try {
      ctl(['-o', opts, '-l', path.join(dir, 'server.log'), '-w', '-t', '30', 'start']);
      started = true;
    } catch (e) {
      if (attempt === 2) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
    }
  }
  const stopSync = (): void => {
    try {
      ctl(['-m', 'immediate', '-w', 'stop']);
    } catch {
      // already stopped
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopSync);
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  let n = 0;
  return {
    url,
    async newDatabase() {
      const name = `t${process.pid}_${++n}`;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return `postgresql://postgres@127.0.0.1:${port}/${name}`;
    },
    async stop() {
      process.removeListener('exit', stopSync);
      stopSync();
    },
  };
}
