import type { KeyObject } from 'node:crypto';
import type { RoundConfig } from '../../config/federated.js';
import type { Manifest, ManifestFile, SignedManifest } from '../../config/manifest.js';
import { EdgektError } from '../../core/errors.js';
import { decodeUpdate, encodeUpdate, type FedAdamState, type WeightSet, type WeightTensor } from '../../federated/index.js';
import { signManifest } from '../../transport/signing.js';
import type { ArtifactStore } from '../artifacts.js';

/** The files of a round invite, by their path in the manifest. */
export const GLOBAL_FILE = 'global.ekup';
export const MODEL_FILE = 'model.json';

/** The global weights file of a round (protocol §1): an EKUP update from client `global`, float32, no index map. */
export function encodeGlobal(weights: WeightSet, round: number, roundId: string): Uint8Array {
  return encodeUpdate({ clientId: 'global', round, numSamples: 1, weights }, { roundId, encoding: 'float32' });
}

/** Weights of a global file; refuses deltas and sliced payloads (a global is always whole weights). */
export function decodeGlobal(bytes: Uint8Array): Record<string, WeightTensor> {
  const { header, update } = decodeUpdate(bytes);
  if (header.payload !== 'weights' || update.indexMap) throw new EdgektError('EDGEKT_ERR_UPDATE_FORMAT', 'a global weights file holds whole weights: no delta, no index map');
  return { ...update.weights };
}

/** A tfjs model.json with its weightsManifest emptied: the architecture only (devices build it and enrol). */
export function topologyOnly(modelJson: Record<string, unknown>): Record<string, unknown> {
  return { ...modelJson, weightsManifest: [] };
}

/** FedAdam's m and v as two EKUP files in the artifact store; the run keeps `{ step, mSha256, vSha256 }`. */
export async function saveFedAdamState(artifacts: ArtifactStore, runId: string, round: number, state: FedAdamState): Promise<{ step: number; mSha256: string; vSha256: string }> {
  const put = async (part: 'm' | 'v', w: WeightSet): Promise<string> => {
    const bytes = encodeUpdate({ clientId: `fedadam-${part}`, round, numSamples: 1, weights: w }, { roundId: `${runId}-fedadam`, encoding: 'float32' });
    return (await artifacts.publishFile(`${runId}/fedadam-r${round}-${part}`, `fedadam-${part}.ekup`, bytes)).sha256;
  };
  return { step: state.step, mSha256: await put('m', state.m), vSha256: await put('v', state.v) };
}

export async function loadFedAdamState(artifacts: ArtifactStore, saved: Record<string, unknown> | null): Promise<FedAdamState | null> {
  if (!saved || typeof saved.mSha256 !== 'string' || typeof saved.vSha256 !== 'string' || typeof saved.step !== 'number') return null;
  const m = decodeUpdate(await artifacts.readBytes(saved.mSha256)).update.weights;
  const v = decodeUpdate(await artifacts.readBytes(saved.vSha256)).update.weights;
  return { step: saved.step, m, v };
}

/**
 * The invite manifest (protocol §2): kind `weights`, signed with the fleet key, for the invited
 * devices, naming the global file and the topology, with the RoundConfig in `meta.round`. The
 * version is the signing time (ms), so each round's manifest is newer than the last.
 */
export function signRoundManifest(o: { config: RoundConfig; files: readonly ManifestFile[]; deviceIds: readonly string[]; fleetKey: KeyObject; now: number }): SignedManifest {
  const deadline = Date.parse(o.config.deadline);
  const manifest: Manifest = {
    schema: 1, kind: 'weights', name: o.config.roundId, version: Math.max(1, o.now), target: { devices: [...o.deviceIds] },
    issuedAt: new Date(o.now).toISOString(), expires: new Date(Math.max(deadline, o.now) + 3600_000).toISOString(),
    files: [...o.files], meta: { round: o.config as never },
  };
  return signManifest(manifest, o.fleetKey);
}
