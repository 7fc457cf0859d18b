import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import mqtt from 'mqtt';
import { z } from 'zod';
import { EdgektError } from '../../core/errors.js';
import { generateKeyPair, parsePublicKey, privateKeyPem, publicKeyPem, trustedKeyMap } from '../../transport/keys.js';
import { action, parseIntOption, printJson, type CliContext } from '../context.js';
import { startSimDevice, type SimCounters } from '../fleet-sim/sim-device.js';
import { freePort } from '../free-port.js';
import { spawnMosquitto } from '../spawn-mosquitto.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'edgekt.js');

const DevicesPageSchema = z.object({ total: z.number() });
const ShaSchema = z.object({ sha256: z.string() });
const IdSchema = z.object({ id: z.string() });
const ResultsPageSchema = z.object({ items: z.array(z.object({ deviceId: z.string() })), nextCursor: z.string().nullable() });
const SimConfigSchema = z.object({ url: z.string(), from: z.number().int(), count: z.number().int().positive(), controlOnly: z.boolean(), fleetPub: z.string(), telemetryMs: z.number().int().positive() });

/** utime+stime (clock ticks → seconds) and peak RSS of a process, from /proc. */
function procUsage(pid: number): { cpuSeconds: number; peakRssMB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds: ticks / 100, peakRssMB: hwm ? Number(hwm[1]) / 1024 : NaN };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface FleetBenchResult {
  devices: number;
  artifactBytes: number;
  controlOnly: boolean;
  simProcesses: number;
  connectSeconds: number;
  seconds: number;
  messagesPerSecond: number;
  brokerMessagesReceived: number;
  brokerMessagesSent: number;
  results: number;
  lost: number;
  /** Results beyond one per device. */
  duplicated: number;
  /** Job messages a device received twice (a redispatch of a job not yet acknowledged; the device dedups). */
  duplicateJobDeliveries: number;
  coordinatorRssMB: number;
  coordinatorCpuPercent: number;
  /** CPU of all simulator processes together over the rollout, percent of one core (2 cores = 200 %). */
  simCpuPercent: number;
  /** Mosquitto's CPU over the rollout, percent of one core. */
  brokerCpuPercent: number;
  bytesPulled: number;
}

/**
 * `edgekt bench fleet`: a spawned Mosquitto (file limit raised), a coordinator process, and
 * simulated devices (protocol only, no training) in several processes; one rollout to all of
 * them, timed from start to the last verified result.
 */
export function registerBenchFleet(bench: Command, ctx: CliContext): void {
  bench
    .command('fleet-sim', { hidden: true })
    .description('(internal) run simulated devices for bench fleet; config in EDGEKT_SIM_CONFIG')
    .action(action(ctx, async () => {
      const c = SimConfigSchema.parse(JSON.parse(process.env.EDGEKT_SIM_CONFIG ?? '{}'));
      const key = generateKeyPair();
      const counters: SimCounters = { connected: 0, jobs: 0, duplicateJobs: 0, succeeded: 0, failed: 0, bytesPulled: 0, messagesOut: 0, messagesIn: 0 };
      const trusted = trustedKeyMap([parsePublicKey(c.fleetPub)]);
      const clients = [];
      for (let i = 0; i < c.count; i++) {
        clients.push(startSimDevice({ url: c.url, id: `sim-${String(c.from + i).padStart(5, '0')}`, profile: ['sim-small', 'sim-fast', 'sim-accurate'][(c.from + i) % 3]!, trustedKeys: trusted, deviceKey: { privateKey: key.privateKey, publicKeyPem: publicKeyPem(key.publicKey) }, controlOnly: c.controlOnly, counters, telemetryMs: c.telemetryMs }));
        if (i % 200 === 199) await sleep(50);
      }
      const report = (): void => void process.stdout.write(`sim-counters ${JSON.stringify(counters)}\n`);
      const t = setInterval(report, 1000);
      await new Promise<void>((r) => process.once('SIGTERM', () => r()));
      clearInterval(t);
      report();
      await Promise.all(clients.map((cl) => cl.endAsync(true)));
      return 0;
    }));

  bench
    .command('fleet')
    .description('rollout to simulated devices through a spawned Mosquitto: time to full rollout, messages/s, coordinator CPU and RSS, lost and duplicated results')
    .option('--devices <n>', 'simulated devices', parseIntOption('devices'), 1000)
    .option('--artifact-mb <n>', 'size of the rolled-out artifact, MB', parseIntOption('artifact-mb'), 5)
    .option('--control-only', 'presence, telemetry, dispatch and results; no artifact transfer')
    .option('--per-process <n>', 'simulated devices per process', parseIntOption('per-process'))
    .option('--timeout <s>', 'give up after this many seconds', parseIntOption('timeout'), 600)
    .option('--json', 'print one JSON object')
    .action(action(ctx, async (o: { devices: number; artifactMb: number; controlOnly?: boolean; perProcess?: number; timeout: number; json?: boolean }) => {
      const controlOnly = Boolean(o.controlOnly);
      const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-bench-fleet-'));
      const procs: ChildProcess[] = [];
      const say = (s: string): void => ctx.err(`bench fleet: ${s}`);
      try {
        const broker = await spawnMosquitto({ dir, conf: ['max_connections -1', 'max_queued_messages 100000', 'max_inflight_messages 0', 'sys_interval 1'], raiseFileLimit: true });
        procs.push(broker.proc);
        const url = broker.url;
        const fleet = generateKeyPair();
        writeFileSync(path.join(dir, 'fleet.key'), privateKeyPem(fleet.privateKey));
        const token = randomBytes(16).toString('hex');
        writeFileSync(path.join(dir, 'admin.tokens'), `${token}\n`);
        const httpPort = await freePort();
        writeFileSync(path.join(dir, 'coordinator.yaml'), ['id: bench', 'broker:', `  url: ${url}`, 'store:', `  sqlite: ${path.join(dir, 'c.db')}`, 'http:', `  port: ${httpPort}`, `  adminTokensFile: ${path.join(dir, 'admin.tokens')}`, `fleetKey: ${path.join(dir, 'fleet.key')}`, `artifactsDir: ${path.join(dir, 'artifacts')}`, 'tickMs: 250', 'log:', '  level: warn', ''].join('\n'));
        // EDGEKT_BENCH_COORDINATOR_NODE_ARGS: extra node flags for the coordinator (e.g. --cpu-prof).
        const nodeArgs = (process.env.EDGEKT_BENCH_COORDINATOR_NODE_ARGS ?? '').split(' ').filter(Boolean);
        const coordinator = spawn(process.execPath, [...nodeArgs, BIN, 'coordinator', '--config', path.join(dir, 'coordinator.yaml')], { stdio: ['ignore', 'ignore', 'inherit'] });
        procs.push(coordinator);
        const api = async (method: 'GET' | 'POST', route: string, body?: unknown): Promise<unknown> => {
          const res = await fetch(`http://127.0.0.1:${httpPort}${route}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
          if (!res.ok) throw new EdgektError('EDGEKT_ERR_COORDINATOR', `${route}: HTTP ${res.status} ${await res.text()}`);
          return res.json();
        };
        for (let i = 0; ; i++) {
          try {
            await api('GET', '/healthz');
            break;
          } catch {
            if (i > 200 || coordinator.exitCode !== null) throw new EdgektError('EDGEKT_ERR_INTERNAL', 'the coordinator did not start');
            await sleep(100);
          }
        }
        const monitor = mqtt.connect(url, { protocolVersion: 5, clientId: 'bench-monitor' });
        const sys = { received: 0, sent: 0 };
        monitor.subscribe(['$SYS/broker/messages/received', '$SYS/broker/messages/sent']);
        monitor.on('message', (t, p) => {
          if (t.endsWith('/received')) sys.received = Number(p.toString());
          else sys.sent = Number(p.toString());
        });
        const per = o.perProcess ?? (controlOnly ? 2500 : 500);
        const sims: Array<{ proc: ChildProcess; counters: SimCounters | null }> = [];
        const tc = performance.now();
        for (let from = 0; from < o.devices; from += per) {
          const cfg = { url, from, count: Math.min(per, o.devices - from), controlOnly, fleetPub: publicKeyPem(fleet.publicKey), telemetryMs: 30_000 };
          const proc = spawn('bash', ['-c', `ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true; exec "${process.execPath}" "${BIN}" bench fleet-sim`], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, EDGEKT_SIM_CONFIG: JSON.stringify(cfg) } });
          const entry: { proc: ChildProcess; counters: SimCounters | null } = { proc, counters: null };
          proc.stdout!.on('data', (d: Buffer) => {
            for (const line of d.toString().split('\n')) if (line.startsWith('sim-counters ')) entry.counters = JSON.parse(line.slice(13));
          });
          procs.push(proc);
          sims.push(entry);
        }
        say(`${o.devices} simulated devices in ${sims.length} processes connecting`);
        for (;;) {
          const online = DevicesPageSchema.parse(await api('GET', '/api/devices?online=true&limit=1')).total;
          if (online >= o.devices) break;
          if (performance.now() - tc > o.timeout * 1000) throw new EdgektError('EDGEKT_ERR_TIMEOUT', `only ${online} of ${o.devices} devices came online`);
          await sleep(500);
        }
        const connectSeconds = (performance.now() - tc) / 1000;
        say(`all online in ${connectSeconds.toFixed(1)} s`);
        const artifactBytes = controlOnly ? 1024 : o.artifactMb * 2 ** 20;
        const weights = randomBytes(artifactBytes);
        const teacher = ShaSchema.parse(await api('POST', '/api/teachers', { name: 'bench-teacher', blockSize: 128 * 1024, files: [{ path: 'model.json', base64: Buffer.from('{"bench":true}').toString('base64') }, { path: 'weights.bin', base64: weights.toString('base64') }] }));
        await sleep(1500);
        const sys0 = { ...sys };
        const u0 = procUsage(coordinator.pid!);
        const cpuOf = (ps: ChildProcess[]): number => ps.reduce((a, p) => a + procUsage(p.pid!).cpuSeconds, 0);
        const simCpu0 = cpuOf(sims.map((s) => s.proc));
        const brokerCpu0 = cpuOf([broker.proc]);
        const t0 = performance.now();
        const rollout = IdSchema.parse(await api('POST', '/api/rollouts', { teacherSha256: teacher.sha256, target: { kind: 'all' }, staging: { kind: 'rate', perMinute: o.devices }, job: { dataset: 'default' } }));
        // Results are read on from the last page's cursor: each poll costs the coordinator only the new rows.
        const seen = { full: 0, cursor: null as string | null };
        let results = 0;
        let lastLog = 0;
        for (;;) {
          results = await readNewResults(api, rollout.id, seen);
          if (results >= o.devices) break;
          const el = (performance.now() - t0) / 1000;
          if (el - lastLog > 10) {
            lastLog = el;
            say(`${el.toFixed(0)} s: ${results}/${o.devices} results`);
          }
          if (el > o.timeout) break;
          await sleep(500);
        }
        const seconds = (performance.now() - t0) / 1000;
        const u1 = procUsage(coordinator.pid!);
        const simCpu1 = cpuOf(sims.map((s) => s.proc));
        const brokerCpu1 = cpuOf([broker.proc]);
        await sleep(1500);
        const distinct = await distinctDevices(api, rollout.id);
        for (const s of sims) s.proc.kill('SIGTERM');
        await sleep(1500);
        const sum = (k: keyof SimCounters): number => sims.reduce((a, s) => a + (s.counters?.[k] ?? 0), 0);
        const r: FleetBenchResult = {
          devices: o.devices, artifactBytes, controlOnly, simProcesses: sims.length, connectSeconds: round(connectSeconds), seconds: round(seconds),
          messagesPerSecond: round((sys.received - sys0.received) / seconds), brokerMessagesReceived: sys.received - sys0.received, brokerMessagesSent: sys.sent - sys0.sent,
          results: distinct.results, lost: o.devices - distinct.devices, duplicated: distinct.results - distinct.devices, duplicateJobDeliveries: sum('duplicateJobs'),
          coordinatorRssMB: round(u1.peakRssMB), coordinatorCpuPercent: round((100 * (u1.cpuSeconds - u0.cpuSeconds)) / seconds),
          simCpuPercent: round((100 * (simCpu1 - simCpu0)) / seconds), brokerCpuPercent: round((100 * (brokerCpu1 - brokerCpu0)) / seconds), bytesPulled: sum('bytesPulled'),
        };
        monitor.end(true);
        coordinator.kill('SIGTERM'); // a clean stop (and its --cpu-prof profile, if asked for)
        await Promise.race([new Promise((r) => coordinator.once('exit', r)), sleep(5000)]);
        if (o.json) printJson(ctx, r);
        else ctx.out(Object.entries(r).map(([k, v]) => `${k.padEnd(24)} ${v}`).join('\n'));
        return r.lost === 0 && r.duplicated === 0 ? 0 : 1;
      } finally {
        for (const p of procs.reverse()) if (p.exitCode === null) p.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    }));
}

const round = (v: number): number => Math.round(v * 100) / 100;

/**
 * The results recorded so far: full pages are counted once and skipped by cursor from then on, so
 * each poll re-reads at most the last, partial page (the coordinator serves only new rows).
 */
async function readNewResults(api: (m: 'GET', r: string) => Promise<unknown>, rolloutId: string, at: { full: number; cursor: string | null }): Promise<number> {
  for (;;) {
    const page = ResultsPageSchema.parse(await api('GET', `/api/results?rollout=${rolloutId}&limit=1000${at.cursor ? `&cursor=${encodeURIComponent(at.cursor)}` : ''}`));
    if (!page.nextCursor) return at.full + page.items.length;
    at.full += page.items.length;
    at.cursor = page.nextCursor;
  }
}

async function distinctDevices(api: (m: 'GET', r: string) => Promise<unknown>, rolloutId: string): Promise<{ results: number; devices: number }> {
  const devices = new Set<string>();
  let results = 0;
  let cursor: string | null = null;
  do {
    const page = ResultsPageSchema.parse(await api('GET', `/api/results?rollout=${rolloutId}&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`));
    for (const r of page.items) devices.add(r.deviceId);
    results += page.items.length;
    cursor = page.nextCursor;
  } while (cursor);
  return { results, devices: devices.size };
}
