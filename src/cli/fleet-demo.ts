import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import { generateKeyPair, privateKeyPem, publicKeyPem } from '../transport/keys.js';
import { freePort } from './free-port.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'edgekt.js');

export interface DemoDevice {
  id: string;
  profile: { name: string } & Record<string, unknown>;
}

/** Budgets relative to the teacher measured on this machine, so the students differ by device. */
export const DEMO_PROFILES: Array<DemoDevice['profile']> = [
  { name: 'demo-fast', description: 'latency first', match: { arch: ['x64', 'arm64', 'arm'] },
    budgets: { latencyP95: '0.6x', minAccuracy: '0.95x' }, runtime: { backend: 'auto', threads: 1 },
    training: { batchSize: 64, maxRssMB: 3000, maxTemperatureC: 95, allowedCron: '* * * * *' } },
  { name: 'demo-small', description: 'smallest model', match: { arch: ['x64', 'arm64', 'arm'] },
    budgets: { modelSizeKB: '0.006x', minAccuracy: '0.91x' }, runtime: { backend: 'auto', threads: 1 },
    training: { batchSize: 64, maxRssMB: 3000, maxTemperatureC: 95, allowedCron: '* * * * *' } },
  { name: 'demo-balanced', description: 'size and accuracy', match: { arch: ['x64', 'arm64', 'arm'] },
    budgets: { modelSizeKB: '0.008x', minAccuracy: '0.94x' }, runtime: { backend: 'auto', threads: 1 },
    training: { batchSize: 64, maxRssMB: 3000, maxTemperatureC: 95, allowedCron: '* * * * *' } },
];

export interface FleetDemo {
  dir: string;
  brokerUrl: string;
  apiUrl: string;
  adminTokenFile: string;
  processes: ChildProcess[];
  logs: Map<string, string[]>;
  stop(): Promise<void>;
}

/**
 * Starts the fleet of the demo on this machine: an embedded aedes broker on a free port, a
 * coordinator process and one agent process per device, each with its own state directory,
 * config and profile. Everything lives under one temp directory, removed by stop().
 */
export async function startFleetDemo(o: { devices: DemoDevice[]; datasets: Record<string, string>; backend?: string; say: (line: string) => void }): Promise<FleetDemo> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-demo-'));
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const brokerUrl = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const fleet = generateKeyPair();
  writeFileSync(path.join(dir, 'fleet.key'), privateKeyPem(fleet.privateKey), { mode: 0o600 });
  writeFileSync(path.join(dir, 'fleet.pub'), publicKeyPem(fleet.publicKey));
  const token = generateKeyPair().keyId + generateKeyPair().keyId;
  const adminTokenFile = path.join(dir, 'admin.tokens');
  writeFileSync(adminTokenFile, `${token}\n`, { mode: 0o600 });
  const httpPort = await freePort();
  writeFileSync(path.join(dir, 'coordinator.yaml'), [
    'id: demo-coordinator', 'broker:', `  url: ${brokerUrl}`, '  shareGroup: null', '  protocolVersion: 4',
    'store:', `  sqlite: ${path.join(dir, 'coordinator.db')}`,
    'http:', '  host: 127.0.0.1', `  port: ${httpPort}`, `  adminTokensFile: ${adminTokenFile}`,
    `fleetKey: ${path.join(dir, 'fleet.key')}`, `artifactsDir: ${path.join(dir, 'artifacts')}`, 'tickMs: 500', 'log:', '  level: info', '',
  ].join('\n'));
  const logs = new Map<string, string[]>();
  const processes: ChildProcess[] = [];
  const launch = (name: string, args: string[]): ChildProcess => {
    const lines: string[] = [];
    logs.set(name, lines);
    const p = spawn(process.execPath, [BIN, ...(o.backend ? ['--backend', o.backend] : []), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer): void => {
      lines.push(...d.toString('utf8').split('\n').filter(Boolean));
      if (lines.length > 2000) lines.splice(0, lines.length - 2000);
    };
    p.stdout!.on('data', keep);
    p.stderr!.on('data', keep);
    processes.push(p);
    return p;
  };
  launch('coordinator', ['coordinator', '--config', path.join(dir, 'coordinator.yaml')]);
  for (const d of o.devices) {
    const ddir = path.join(dir, d.id);
    mkdirSync(ddir, { recursive: true });
    writeFileSync(path.join(ddir, 'profile.json'), JSON.stringify(d.profile, null, 2));
    writeFileSync(path.join(ddir, 'agent.yaml'), [
      'broker:', `  url: ${brokerUrl}`, '  protocolVersion: 4', 'device:', `  id: ${d.id}`, '  groups: [demo]', `  profile: ${path.join(ddir, 'profile.json')}`,
      'datasets:', ...Object.entries(o.datasets).map(([k, v]) => `  ${k}: ${v}`),
      'trust:', `  coordinatorKeys: [${path.join(dir, 'fleet.pub')}]`, `stateDir: ${path.join(ddir, 'state')}`,
      'telemetry:', "  cron: '*/5 * * * * *'", 'log:', '  level: info', '',
    ].join('\n'));
    launch(d.id, ['agent', '--config', path.join(ddir, 'agent.yaml')]);
  }
  const apiUrl = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${apiUrl}/healthz`)).ok) break;
    } catch {
      // not up yet
    }
    const dead = processes.find((p) => p.exitCode !== null);
    if (dead || Date.now() > deadline) throw new Error(`the demo coordinator did not start:\n${(logs.get('coordinator') ?? []).slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  o.say(`fleet     aedes broker ${brokerUrl}, coordinator ${apiUrl}, ${o.devices.length} agents (${o.devices.map((d) => `${d.id}: ${d.profile.name}`).join(', ')})`);
  return {
    dir, brokerUrl, apiUrl, adminTokenFile, processes, logs,
    async stop() {
      await Promise.all(processes.map((p) => new Promise<void>((r) => {
        if (p.exitCode !== null || p.signalCode !== null) return r();
        const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
        p.once('exit', () => {
          clearTimeout(t);
          r();
        });
        p.kill('SIGTERM');
      })));
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The teacher directory's files, as the publish API takes them. */
export function teacherUpload(dir: string, name: string): { name: string; files: Array<{ path: string; base64: string }> } {
  const files = readdirSync(dir).filter((f) => f === 'model.json' || f.endsWith('.bin'));
  return { name, files: files.map((p) => ({ path: p, base64: readFileSync(path.join(dir, p)).toString('base64') })) };
}
