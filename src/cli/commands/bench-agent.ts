import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { loadProfile } from '../../config/profile-files.js';
import { parseDeviceProfile, type DeviceProfile } from '../../config/device-profile.js';
import { EdgektError } from '../../core/errors.js';
import { buildReferenceTeacher } from '../../model/reference-teacher.js';
import { saveModel } from '../../model/io.js';
import { generateKeyPair, publicKeyPem } from '../../transport/keys.js';
import { action, parseIntOption, printJson, type CliContext } from '../context.js';
import { measureIdle, measureJob, startAgent, watchDevice, type IdleFigures, type JobFigures } from './bench-agent-daemon.js';
import { connect, runTransferBench, startBroker, type TransferBench } from './bench-agent-transfer.js';

export interface AgentBenchResult {
  date: string;
  loadAvg1m: { before: number; after: number };
  transfer: TransferBench;
  profile: string;
  idle: IdleFigures | null;
  job: JobFigures | null;
}

interface Options {
  mb: number;
  trials: number;
  idleSeconds: number;
  profile: string;
  skipAgent?: boolean;
  skipJob?: boolean;
  timeout: number;
  json?: boolean;
}

/**
 * The profile the agent runs with: the named profile's training limits (maxRssMB is what the job's
 * peak is held against), a cron window that is always open, and one generous budget so the tiny
 * job's verdict does not depend on this machine's latency.
 */
function benchProfile(name: string): DeviceProfile {
  const p = loadProfile(name);
  return parseDeviceProfile({ ...p, budgets: { modelSizeKB: '0.9x' }, training: { ...p.training, allowedCron: '* * * * *' } }, `${name} (bench)`);
}

/** A tiny VGG teacher (2 stages of 2 convolutions, Dense(64) head) like test/agent-e2e.test.ts's. */
async function writeTinyTeacher(ctx: CliContext, dir: string): Promise<void> {
  await ctx.backend();
  const m = buildReferenceTeacher({ widths: [16, 32], denseUnits: 64, seed: 1 });
  try {
    await saveModel(m, dir);
  } finally {
    m.dispose();
  }
}

async function runAgentPart(ctx: CliContext, o: Options, dir: string, brokerUrl: string, say: (s: string) => void): Promise<Pick<AgentBenchResult, 'idle' | 'job'>> {
  const profile = benchProfile(o.profile);
  const deviceId = 'bench-agent';
  const fleet = generateKeyPair();
  const teacherDir = path.join(dir, 'job-teacher');
  if (!o.skipJob) await writeTinyTeacher(ctx, teacherDir);
  const monitor = await connect(brokerUrl, 'bench-monitor');
  const watch = watchDevice(monitor, deviceId);
  const agent = await startAgent({ dir: path.join(dir, 'agent'), brokerUrl, deviceId, profile, fleetPub: publicKeyPem(fleet.publicKey) });
  try {
    await new Promise((r) => setTimeout(r, 3000)); // start-up done (first telemetry, outbox) before the idle window
    say(`agent ${agent.pid} connected; idle for ${o.idleSeconds} s`);
    const idle = await measureIdle(agent.pid, o.idleSeconds, watch.telemetry);
    if (o.skipJob) return { idle, job: null };
    say('sending one tiny compress job');
    const job = await measureJob({ agent, brokerUrl, deviceId, watch, fleetKey: fleet.privateKey, teacherDir, maxRssMB: profile.training.maxRssMB, timeoutSeconds: o.timeout });
    return { idle, job };
  } finally {
    await agent.stop();
    await monitor.endAsync(true);
  }
}

function printText(ctx: CliContext, r: AgentBenchResult): void {
  const t = r.transfer;
  const mb = (t.bytes / 2 ** 20).toFixed(2);
  ctx.out(`transfer  ${mb} MB, ${t.trials} trials alternating, 64 KB blocks, window ${t.window}`);
  ctx.out(`  blocks  ${t.blocks.seconds.median} s (${t.blocks.seconds.min}…${t.blocks.seconds.max}), ${t.blocks.mbPerSecond.median} MB/s`);
  ctx.out(`  plain   ${t.plain.seconds.median} s (${t.plain.seconds.min}…${t.plain.seconds.max}), ${t.plain.mbPerSecond.median} MB/s   ratio ${t.ratio}×`);
  if (r.idle) ctx.out(`idle      CPU ${r.idle.cpuPercent} % over ${r.idle.seconds} s, RSS ${r.idle.rssMB.median} MB (${r.idle.rssMB.min}…${r.idle.rssMB.max}), ${r.idle.telemetryMessages} telemetry messages`);
  if (r.job) {
    const j = r.job;
    ctx.out(`job       ${j.state} in ${j.wallSeconds} s; stages ${j.stageSeconds} s; overhead ${j.overheadSeconds} s = ${(100 * j.overheadShare).toFixed(1)} %`);
    ctx.out(`          peak RSS ${j.peakRssMB} MB of maxRssMB ${j.maxRssMB} (${(100 * j.peakRssShareOfMax).toFixed(1)} %)`);
    ctx.out(`          CPU ${j.cpu.processSeconds} s: main thread ${j.cpu.mainThreadSeconds} s, shared V8/libuv threads ${j.cpu.sharedThreadsSeconds} s, job threads ${j.cpu.jobThreadsSeconds} s`);
  }
  ctx.out(`load avg  ${r.loadAvg1m.before} → ${r.loadAvg1m.after}`);
}

/**
 * `edgekt bench agent`: the edge agent's own costs, on a spawned Mosquitto. The block protocol
 * against one plain message of the same bytes; a real `edgekt agent` idle with telemetry running;
 * then on one tiny real compress job: peak RSS against the profile, and the daemon's share of the
 * job's wall time.
 */
export function registerBenchAgent(bench: Command, ctx: CliContext): void {
  bench
    .command('agent')
    .description('edge agent figures on a spawned Mosquitto: block transfer vs plain mosquitto_pub/sub, idle CPU and RSS, peak RSS and daemon overhead on one tiny job')
    .option('--mb <n>', 'size of the transfer teacher\'s weights.bin, MB', parseIntOption('mb'), 5)
    .option('--trials <n>', 'transfer trials per side, alternating', parseIntOption('trials'), 5)
    .option('--idle-seconds <n>', 'idle window (at least 20)', parseIntOption('idle-seconds'), 30)
    .option('--profile <name|file>', 'profile whose training limits the agent runs with', 'x86-64-dev')
    .option('--skip-job', 'no compress job (transfer and idle only)')
    .option('--skip-agent', 'transfer only')
    .option('--timeout <s>', 'give up on the job after this many seconds', parseIntOption('timeout'), 900)
    .option('--json', 'print one JSON object')
    .action(action(ctx, async (o: Options) => {
      if (o.mb < 1 || o.trials < 1) throw new EdgektError('EDGEKT_ERR_USAGE', '--mb and --trials must be at least 1');
      if (o.idleSeconds < 20) throw new EdgektError('EDGEKT_ERR_USAGE', '--idle-seconds must be at least 20 (CPU ticks are 10 ms)');
      const say = (s: string): void => ctx.err(`bench agent: ${s}`);
      const before = os.loadavg()[0]!;
      const dir = mkdtempSync(path.join(os.tmpdir(), 'edgekt-bench-agent-'));
      const broker = await startBroker(dir);
      try {
        const transfer = await runTransferBench({ broker, dir, mb: o.mb, trials: o.trials, say });
        const agentPart = o.skipAgent ? { idle: null, job: null } : await runAgentPart(ctx, o, dir, broker.url, say);
        const r: AgentBenchResult = {
          date: new Date().toISOString(), loadAvg1m: { before: Math.round(before * 100) / 100, after: Math.round(os.loadavg()[0]! * 100) / 100 },
          transfer, profile: o.profile, ...agentPart,
        };
        if (o.json) printJson(ctx, r);
        else printText(ctx, r);
        return 0;
      } finally {
        broker.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    }));
}
