/**
 * The report of `edgekt bench federated` as plain data: per-client accuracies of each condition and
 * seed go in, per-group means with their spread over seeds come out. Pure, so a test can feed it.
 */

/**
 * `withoutAttackers` is the control of the attack: (a) with the two attackers left out of the fleet
 * altogether (their data lost, nothing bad aggregated). The gap (a) − withoutAttackers is what losing
 * their data costs; withoutAttackers − attacked is what the robust aggregation itself costs.
 */
export const FED_CONDITIONS = ['federated', 'prefix', 'localOnly', 'none', 'attacked', 'attackedFedAvg', 'withoutAttackers'] as const;
export type FedCondition = (typeof FED_CONDITIONS)[number];

export interface SeedStat {
  /** Mean over seeds of the group's mean client accuracy. */
  mean: number;
  /** max − min over seeds of the group's mean client accuracy. */
  spread: number;
  /** The group mean of each seed. */
  perSeed: number[];
}

export interface FedGroupReport extends Record<FedCondition, SeedStat> {
  name: string;
  clients: string[];
  /** Parameters of the group's pruned student (importance and prefix alike). */
  params: number;
  /** Share of the base's prunable channels removed. */
  pruneFraction: number;
}

/** Accuracy of one client under one condition and seed. */
export interface ClientAccuracy {
  seed: number;
  condition: FedCondition;
  client: string;
  group: string;
  accuracy: number;
}

const mean = (v: readonly number[]): number => v.reduce((a, b) => a + b, 0) / v.length;

export function summarizeGroups(
  groups: ReadonlyArray<{ name: string; clients: string[]; params: number; pruneFraction: number }>,
  rows: readonly ClientAccuracy[],
  seeds: readonly number[],
): FedGroupReport[] {
  return groups.map((g) => {
    const stat = (condition: FedCondition): SeedStat => {
      const perSeed = seeds.map((s) => mean(rows.filter((r) => r.seed === s && r.condition === condition && r.group === g.name).map((r) => r.accuracy)));
      return { mean: mean(perSeed), spread: Math.max(...perSeed) - Math.min(...perSeed), perSeed };
    };
    return { ...g, ...(Object.fromEntries(FED_CONDITIONS.map((c) => [c, stat(c)])) as Record<FedCondition, SeedStat>) };
  });
}

/** Per client and condition: mean accuracy over seeds. */
export function clientMeans(rows: readonly ClientAccuracy[]): Array<{ client: string; group: string } & Record<FedCondition, number>> {
  const clients = [...new Map(rows.map((r) => [r.client, r.group])).entries()];
  return clients.map(([client, group]) => ({
    client,
    group,
    ...(Object.fromEntries(FED_CONDITIONS.map((c) => [c, mean(rows.filter((r) => r.client === client && r.condition === c).map((r) => r.accuracy))])) as Record<FedCondition, number>),
  }));
}

/** The Done-when checks of issue 12, as data. */
export function verdicts(groups: readonly FedGroupReport[]): { federatedBeatsLocalAndNone: boolean; attackedWithin2Points: boolean; federatedBeatsPrefix: boolean } {
  return {
    federatedBeatsLocalAndNone: groups.every((g) => g.federated.mean > g.localOnly.mean && g.federated.mean > g.none.mean),
    attackedWithin2Points: groups.every((g) => g.federated.mean - g.attacked.mean <= 0.02),
    federatedBeatsPrefix: groups.every((g) => g.federated.mean > g.prefix.mean),
  };
}

const pct = (s: SeedStat): string => (Number.isFinite(s.mean) ? `${(s.mean * 100).toFixed(2)} ± ${((s.spread * 100) / 2).toFixed(2)}` : 'not run');

/** Markdown table: one row a group, accuracy % (mean ± half the spread over seeds). */
export function federatedMarkdown(groups: readonly FedGroupReport[]): string {
  return [
    `| group | clients | params | ${FED_CONDITIONS.join(' | ')} |`,
    `|---|---:|---:|${FED_CONDITIONS.map(() => '---:').join('|')}|`,
    ...groups.map((g) => `| ${g.name} (−${Math.round(g.pruneFraction * 100)} % ch.) | ${g.clients.length} | ${g.params.toLocaleString('en-US')} | ${FED_CONDITIONS.map((c) => pct(g[c])).join(' | ')} |`),
  ].join('\n');
}
