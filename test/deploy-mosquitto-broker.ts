/**
 * Test support (not a test file): runs Debian's Mosquitto with the repo's production configuration
 * (deploy/mosquitto/) rewritten only where a test must differ: paths into a temp dir, loopback-only
 * listeners on free ports, and no privilege drop. PKI comes from the repo's make-pki.sh/add-device.sh.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { freePort } from './helpers/mosquitto.js';

export const ROOT = path.resolve(__dirname, '..');
export const DEPLOY = path.join(ROOT, 'deploy', 'mosquitto');
export const MOSQUITTO = '/usr/sbin/mosquitto';
export const hasMosquitto = existsSync(MOSQUITTO) && spawnSync('openssl', ['version']).status === 0;

export { freePort };

function run(cmd: string, args: string[], env: Record<string, string> = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** make-pki.sh into DIR (CA, server, coordinator, the given devices). */
export function makePki(dir: string, devices: string[]): void {
  run('bash', [path.join(DEPLOY, 'make-pki.sh'), '--dir', dir, ...devices.flatMap((d) => ['--device', d])]);
}

/** add-device.sh ID --password: sets a known password in DIR/passwd. */
export function addPasswordDevice(dir: string, id: string, password: string): void {
  run('bash', [path.join(DEPLOY, 'add-device.sh'), id, '--dir', dir, '--password'], { EDGEKT_DEVICE_PASSWORD: password });
}

export interface Broker {
  tlsPort: number;
  passwordPort: number;
  etc: string;
  log(): string;
  stop(): Promise<void>;
}

function rewriteConf(text: string, etc: string, data: string, ports: Map<string, number>): string {
  return text
    .replaceAll('/etc/mosquitto/edgekt', etc)
    .replaceAll('/var/lib/mosquitto/', `${data}/`)
    .replace(/^listener (\d+)$/gm, (line, p: string) => {
      const port = ports.get(p);
      if (port === undefined) throw new Error(`unexpected listener in config: ${line}`);
      return `listener ${port} 127.0.0.1`;
    });
}

async function startOnce(dir: string, pki: string): Promise<Broker | 'addr-in-use'> {
  const tlsPort = await freePort();
  let passwordPort = await freePort();
  while (passwordPort === tlsPort) passwordPort = await freePort();
  const ports = new Map([['8883', tlsPort], ['8884', passwordPort]]);
  const etc = path.join(dir, 'etc');
  const data = path.join(dir, 'data');
  rmSync(etc, { recursive: true, force: true });
  mkdirSync(path.join(etc, 'conf.d'), { recursive: true });
  mkdirSync(data, { recursive: true });
  run('cp', ['-a', `${pki}/.`, etc]);
  writeFileSync(path.join(etc, 'acl'), readFileSync(path.join(DEPLOY, 'acl')));
  const plConf = readFileSync(path.join(DEPLOY, 'password-listener.conf'), 'utf8');
  writeFileSync(path.join(etc, 'conf.d', 'password-listener.conf'), rewriteConf(plConf, etc, data, ports));
  // The one addition: stay the invoking user (as root Mosquitto would switch to `mosquitto`, which
  // cannot read a 0700 temp dir).
  const conf = `${rewriteConf(readFileSync(path.join(DEPLOY, 'mosquitto.conf'), 'utf8'), etc, data, ports)}\nuser ${os.userInfo().username}\n`;
  const confPath = path.join(dir, 'mosquitto.conf');
  writeFileSync(confPath, conf);

  const child: ChildProcess = spawn(MOSQUITTO, ['-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (b: Buffer) => { log += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { log += b.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = await new Promise<'ok' | 'exit' | 'timeout'>((resolve) => {
    const t = setTimeout(() => resolve('timeout'), 10_000);
    const poll = setInterval(() => {
      if (/mosquitto version \S+ running/.test(log)) { clearInterval(poll); clearTimeout(t); resolve('ok'); }
    }, 20);
    void exited.then(() => { clearInterval(poll); clearTimeout(t); resolve('exit'); });
  });
  if (ready !== 'ok') {
    child.kill('SIGKILL');
    await exited;
    if (/Address already in use/i.test(log)) return 'addr-in-use';
    throw new Error(`mosquitto did not start (${ready}):\n${log}`);
  }
  return {
    tlsPort,
    passwordPort,
    etc,
    log: () => log,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Starts Mosquitto with the production config in a fresh temp dir; retries when a port was taken. */
export async function startBroker(pki: string): Promise<Broker & { dir: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-mosq-'));
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      const b = await startOnce(dir, pki);
      if (b !== 'addr-in-use') {
        return { ...b, dir, stop: async () => { await b.stop(); rmSync(dir, { recursive: true, force: true }); } };
      }
    }
    throw new Error('mosquitto: no free port after 5 attempts');
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

export type ConnectResult =
  | { ok: true; client: MqttClient; reasonCode: number }
  | { ok: false; error: string; reasonCode?: number };

/** One connection attempt (no reconnect): resolves with CONNACK success or why it failed. */
export function tryConnect(url: string, opts: IClientOptions): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, {
      protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5_000, clean: true, ...opts,
    });
    let settled = false;
    const done = (r: ConnectResult) => {
      if (settled) return;
      settled = true;
      if (!r.ok) client.end(true);
      resolve(r);
    };
    client.once('connect', (connack) => done({ ok: true, client, reasonCode: connack.reasonCode ?? 0 }));
    client.once('error', (err: Error & { code?: number | string }) =>
      done({ ok: false, error: err.message, reasonCode: typeof err.code === 'number' ? err.code : undefined }));
    client.once('close', () => done({ ok: false, error: 'closed before CONNACK' }));
  });
}
