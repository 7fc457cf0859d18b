import { EdgektError } from '../core/errors.js';
import { createRng, gamma, shuffleInPlace, type Rng } from '../core/random.js';

export interface DirichletOptions {
  seed: number;
  /** Concentration: small (0.1) gives clients few classes, large (100) approaches IID. */
  alpha: number;
  /** Redraw (up to 100 times) until every client holds at least this many samples (default 1). */
  minSize?: number;
}

/**
 * Label-skewed non-IID partition (Hsu et al. 2019): for each class, client shares are drawn from
 * Dirichlet(alpha) and that class's samples are cut accordingly. Returns sample indices per client;
 * every sample goes to exactly one client.
 */
export function dirichletPartition(labels: Int32Array, numClients: number, opts: DirichletOptions): Int32Array[] {
  checkClients(numClients, labels.length);
  if (!(opts.alpha > 0)) throw new EdgektError('EDGEKT_ERR_USAGE', `Dirichlet alpha must be > 0, got ${opts.alpha}`);
  const minSize = opts.minSize ?? 1;
  if (minSize * numClients > labels.length) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `cannot give ${numClients} clients ${minSize} samples each from ${labels.length}`);
  }
  const rng = createRng(opts.seed);
  const byClass = groupByClass(labels);
  for (let attempt = 0; ; attempt++) {
    const clients: number[][] = Array.from({ length: numClients }, () => []);
    for (const idx of byClass) {
      const members = idx.slice();
      shuffleInPlace(members, rng);
      const shares = dirichlet(rng, numClients, opts.alpha);
      let acc = 0;
      let start = 0;
      for (let c = 0; c < numClients; c++) {
        acc += shares[c]!;
        const end = c === numClients - 1 ? members.length : Math.min(members.length, Math.round(acc * members.length));
        for (let k = start; k < end; k++) clients[c]!.push(members[k]!);
        start = Math.max(start, end);
      }
    }
    if (clients.every((c) => c.length >= minSize) || attempt >= 99) {
      if (!clients.every((c) => c.length >= minSize)) {
        throw new EdgektError('EDGEKT_ERR_USAGE', `Dirichlet(alpha=${opts.alpha}) left a client below ${minSize} samples after 100 draws; raise alpha or lower minSize`);
      }
      return clients.map((c) => Int32Array.from(c));
    }
  }
}

export interface ShardOptions {
  seed: number;
  /** Shards each client receives (McMahan et al. 2017 use 2: most clients see two classes). */
  shardsPerClient: number;
}

/**
 * Pathological non-IID partition (McMahan et al. 2017): sort samples by label, cut them into
 * numClients × shardsPerClient contiguous shards of near-equal size, hand each client random shards.
 */
export function shardPartition(labels: Int32Array, numClients: number, opts: ShardOptions): Int32Array[] {
  checkClients(numClients, labels.length);
  const k = opts.shardsPerClient;
  const numShards = numClients * k;
  if (!(Number.isInteger(k) && k >= 1) || numShards > labels.length) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `cannot cut ${labels.length} samples into ${numClients} x ${k} shards`);
  }
  const rng = createRng(opts.seed);
  // Ties inside a label are broken by a seeded shuffle, so a shard is a random slice of its class.
  const order = Array.from({ length: labels.length }, (_, i) => i);
  shuffleInPlace(order, rng);
  order.sort((a, b) => labels[a]! - labels[b]!);
  const shardIds = Array.from({ length: numShards }, (_, s) => s);
  shuffleInPlace(shardIds, rng);
  const bound = (s: number): number => Math.round((s * labels.length) / numShards);
  return Array.from({ length: numClients }, (_, c) => {
    const out: number[] = [];
    for (let j = 0; j < k; j++) {
      const s = shardIds[c * k + j]!;
      for (let i = bound(s); i < bound(s + 1); i++) out.push(order[i]!);
    }
    return Int32Array.from(out);
  });
}

/** IID baseline: a seeded shuffle dealt into near-equal parts. */
export function iidPartition(count: number, numClients: number, seed: number): Int32Array[] {
  checkClients(numClients, count);
  const order = Array.from({ length: count }, (_, i) => i);
  shuffleInPlace(order, createRng(seed));
  return Array.from({ length: numClients }, (_, c) =>
    Int32Array.from(order.slice(Math.round((c * count) / numClients), Math.round(((c + 1) * count) / numClients))),
  );
}

function checkClients(n: number, count: number): void {
  if (!(Number.isInteger(n) && n >= 1)) throw new EdgektError('EDGEKT_ERR_USAGE', `number of clients must be an integer >= 1, got ${n}`);
  if (n > count) throw new EdgektError('EDGEKT_ERR_USAGE', `${n} clients but only ${count} samples`);
}

function groupByClass(labels: Int32Array): number[][] {
  const m = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    let g = m.get(c);
    if (!g) m.set(c, (g = []));
    g.push(i);
  }
  return [...m.keys()].sort((a, b) => a - b).map((c) => m.get(c)!);
}

function dirichlet(rng: Rng, n: number, alpha: number): number[] {
  const g = Array.from({ length: n }, () => gamma(rng, alpha));
  const sum = g.reduce((a, b) => a + b, 0);
  return sum > 0 ? g.map((v) => v / sum) : g.map(() => 1 / n);
}
