import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { clientMeans, FED_CONDITIONS, federatedMarkdown, type FedCondition, summarizeGroups, verdicts, type ClientAccuracy } from '../../bench/federated-bench.js';
import { EdgektError } from '../../core/errors.js';
import { action, parseDepthOption, parseFloatOption, parseIntOption, printJson, type CliContext } from '../context.js';
import { runSeed, type ExperimentSettings, type SeedRun } from '../fed-bench/experiment.js';
import { prepareBench, type BenchSetup, type SetupSettings } from '../fed-bench/setup.js';
import { readJobUnit, runSeedsInChildren, watchParent } from '../fed-bench/jobs.js';
import { createMqttTransport } from '../fed-bench/mqtt-transport.js';
import { createInProcessTransport } from '../fed-bench/transport.js';
import { cacheRoot } from './teacher.js';

type Preset = Omit<SetupSettings, 'cacheDir'> & ExperimentSettings;

const GROUPS = [
  { name: 'large', clients: 3, prune: 0.25 },
  { name: 'medium', clients: 3, prune: 0.45 },
  { name: 'small', clients: 2, prune: 0.65 },
];
/**
 * The full preset's fleet: 12 clients, 4 per group, 400 images each on average. With 3/3/2 the two
 * attackers were a quarter of the fleet and their data a quarter of the clients': leaving them out
 * (withoutAttackers) alone cost up to 14 points in a group (seed 2), whatever the aggregator did.
 */
const GROUPS_FULL = GROUPS.map((g) => ({ ...g, clients: 4 }));

/**
 * The issue's conditions: (a)–(e) and plain FedAvg under attack. `withoutAttackers` (the attack's
 * control, a diagnostic) runs when asked for with --conditions, and always in the tiny preset.
 */
const ISSUE_CONDITIONS: FedCondition[] = ['federated', 'prefix', 'localOnly', 'attacked', 'attackedFedAvg'];

/** The presets: `full` is what docs/benchmarks.md records (≤ 45 min here); `quick` a smoke run; `tiny` the test's. */
export const FED_PRESETS: Record<'full' | 'quick' | 'tiny', Preset> = {
  full: {
    data: 'fashion-mnist', serverSamples: 10000, clientSamples: 4800, testSamples: 2000, teacherEpochs: 3, baseEpochs: 5, width: 1,
    groups: GROUPS_FULL, alpha: 0.5, rounds: 7, epochs: 1, batchSize: 32, learningRate: 6e-3, mu: 0.01, maxSteps: 12,
    attackers: 2, attackScale: 10, trimBeta: 0.1, trimWeighted: true, attackClip: 'median', attackClipFactor: 2, attackRejectFactor: 3, seeds: [0, 1, 2],
    conditions: ISSUE_CONDITIONS,
  },
  quick: {
    data: 'fashion-mnist', serverSamples: 3000, clientSamples: 1600, testSamples: 1000, teacherEpochs: 2, baseEpochs: 2, width: 0.5,
    groups: GROUPS, alpha: 0.5, rounds: 3, epochs: 1, batchSize: 32, learningRate: 3e-3, mu: 0.01, maxSteps: 6,
    attackers: 2, attackScale: 10, trimBeta: 0.1, trimWeighted: true, attackClip: 'median', attackClipFactor: 2, attackRejectFactor: 3, seeds: [0, 1, 2],
    conditions: ISSUE_CONDITIONS,
  },
  tiny: {
    data: 'fashion-mnist', serverSamples: 256, clientSamples: 512, testSamples: 128, teacherEpochs: 1, baseEpochs: 1, width: 0.5,
    groups: GROUPS, alpha: 0.5, rounds: 2, epochs: 1, batchSize: 16, learningRate: 2e-3, mu: 0.01, maxSteps: 1,
    attackers: 2, attackScale: 10, trimBeta: 0.1, trimWeighted: true, attackClip: 'median', attackClipFactor: 2, attackRejectFactor: 3, seeds: [0, 1, 2],
  },
};

interface FedBenchOptions {
  json?: boolean;
  preset: string;
  rounds?: number;
  maxSteps?: number;
  seeds?: number[];
  data?: string;
  cache?: string;
  transport: string;
  conditions?: string;
  clients?: number | number[];
  clientSamples?: number;
  trimBeta?: number;
  trimUnweighted?: boolean;
  jobs?: number;
  jobUnit?: string;
  attackClipFactor?: number;
  attackRejectFactor?: number;
}

function parseSeedsOption(value: string): number[] {
  // A comma makes a list ("2," is seed 2 alone); a bare number is a count (3 = seeds 0, 1, 2).
  const list = value.includes(',');
  const parts = value.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
  const ns = parts.map(Number);
  if (parts.length === 0 || !ns.every((n) => Number.isInteger(n) && n >= 0) || (!list && ns[0]! < 1)) {
    throw new InvalidArgumentError(`--seeds expects a count ≥ 1 or a comma-separated list of seeds ≥ 0 (one seed: "2,"), got "${value}"`);
  }
  return list ? [...new Set(ns)] : Array.from({ length: ns[0]! }, (_, i) => i);
}

function groupsWith(groups: Preset['groups'], clients: number | number[]): Preset['groups'] {
  const counts = Array.isArray(clients) ? clients : groups.map(() => clients);
  if (counts.length !== groups.length) throw new EdgektError('EDGEKT_ERR_USAGE', `--clients takes one count or ${groups.length} (${groups.map((g) => g.name).join(',')}), got ${counts.length}`);
  return groups.map((g, i) => ({ ...g, clients: counts[i]! }));
}

function parseConditions(list: string): FedCondition[] {
  const names = list.split(',').map((c) => c.trim()).filter((c) => c.length > 0);
  const bad = names.filter((c) => !(FED_CONDITIONS as readonly string[]).includes(c));
  if (bad.length > 0 || names.length === 0) throw new EdgektError('EDGEKT_ERR_USAGE', `--conditions takes a comma-separated list of ${FED_CONDITIONS.join(', ')}; got ${list}`);
  return names as FedCondition[];
}

/** Ctrl-C or SIGTERM: exit through process.exit, so the 'exit' hooks stop the brokers and the child processes. */
function stopOnSignals(): void {
  const onSignal = (sig: NodeJS.Signals): void => process.exit(sig === 'SIGINT' ? 130 : 143);
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
}

function progressLog(ctx: CliContext, started: number): (line: string) => void {
  return (line) => ctx.err(`[${((performance.now() - started) / 1000).toFixed(0).padStart(5)} s] ${line}`);
}

/** The seeds of `s`, one after another in this process, on one transport; disposes the setup's models. */
async function runSeedsHere(setup: BenchSetup, s: Preset, transportName: 'mqtt' | 'in-process', log: (line: string) => void): Promise<{ runs: SeedRun[]; transport: string }> {
  const transport = transportName === 'mqtt'
    ? await createMqttTransport({ modelJson: { format: 'layers-model', modelTopology: setup.base.toJSON(null, false), weightsManifest: [] }, log })
    : createInProcessTransport();
  const runs: SeedRun[] = [];
  try {
    for (const seed of s.seeds) runs.push(await runSeed({ setup, settings: s, transport, seed, log }));
  } finally {
    await transport.close();
    setup.teacher.dispose();
    setup.base.dispose();
  }
  return { runs, transport: transport.name };
}

/** A --jobs child: the unit's settings, seeds and conditions, raw results to the unit's file. */
async function runJobUnit(ctx: CliContext, file: string): Promise<void> {
  const unit = await readJobUnit<Preset>(file);
  stopOnSignals();
  watchParent();
  await ctx.backend(); // --backend from the parent; without it tfjs would run its pure-JS fallback
  const log = progressLog(ctx, performance.now());
  const setup = await prepareBench({ ...unit.settings, cacheDir: unit.cacheDir }, log, { evaluate: false });
  const { runs } = await runSeedsHere(setup, unit.settings, unit.transport, log);
  await writeFile(unit.out, JSON.stringify(runs));
}

export function registerBenchFederated(bench: Command, ctx: CliContext): void {
  bench
    .command('federated')
    .description('federated fine-tuning of differently pruned students on non-IID Fashion-MNIST (Dirichlet 0.5): importance vs prefix channels, local only, none, under attack')
    .option('--json', 'print JSON')
    .option('--preset <name>', 'full (≤ 45 min, docs/benchmarks.md) | quick (a few minutes) | tiny (seconds, tests)', 'full')
    .option('--rounds <n>', 'federated rounds R', parseIntOption('rounds'))
    .option('--max-steps <n>', 'local steps per client and round', parseIntOption('max-steps'))
    .option('--seeds <n|list>', 'number of seeds (0..n-1), or the seeds themselves, comma-separated (e.g. 1,2; one seed: 2,)', parseSeedsOption)
    .option('--data <spec>', 'dataset spec (default fashion-mnist)')
    .option('--transport <name>', 'mqtt (a spawned Mosquitto, the real coordinator and one agent per client) | in-process', 'mqtt')
    .option('--clients <n|list>', 'clients per budget group (large,medium,small), e.g. 4,4,4', parseDepthOption('clients'))
    .option('--client-samples <n>', 'training images dealt to the clients in all (Dirichlet)', parseIntOption('client-samples'))
    .option('--conditions <list>', `only these conditions, comma-separated (default: the preset's; full and quick: ${ISSUE_CONDITIONS.join(',')}; none always runs): ${FED_CONDITIONS.join(',')}`)
    .option('--trim-beta <x>', 'attacked: share trimmed from each side of every coordinate', parseFloatOption('trim-beta'))
    .option('--trim-unweighted', 'attacked: the unweighted trim of Yin et al. (floor(β·holders) cut per side) instead of the presets\' sample-weighted one')
    .option('--attack-clip-factor <x>', 'attacked: server clip at x × the round\'s median update norm', parseFloatOption('attack-clip-factor'))
    .option('--attack-reject-factor <x>', 'attacked: leave out updates above x × the round\'s median norm', parseFloatOption('attack-reject-factor'))
    .option('--cache <dir>', 'where the teacher and base are cached (default $EDGEKT_CACHE|.cache/bench-federated)')
    .option('--jobs <n>', `processes run at a time, each a seed × half of the conditions with its own broker (default: the cores, ${os.availableParallelism()} here); results do not depend on it`, parseIntOption('jobs'))
    .addOption(new Option('--job-unit <file>', 'internal: a --jobs child runs the settings of this file and writes its raw per-seed results').hideHelp())
    .action(
      action(ctx, async (o: FedBenchOptions) => {
        if (o.jobUnit) return runJobUnit(ctx, o.jobUnit);
        const preset = FED_PRESETS[o.preset as keyof typeof FED_PRESETS];
        if (!preset) throw new EdgektError('EDGEKT_ERR_USAGE', `--preset must be full, quick or tiny, got ${o.preset}`);
        if (o.transport !== 'mqtt' && o.transport !== 'in-process') throw new EdgektError('EDGEKT_ERR_USAGE', `--transport must be mqtt or in-process, got ${o.transport}`);
        const transport: 'mqtt' | 'in-process' = o.transport;
        const s: Preset = {
          ...preset,
          ...(o.rounds !== undefined ? { rounds: o.rounds } : {}),
          ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
          ...(o.seeds !== undefined ? { seeds: o.seeds } : {}),
          ...(o.data !== undefined ? { data: o.data } : {}),
          ...(o.trimBeta !== undefined ? { trimBeta: o.trimBeta } : {}),
          ...(o.trimUnweighted ? { trimWeighted: false } : {}),
          ...(o.attackClipFactor !== undefined ? { attackClipFactor: o.attackClipFactor } : {}),
          ...(o.attackRejectFactor !== undefined ? { attackRejectFactor: o.attackRejectFactor } : {}),
          ...(o.clients !== undefined ? { groups: groupsWith(preset.groups, o.clients) } : {}),
          ...(o.clientSamples !== undefined ? { clientSamples: o.clientSamples } : {}),
          ...(o.conditions !== undefined ? { conditions: parseConditions(o.conditions) } : {}),
        };
        stopOnSignals();
        const info = await ctx.backend();
        const started = performance.now();
        const log = progressLog(ctx, started);
        const cacheDir = o.cache ?? path.join(cacheRoot(), 'bench-federated');
        const setup = await prepareBench({ ...s, cacheDir }, log);
        log(`teacher ${(setup.teacherAccuracy * 100).toFixed(2)}%, base ${(setup.baseAccuracy * 100).toFixed(2)}% on ${setup.test.count} test images`);
        const params = { teacher: setup.teacher.countParams(), base: setup.base.countParams() };
        const jobs = Math.max(1, Math.min(o.jobs ?? os.availableParallelism(), 2 * s.seeds.length));
        let runs: SeedRun[];
        let transportName: string = transport;
        if (jobs > 1) {
          // Teacher and base are cached now; each child loads them and runs its share of the seeds.
          setup.teacher.dispose();
          setup.base.dispose();
          runs = await runSeedsInChildren({ settings: s, cacheDir, transport }, info.backend, jobs, log);
        } else {
          const r = await runSeedsHere(setup, s, transport, log);
          runs = r.runs;
          transportName = r.transport;
        }
        const rows: ClientAccuracy[] = runs.flatMap((r) => r.rows);
        const groups = summarizeGroups(runs[0]!.groups, rows, s.seeds);
        const report = {
          groups,
          clients: clientMeans(rows),
          verdicts: verdicts(groups),
          settings: { ...s, transport: transportName, jobs, backend: info.backend, testSet: `Fashion-MNIST test, ${setup.test.count} images (seeded pick)` },
          teacher: { accuracy: setup.teacherAccuracy, params: params.teacher, cached: setup.cached.teacher, trainSeconds: setup.seconds.teacher },
          base: { accuracy: setup.baseAccuracy, params: params.base, cached: setup.cached.base, trainSeconds: setup.seconds.base },
          perSeed: runs.map((r, i) => ({ seed: s.seeds[i], clientSamples: r.clientSamples, seconds: r.seconds, attackClips: r.attackClips })),
          seconds: (performance.now() - started) / 1000,
        };
        if (o.json) return printJson(ctx, report);
        ctx.out(federatedMarkdown(groups));
        ctx.out(`accuracy % on ${setup.test.count} test images, mean ± half the spread over ${s.seeds.length} seeds; ${s.rounds} rounds; ${report.seconds.toFixed(0)} s`);
        ctx.out(`verdicts: ${JSON.stringify(report.verdicts)}`);
      }),
    );
}
