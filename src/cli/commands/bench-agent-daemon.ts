import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import type { KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import { z } from 'zod';
import type { DeviceProfile } from '../../config/device-profile.js';
import { EdgektError } from '../../core/errors.js';
import { signManifest } from '../../transport/signing.js';
import { filters, topics } from '../../transport/topics.js';
import { connect, round, serveTeachers, sleep, spreadOf, writeTeacherDir, type Broker, type Spread } from './bench-agent-transfer.js';

/** Pieces of `edgekt bench agent`: /proc readings and a real `edgekt agent` process, idle and on one job. */

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'edgekt.js');

// --- /proc ---------------------------------------------------------------------------------------

let clkTck: number | undefined;
/** Clock ticks per second of /proc's utime/stime (getconf CLK_TCK; 100 on every Linux we know). */
export function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime + stime in seconds from a /proc stat file (fields 14 and 15, counted after the comm's ')'). */
function cpuSecondsOf(statFile: string): number {
  const s = readFileSync(statFile, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
}

export const processCpuSeconds = (pid: number): number => cpuSecondsOf(`/proc/${pid}/stat`);

/** VmRSS and VmHWM (peak resident set) of a process, MB. */
export function processMemory(pid: number): { rssMB: number; hwmMB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rssMB: kb('VmRSS') / 1024, hwmMB: kb('VmHWM') / 1024 };
}

/** CPU seconds of every live thread of a process, by thread id (Node's threads are all named "node"). */
export function threadCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), cpuSecondsOf(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      // the thread ended between readdir and read
    }
  }
  return out;
}

// --- the agent process ---------------------------------------------------------------------------

/** The tiny job of test/agent-e2e.test.ts: 400 mnist samples, one epoch of each stage. */
export const TINY_SETTINGS = { limit: 400, distillEpochs: 1, finalEpochs: 1, maxIterations: 2, step: 0.3, runs: 5, briefSamples: 128, width: 0.5 };

export interface AgentProcess {
  pid: number;
  log: string[];
  stop(): Promise<void>;
}

/**
 * `edgekt agent` with a config like test/helpers/fleet.ts writes: its own state dir, the bench
 * profile, the `mnist` package as dataset `digits`, trusting `fleetPub`, telemetry every 2 s,
 * log level info (the agent's default). Resolves once it logs "connected".
 */
export async function startAgent(o: { dir: string; brokerUrl: string; deviceId: string; profile: DeviceProfile; fleetPub: string }): Promise<AgentProcess> {
  mkdirSync(path.join(o.dir, 'state'), { recursive: true });
  writeFileSync(path.join(o.dir, 'fleet.pub'), o.fleetPub);
  writeFileSync(path.join(o.dir, 'profile.json'), JSON.stringify(o.profile));
  const configFile = path.join(o.dir, 'agent.yaml');
  writeFileSync(configFile, [
    'broker:', `  url: ${o.brokerUrl}`, '  reconnectSeconds: 0.3',
    'device:', `  id: ${o.deviceId}`, '  groups: [lab]', `  profile: ${path.join(o.dir, 'profile.json')}`,
    'datasets:', '  digits: mnist',
    'trust:', `  coordinatorKeys: [${path.join(o.dir, 'fleet.pub')}]`,
    `stateDir: ${path.join(o.dir, 'state')}`,
    'telemetry:', "  cron: '*/2 * * * * *'",
    'log:', '  level: info', '',
  ].join('\n'));
  const proc: ChildProcess = spawn(process.execPath, [BIN, 'agent', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  const keep = (d: Buffer): void => void log.push(...d.toString('utf8').split('\n').filter(Boolean));
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const deadline = Date.now() + 60_000;
  while (!log.some((l) => l.includes('"msg":"connected"'))) {
    if (proc.exitCode !== null) throw new EdgektError('EDGEKT_ERR_INTERNAL', `the agent exited ${proc.exitCode}:\n${log.slice(-20).join('\n')}`);
    if (Date.now() > deadline) throw new EdgektError('EDGEKT_ERR_TIMEOUT', `the agent did not connect:\n${log.slice(-20).join('\n')}`);
    await sleep(100);
  }
  return {
    pid: proc.pid!,
    log,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface IdleFigures {
  seconds: number;
  cpuPercent: number;
  cpuSeconds: number;
  rssMB: Spread;
  telemetryMessages: number;
  threads: number;
}

/** CPU % (utime+stime delta over the window) and VmRSS once a second, with telemetry flowing. */
export async function measureIdle(pid: number, seconds: number, telemetry: () => number): Promise<IdleFigures> {
  const t0 = performance.now();
  const c0 = processCpuSeconds(pid);
  const m0 = telemetry();
  const rss: number[] = [];
  while (performance.now() - t0 < seconds * 1000) {
    rss.push(processMemory(pid).rssMB);
    await sleep(1000);
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = processCpuSeconds(pid) - c0;
  return { seconds: round(wall, 1), cpuSeconds: round(cpu), cpuPercent: round((100 * cpu) / wall, 2), rssMB: spreadOf(rss), telemetryMessages: telemetry() - m0, threads: threadCpu(pid).size };
}

// --- one job -------------------------------------------------------------------------------------

const UpdateSchema = z.object({
  kind: z.enum(['state', 'progress']),
  jobId: z.string(),
  state: z.string(),
  at: z.number(),
  error: z.object({ code: z.string(), message: z.string() }).passthrough().optional(),
  result: z.object({ met: z.boolean(), report: z.object({ stages: z.array(z.object({ name: z.string(), seconds: z.number() }).passthrough()) }).passthrough() }).passthrough().optional(),
}).passthrough();
type Update = z.infer<typeof UpdateSchema>;

export interface DeviceWatch {
  telemetry(): number;
  updates: Update[];
}

/** Counts the device's telemetry and keeps its job updates (zod-parsed; anything else is dropped). */
export function watchDevice(client: MqttClient, deviceId: string): DeviceWatch {
  const w: DeviceWatch & { count: number } = { count: 0, telemetry: () => w.count, updates: [] };
  client.subscribe([topics.telemetry(deviceId), filters.allJobUpdates], { qos: 1 });
  client.on('message', (topic, payload) => {
    if (topic === topics.telemetry(deviceId)) w.count++;
    else if (topic.endsWith('/update')) {
      const u = UpdateSchema.safeParse(JSON.parse(payload.toString('utf8')));
      if (u.success) w.updates.push(u.data);
    }
  });
  return w;
}

const TERMINAL = ['succeeded', 'failed', 'rejected', 'canceled'];

export interface JobFigures {
  jobId: string;
  state: string;
  met: boolean | null;
  teacherBytes: number;
  /** received → terminal update, by the agent's own clock. */
  wallSeconds: number;
  downloadSeconds: number;
  stages: Array<{ name: string; seconds: number }>;
  stageSeconds: number;
  /** wall − stages: download, model inspection, worker start-up (tfjs, backend, data), teacher measurement, report, signing. */
  overheadSeconds: number;
  overheadShare: number;
  peakRssMB: number;
  peakSampledRssMB: number;
  maxRssMB: number;
  peakRssShareOfMax: number;
  /** Seconds from `received` to each state update (where the overhead sits). */
  timeline: Record<string, number>;
  cpu: {
    processSeconds: number;
    /** The daemon's own thread (MQTT, SQLite, outbox, block writes). */
    mainThreadSeconds: number;
    /**
     * The other threads that existed before the job: V8's platform workers (GC, compilation) and
     * libuv's pool, which serve the worker's isolate as well; so not the daemon's alone.
     */
    sharedThreadsSeconds: number;
    /** process − the threads above: the threads the job started (the worker thread and its helpers). */
    jobThreadsSeconds: number;
    threadsBefore: number;
    jobThreads: number;
  };
}

/**
 * Sends one signed compress job, serves the teacher's blocks, and samples the agent until the job
 * ends: VmRSS/VmHWM, and per-thread CPU (/proc/PID/task/TID/stat) split into the threads that were
 * there before the job and those it started.
 */
export async function measureJob(o: {
  agent: AgentProcess; brokerUrl: string; deviceId: string; watch: DeviceWatch; fleetKey: KeyObject; teacherDir: string; maxRssMB: number; timeoutSeconds: number;
}): Promise<JobFigures> {
  const jobId = 'bench-job-1';
  const teacher = await writeTeacherDir(o.teacherDir, { deviceId: o.deviceId, name: 'bench-tiny-vgg', version: 1 });
  const coord = await connect(o.brokerUrl, 'bench-coordinator-job');
  const server = serveTeachers(coord, teacher.files);
  try {
    await server.ready;
    const pid = o.agent.pid;
    const base = threadCpu(pid);
    const seen = new Map(base);
    const c0 = processCpuSeconds(pid);
    let peakSampled = 0;
    const message = { type: 'compress', jobId, manifest: signManifest(teacher.manifest, o.fleetKey), dataset: 'digits', settings: TINY_SETTINGS };
    await coord.publishAsync(topics.jobs(o.deviceId), JSON.stringify(message), { qos: 1 });
    const deadline = performance.now() + o.timeoutSeconds * 1000;
    const state = (s: string): Update | undefined => o.watch.updates.find((u) => u.jobId === jobId && u.kind === 'state' && u.state === s);
    const end = (): Update | undefined => o.watch.updates.find((u) => u.jobId === jobId && u.kind === 'state' && TERMINAL.includes(u.state));
    while (!end()) {
      if (performance.now() > deadline) throw new EdgektError('EDGEKT_ERR_TIMEOUT', `the job did not end in ${o.timeoutSeconds} s:\n${o.agent.log.slice(-20).join('\n')}`);
      peakSampled = Math.max(peakSampled, processMemory(pid).rssMB);
      for (const [tid, t] of threadCpu(pid)) seen.set(tid, t);
      await sleep(250);
    }
    const processSeconds = processCpuSeconds(pid) - c0;
    for (const [tid, t] of threadCpu(pid)) seen.set(tid, t);
    const mem = processMemory(pid);
    const last = end()!;
    const before = [...base].map(([tid, t]) => ({ tid, seconds: seen.get(tid)! - t }));
    const mainSeconds = before.find((t) => t.tid === pid)?.seconds ?? NaN;
    const beforeSeconds = before.reduce((a, t) => a + t.seconds, 0);
    const received = state('received');
    const downloading = state('downloading');
    const verified = state('verified');
    if (!received || !last.result) {
      throw new EdgektError('EDGEKT_ERR_INTERNAL', `the bench job ended ${last.state} without a report (${last.error?.code ?? 'no code'}: ${last.error?.message ?? ''}):\n${o.agent.log.slice(-20).join('\n')}`);
    }
    const wall = (last.at - received.at) / 1000;
    const stages = last.result.report.stages.map((s) => ({ name: s.name, seconds: round(s.seconds) }));
    const stageSeconds = stages.reduce((a, s) => a + s.seconds, 0);
    return {
      jobId, state: last.state, met: last.result.met, teacherBytes: teacher.bytes,
      wallSeconds: round(wall), downloadSeconds: downloading && verified ? round((verified.at - downloading.at) / 1000) : NaN,
      stages, stageSeconds: round(stageSeconds), overheadSeconds: round(wall - stageSeconds), overheadShare: round((wall - stageSeconds) / wall),
      peakRssMB: round(mem.hwmMB, 1), peakSampledRssMB: round(peakSampled, 1), maxRssMB: o.maxRssMB, peakRssShareOfMax: round(mem.hwmMB / o.maxRssMB),
      timeline: Object.fromEntries(o.watch.updates.filter((u) => u.jobId === jobId && u.kind === 'state').map((u) => [u.state, round((u.at - received.at) / 1000)])),
      cpu: {
        processSeconds: round(processSeconds), mainThreadSeconds: round(mainSeconds), sharedThreadsSeconds: round(beforeSeconds - mainSeconds),
        jobThreadsSeconds: round(processSeconds - beforeSeconds), threadsBefore: base.size, jobThreads: seen.size - base.size,
      },
    };
  } finally {
    await server.close();
    await coord.endAsync(true);
  }
}
