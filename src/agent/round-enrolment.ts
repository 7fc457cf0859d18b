import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Logger } from 'pino';
import type { DeviceProfile } from '../config/device-profile.js';
import { EnvelopeSchema, ManifestSchema } from '../config/manifest.js';
import { EdgektError } from '../core/errors.js';
import type { ImageSet } from '../data/types.js';
import type { IndexMap, WeightSet } from '../federated/index.js';
import { setModelWeights } from '../federated/tfjs-weights.js';
import { createRoundTrainer, enrolDevice, type RoundTrainerOptions } from '../jobs/round-trainer.js';
import { loadModel, saveModel } from '../model/io.js';
import type { JobStore } from '../store/jobs.js';
import { canonicalJson } from '../transport/canonical-json.js';
import { jobDir } from './executor.js';
import type { RoundTrainerFor } from './round-client.js';

export interface EnrolledTrainerOptions {
  stateDir: string;
  profile: DeviceProfile;
  /** The device's local labelled data (loaded once, on the first round). */
  loadData(): Promise<ImageSet>;
  /** A teacher bundle this agent received in a rollout, by its bundle sha256; null when it has none. */
  teacherFor(bundleSha256: string): Promise<tf.LayersModel | null>;
  seed?: number;
  train?: RoundTrainerOptions['train'];
  logger: Logger;
}

/** A round-trainer factory that owns tfjs models: `dispose()` frees them (daemon stop, tests). */
export type EnrolledTrainerFor = RoundTrainerFor & { dispose(): void };

/** Channels never cut below this share: pruning every channel of a group is not a model. */
const MAX_CUT = 0.9;

/**
 * The share of prunable channels to cut for the profile's size budget. Conv and dense parameters
 * scale with (kept in) × (kept out), so keeping a share s of channels keeps about s² of the
 * weights: s = √(budget / base size). No size budget (or one the base meets) = keep all.
 */
export function cutForProfile(profile: DeviceProfile, baseWeightBytes: number): number {
  const b = profile.budgets.modelSizeKB;
  if (b === undefined) return 0;
  const ratio = typeof b === 'string' ? Number(b.slice(0, -1)) : (b * 1024) / baseWeightBytes;
  if (!(ratio > 0) || ratio >= 1) return 0;
  return Math.min(MAX_CUT, 1 - Math.sqrt(ratio));
}

interface Enrolment {
  student: tf.LayersModel;
  indexMap: IndexMap;
}

/** Builds the base architecture from a topology-only model.json (empty weightsManifest). */
function baseFromJson(modelJson: string): Promise<tf.LayersModel> {
  let parsed: { modelTopology?: unknown };
  try {
    parsed = JSON.parse(modelJson) as { modelTopology?: unknown };
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', 'the round base model.json is not JSON', {}, { cause: e });
  }
  if (!parsed || typeof parsed.modelTopology !== 'object') throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', 'the round base model.json has no modelTopology');
  return tf.models.modelFromJSON({ modelTopology: parsed.modelTopology as tf.io.ModelJSON['modelTopology'] });
}

/**
 * The real trainer of `edgekt agent`: on the first round of a base, build its architecture, load
 * the round's global into it, enrol (prune to the profile's size budget, importance-chosen
 * channels) and cache the pruned student with its index map under STATE/federated/<baseSha256>,
 * so later rounds and restarts reuse the enrolment. Each round then runs createRoundTrainer (which
 * clips and adds noise) with the named teacher if this agent holds it, else labels only.
 */
export function createEnrolledTrainerFor(o: EnrolledTrainerOptions): EnrolledTrainerFor {
  const enrolments = new Map<string, Enrolment>();
  const teachers = new Map<string, tf.LayersModel | null>();
  let data: ImageSet | null = null;

  async function enrolment(baseSha256: string, modelJson: string, global: WeightSet): Promise<Enrolment> {
    const cached = enrolments.get(baseSha256);
    if (cached) return cached;
    const dir = path.join(o.stateDir, 'federated', baseSha256);
    let e: Enrolment;
    try {
      const indexMap = JSON.parse(await readFile(path.join(dir, 'index-map.json'), 'utf8')) as IndexMap;
      e = { student: (await loadModel(dir)).model, indexMap };
      o.logger.info({ baseSha256 }, 'federated enrolment reused');
    } catch {
      const base = await baseFromJson(modelJson);
      try {
        setModelWeights(base, global);
        const bytes = base.countParams() * 4;
        const fraction = cutForProfile(o.profile, bytes);
        data ??= await o.loadData();
        const enrolled = fraction > 0 ? await enrolDevice({ base, data, pruning: { kind: 'fraction', fraction } }) : null;
        const student = enrolled?.student ?? (await baseFromJson(modelJson));
        if (!enrolled) setModelWeights(student, global);
        e = { student, indexMap: enrolled?.indexMap ?? {} };
        const tmp = `${dir}.tmp-${process.pid}`;
        await rm(tmp, { recursive: true, force: true });
        await saveModel(student, tmp);
        await writeFile(path.join(tmp, 'index-map.json'), JSON.stringify(e.indexMap));
        await mkdir(path.dirname(dir), { recursive: true });
        await rm(dir, { recursive: true, force: true });
        await rename(tmp, dir);
        o.logger.info({ baseSha256, cut: fraction, baseParams: base.countParams(), studentParams: student.countParams() }, 'federated enrolment done');
      } finally {
        base.dispose();
      }
    }
    enrolments.set(baseSha256, e);
    return e;
  }

  async function teacher(sha: string | undefined): Promise<tf.LayersModel | null> {
    if (sha === undefined) return null;
    if (!teachers.has(sha)) {
      const t = await o.teacherFor(sha);
      if (!t) o.logger.warn({ teacherSha256: sha }, 'the round names a teacher this agent never received; training on labels only');
      teachers.set(sha, t);
    }
    return teachers.get(sha) ?? null;
  }

  const factory = (async (config, base, global) => {
    const e = await enrolment(base.baseSha256, base.modelJson, global);
    data ??= await o.loadData();
    return createRoundTrainer({ teacher: await teacher(config.teacherSha256), student: e.student, indexMap: e.indexMap, data, seed: o.seed ?? 0, ...(o.train ? { train: o.train } : {}) });
  }) as EnrolledTrainerFor;
  factory.dispose = () => {
    for (const e of enrolments.values()) e.student.dispose();
    for (const t of teachers.values()) t?.dispose();
    enrolments.clear();
    teachers.clear();
  };
  return factory;
}

/**
 * The directory of the teacher a round names (`teacherSha256`: the coordinator's bundle sha256 over
 * the canonical `{name, files}`) among the teachers this agent received in rollouts, or null.
 */
export function findReceivedTeacherDir(jobs: JobStore, stateDir: string, bundleSha256: string): string | null {
  for (const job of jobs.list({ limit: 1000 })) {
    const env = EnvelopeSchema.safeParse(job.manifest);
    const m = env.success ? ManifestSchema.safeParse(env.data.manifest) : null;
    if (!m?.success || m.data.kind !== 'teacher') continue;
    const sha = createHash('sha256').update(canonicalJson({ name: m.data.name, files: m.data.files })).digest('hex');
    const dir = path.join(jobDir(stateDir, job.jobId), 'teacher');
    // A job past `verified` holds the whole, hash-checked teacher; an earlier one may be partial.
    if (sha === bundleSha256 && !['received', 'downloading', 'rejected'].includes(job.state) && existsSync(path.join(dir, 'model.json'))) return dir;
  }
  return null;
}
