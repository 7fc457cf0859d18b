import type * as tf from '@tensorflow/tfjs';
import { clientMeans, summarizeGroups, verdicts, type ClientAccuracy, type FedCondition } from '../../bench/federated-bench.js';
import { RoundConfigSchema, type FederatedStrategyName, type RoundConfig } from '../../config/federated.js';
import { dirichletPartition, subset, type ImageSet } from '../../data/index.js';
import { aggregate, deltaOf, l2Norm, learnedUpdate, learnedWeights, type ClientUpdate, type IndexMap, type RoundTrainResult, type StrategyConfig, type WeightSet } from '../../federated/index.js';
import { weightSetFromModel } from '../../federated/tfjs-weights.js';
import { createRoundTrainer, enrolDevice, loadGlobalSlice } from '../../jobs/round-trainer.js';
import { median } from '../../core/stats.js';
import { evaluateAccuracy } from '../../model/index.js';
import type { BenchSetup } from './setup.js';
import { memoTrainer, signFlipTrainer, type FleetClient, type RoundTransport } from './transport.js';

export interface BudgetGroup {
  name: string;
  clients: number;
  /** Share of the base's prunable channels removed (one global L1 step). */
  prune: number;
}

export interface ExperimentSettings {
  groups: BudgetGroup[];
  alpha: number;
  rounds: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  mu: number;
  /** Cap on local steps per round (same compute for every condition). */
  maxSteps: number;
  /** Byzantine clients (the first client of each of the first groups), sign-flipped × attackScale. */
  attackers: number;
  attackScale: number;
  trimBeta: number;
  /** Robust condition: sample-weighted trimmed mean (β of the weight cut from each side). */
  trimWeighted?: boolean;
  /** Server clip of the robust condition: 'median' = attackClipFactor × the median update-delta norm of the round. */
  attackClip: 'median' | 'none';
  /** Multiple of the round's median norm the clip sits at (default 1: half the honest updates are scaled down too). */
  attackClipFactor?: number;
  /** Robust condition: updates above this × the round's median norm are left out before trimming (aggregate's rejectAboveMedian). */
  attackRejectFactor?: number;
  seeds: number[];
  /** Run only these conditions (diagnostics; the report's other columns are then NaN). Absent: all. */
  conditions?: FedCondition[];
}

interface SimClient {
  id: string;
  group: string;
  data: ImageSet;
  imp: { student: tf.LayersModel; indexMap: IndexMap };
  pre: { student: tf.LayersModel; indexMap: IndexMap };
  caches: { imp: Map<string, RoundTrainResult>; pre: Map<string, RoundTrainResult> };
}

const FAR = '2099-01-01T00:00:00Z';
/** Batches of local data BatchNorm statistics are recomputed on (after training and before evaluation). */
const RECALIBRATE_BATCHES = 10;

function roundConfig(e: ExperimentSettings, id: string, round: number, strategy: FederatedStrategyName): RoundConfig {
  return RoundConfigSchema.parse({ type: 'round-config', roundId: `${id}-r${round}`, round, strategy, epochs: e.epochs, learningRate: e.learningRate, batchSize: e.batchSize, mu: e.mu, trimBeta: e.trimBeta, trimWeighted: e.trimWeighted ?? false, deadline: FAR });
}

export interface SeedRunOptions {
  setup: BenchSetup;
  settings: ExperimentSettings;
  transport: RoundTransport;
  seed: number;
  log: (line: string) => void;
}

export interface SeedRun {
  rows: ClientAccuracy[];
  groups: Array<{ name: string; clients: string[]; params: number; pruneFraction: number }>;
  clientSamples: Record<string, number>;
  seconds: Partial<Record<FedCondition, number>>;
  /** Server clip norms used by the robust condition, per round. */
  attackClips: number[];
}

async function enrolClients(o: SeedRunOptions): Promise<SimClient[]> {
  const e = o.settings;
  const total = e.groups.reduce((a, g) => a + g.clients, 0);
  const parts = dirichletPartition(o.setup.pool.y!, total, { seed: o.seed, alpha: e.alpha, minSize: 2 * e.batchSize });
  const clients: SimClient[] = [];
  let k = 0;
  for (const g of e.groups) {
    for (let i = 0; i < g.clients; i++) {
      const data = subset(o.setup.pool, parts[k++]!);
      const pruning = { kind: 'fraction' as const, fraction: g.prune, minChannels: 2 };
      const imp = await enrolDevice({ base: o.setup.base, data, pruning });
      const pre = await enrolDevice({ base: o.setup.base, data, pruning, channels: 'prefix' });
      clients.push({ id: `${g.name}-${i + 1}`, group: g.name, data, imp: { student: imp.student, indexMap: imp.indexMap }, pre: { student: pre.student, indexMap: pre.indexMap }, caches: { imp: new Map(), pre: new Map() } });
    }
  }
  return clients;
}

function fleetOf(clients: readonly SimClient[], o: SeedRunOptions, variant: 'imp' | 'pre', attackers: ReadonlySet<string>): FleetClient[] {
  return clients.map((c, i) => {
    const dev = c[variant];
    const honest = createRoundTrainer({ teacher: o.setup.teacher, student: dev.student, indexMap: dev.indexMap, data: c.data, seed: o.seed * 100 + i, train: { maxSteps: o.settings.maxSteps, recalibrateBatches: RECALIBRATE_BATCHES } });
    const memo = memoTrainer(honest, dev.indexMap, c.caches[variant]);
    return { id: c.id, trainer: attackers.has(c.id) ? signFlipTrainer(memo, o.settings.attackScale) : memo };
  });
}

/**
 * Accuracy of each client's deployed model on the test set: its slice of `global` with BatchNorm
 * statistics recomputed on its own data (the same rule for every condition, `none` included).
 */
function evaluateSlices(clients: readonly SimClient[], variant: 'imp' | 'pre', globalOf: (c: SimClient) => WeightSet, test: ImageSet): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of clients) {
    const dev = c[variant];
    loadGlobalSlice(dev.student, globalOf(c), dev.indexMap, c.data, RECALIBRATE_BATCHES);
    out.set(c.id, evaluateAccuracy(dev.student, test));
  }
  return out;
}

/** One seed: enrol the fleet, then every condition from the same base and the same partitions. */
export async function runSeed(o: SeedRunOptions): Promise<SeedRun> {
  const e = o.settings;
  const clients = await enrolClients(o);
  const groups = e.groups.map((g) => {
    const members = clients.filter((c) => c.group === g.name);
    return { name: g.name, clients: members.map((c) => c.id), params: members[0]!.imp.student.countParams(), pruneFraction: g.prune };
  });
  const rows: ClientAccuracy[] = [];
  const seconds: SeedRun['seconds'] = {};
  const attackClips: number[] = [];
  const base = weightSetFromModel(o.setup.base);
  const push = (condition: FedCondition, acc: Map<string, number>): void => {
    for (const c of clients) rows.push({ seed: o.seed, condition, client: c.id, group: c.group, accuracy: acc.get(c.id)! });
    const g = e.groups.map((gr) => `${gr.name} ${((clients.filter((c) => c.group === gr.name).reduce((a, c) => a + acc.get(c.id)!, 0) / gr.clients) * 100).toFixed(2)}%`);
    o.log(`seed ${o.seed} ${condition}: ${g.join(', ')}`);
  };
  try {
    const none = new Map(clients.map((c) => [c.id, evaluateAccuracy(c.imp.student, o.setup.test)]));
    push('none', none);
    const attackerIds = new Set(e.groups.slice(0, e.attackers).map((g) => `${g.name}-1`));
    const wanted = (c: FedCondition): boolean => !e.conditions || e.conditions.includes(c);
    const federated = async (condition: FedCondition, variant: 'imp' | 'pre', strategy: StrategyConfig, attackers: 'none' | 'attack' | 'leave-out'): Promise<void> => {
      if (!wanted(condition)) return;
      const t0 = performance.now();
      const all = fleetOf(clients, o, variant, attackers === 'attack' ? attackerIds : new Set());
      const fleet = attackers === 'leave-out' ? all.filter((f) => !attackerIds.has(f.id)) : all;
      let global: WeightSet = base;
      for (let r = 1; r <= e.rounds; r++) {
        const config = roundConfig(e, `s${o.seed}-${condition}`, r, strategy.kind === 'trimmed-mean' ? 'trimmed-mean' : 'fedavg');
        const updates = await o.transport.round({ roundId: config.roundId, round: r, config, global, clients: fleet });
        let clip: number | undefined;
        const robust = strategy.kind === 'trimmed-mean';
        if (robust && e.attackClip === 'median') attackClips.push((clip = (e.attackClipFactor ?? 1) * median(updates.map((u) => l2Norm(deltaOf(learnedWeights(global), learnedUpdate(u)))))));
        const reject = robust && e.attackRejectFactor !== undefined ? { rejectAboveMedian: e.attackRejectFactor } : {};
        const res = aggregate(global, updates, { round: r, strategy, ...(clip !== undefined ? { clip } : {}), ...reject });
        if (res.rejected.length) o.log(`seed ${o.seed} ${condition} round ${r}: norm filter left out ${res.rejected.map((d) => `${d.clientId} (${d.norm.toFixed(2)} > ${d.threshold.toFixed(2)})`).join('; ')}`);
        if (res.dropped.length) o.log(`seed ${o.seed} ${condition} round ${r}: dropped ${res.dropped.map((d) => `${d.clientId} (${d.problems.map((p) => p.code).join(',')})`).join('; ')}`);
        global = res.weights;
        o.log(`seed ${o.seed} ${condition}: round ${r}/${e.rounds} aggregated (${res.included.length} updates)`);
      }
      const g = global;
      push(condition, evaluateSlices(clients, variant, () => g, o.setup.test));
      seconds[condition] = (performance.now() - t0) / 1000;
    };
    await federated('federated', 'imp', { kind: 'fedavg' }, 'none');
    await federated('prefix', 'pre', { kind: 'fedavg' }, 'none');
    // Local only: each client alone (FedAvg over one update keeps its own weights and the base elsewhere).
    if (wanted('localOnly')) {
      const t0 = performance.now();
      const fleet = fleetOf(clients, o, 'imp', new Set());
      const own = new Map<string, WeightSet>(clients.map((c) => [c.id, base]));
      for (let r = 1; r <= e.rounds; r++) {
        for (const [i, c] of clients.entries()) {
          const config = roundConfig(e, `s${o.seed}-local-${c.id}`, r, 'fedavg');
          const [u] = (await o.transport.round({ roundId: config.roundId, round: r, config, global: own.get(c.id)!, clients: [fleet[i]!] })) as [ClientUpdate];
          own.set(c.id, aggregate(own.get(c.id)!, [u], { round: r, strategy: { kind: 'fedavg' } }).weights);
        }
        o.log(`seed ${o.seed} localOnly: round ${r}/${e.rounds}`);
      }
      push('localOnly', evaluateSlices(clients, 'imp', (c) => own.get(c.id)!, o.setup.test));
      seconds.localOnly = (performance.now() - t0) / 1000;
    }
    await federated('attacked', 'imp', { kind: 'trimmed-mean', beta: e.trimBeta, weighted: e.trimWeighted ?? false }, 'attack');
    await federated('attackedFedAvg', 'imp', { kind: 'fedavg' }, 'attack');
    await federated('withoutAttackers', 'imp', { kind: 'fedavg' }, 'leave-out');
  } finally {
    for (const c of clients) {
      c.imp.student.dispose();
      c.pre.student.dispose();
    }
  }
  return { rows, groups, clientSamples: Object.fromEntries(clients.map((c) => [c.id, c.data.count])), seconds, attackClips };
}

export { clientMeans, summarizeGroups, verdicts };
