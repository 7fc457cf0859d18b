import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EdgektError } from '../core/errors.js';
import { freePort } from './free-port.js';

/** Debian's broker, what the benchmarks spawn (`apt-get install mosquitto`). */
export const MOSQUITTO = '/usr/sbin/mosquitto';

export interface SpawnedMosquitto {
  port: number;
  url: string;
  proc: ChildProcess;
  /** SIGKILL, if still running (idempotent). */
  stop(): void;
}

export interface SpawnMosquittoOptions {
  /** Where mosquitto.conf is written. */
  dir: string;
  /** More lines of mosquitto.conf after the listener and the defaults (e.g. `max_connections -1`). */
  conf?: string[];
  /** Raise the open-file limit before exec (thousands of clients). Default false. */
  raiseFileLimit?: boolean;
  /** Give up when the port does not accept within this (default 10 s). */
  startTimeoutMs?: number;
}

const canConnect = (port: number): Promise<boolean> => new Promise((r) => {
  const s = net.connect(port, '127.0.0.1');
  s.once('connect', () => (s.destroy(), r(true))).once('error', () => r(false));
});

/**
 * Mosquitto on a free loopback port: anonymous, no persistence, no log; resolves once it accepts TCP.
 * EDGEKT_ERR_INTERNAL when it exits or does not accept in time (not installed, port taken).
 */
export async function spawnMosquitto(o: SpawnMosquittoOptions): Promise<SpawnedMosquitto> {
  const port = await freePort();
  const conf = path.join(o.dir, 'mosquitto.conf');
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest none', ...(o.conf ?? []), ''].join('\n'));
  const proc = o.raiseFileLimit
    ? spawn('bash', ['-c', `ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true; exec ${MOSQUITTO} -c ${conf}`], { stdio: 'ignore' })
    : spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
  proc.once('error', () => {});
  const stop = (): void => void (proc.exitCode === null && proc.signalCode === null && proc.kill('SIGKILL'));
  const deadline = Date.now() + (o.startTimeoutMs ?? 10_000);
  while (!(await canConnect(port))) {
    if (Date.now() > deadline || proc.exitCode !== null) {
      stop();
      throw new EdgektError('EDGEKT_ERR_INTERNAL', `mosquitto did not start on port ${port} (is ${MOSQUITTO} installed?)`);
    }
    await sleep(50);
  }
  return { port, url: `mqtt://127.0.0.1:${port}`, proc, stop };
}
