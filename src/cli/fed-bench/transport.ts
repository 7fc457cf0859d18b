import type { RoundConfig } from '../../config/federated.js';
import {
  sliceForDevice,
  zipWeights,
  type ClientUpdate,
  type RoundTrainer,
  type RoundTrainResult,
  type WeightSet,
} from '../../federated/index.js';

/** A simulated device as the bench drives it: its id and the trainer its round client would inject. */
export interface FleetClient {
  id: string;
  trainer: RoundTrainer;
}

export interface RoundRequest {
  roundId: string;
  round: number;
  config: RoundConfig;
  global: WeightSet;
  clients: readonly FleetClient[];
}

/**
 * The seam between the experiment and how a round travels: in process (call each trainer), or over
 * MQTT (coordinator driver + agent round clients). Either way the updates come back as data.
 */
export interface RoundTransport {
  readonly name: string;
  round(req: RoundRequest): Promise<ClientUpdate[]>;
  close(): Promise<void>;
}

/** Calls every client's trainer in turn, in this process. */
export function createInProcessTransport(onClient?: (clientId: string, round: number) => void): RoundTransport {
  return {
    name: 'in-process',
    async round(req) {
      const out: ClientUpdate[] = [];
      for (const c of req.clients) {
        onClient?.(c.id, req.round);
        const r = await c.trainer({ roundId: req.roundId, round: req.round, config: req.config, global: req.global, signal: new AbortController().signal });
        out.push({ clientId: c.id, round: req.round, numSamples: r.numSamples, weights: r.weights, indexMap: r.indexMap });
      }
      return out;
    },
    close: async () => {},
  };
}

/** FNV-1a over a WeightSet's names and float bits: the memo key of a round's start. */
export function weightsDigest(w: WeightSet): string {
  let h = 0x811c9dc5;
  const mix = (b: number): void => {
    h ^= b & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (const name of Object.keys(w).sort()) {
    for (let i = 0; i < name.length; i++) mix(name.charCodeAt(i));
    const bytes = new Uint8Array(w[name]!.values.buffer, w[name]!.values.byteOffset, w[name]!.values.byteLength);
    for (const b of bytes) mix(b);
  }
  return h.toString(16);
}

/**
 * Reuses a client's round result when the same client starts the same round from the same slice
 * with the same client settings (e.g. round 1 of every condition that starts from the base):
 * a round's training depends on nothing else, so this saves compute without changing a figure.
 */
export function memoTrainer(trainer: RoundTrainer, indexMap: RoundTrainResult['indexMap'], cache: Map<string, RoundTrainResult>): RoundTrainer {
  return async (req) => {
    const c = req.config;
    const key = `${req.round}|${c.epochs}|${c.learningRate}|${c.batchSize}|${c.mu}|${c.clip ?? ''}|${c.sigma}|${weightsDigest(sliceForDevice(req.global, indexMap))}`;
    const hit = cache.get(key);
    if (hit) return hit;
    const r = await trainer(req);
    cache.set(key, r);
    return r;
  };
}

/** A Byzantine client: trains honestly, then sends start − scale·(trained − start) (sign-flipped, ×scale). */
export function signFlipTrainer(trainer: RoundTrainer, scale: number): RoundTrainer {
  return async (req) => {
    const r = await trainer(req);
    const start = sliceForDevice(req.global, r.indexMap);
    return { ...r, weights: zipWeights(r.weights, start, (w, s) => s - scale * (w - s)) };
  };
}
