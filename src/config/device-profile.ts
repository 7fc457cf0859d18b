import { z } from 'zod';
import cron from 'node-cron';
import { EdgektError } from '../core/errors.js';

/**
 * A budget figure: a plain number is absolute (ms, MB or KB), a string like "0.3x" is relative to
 * the teacher measured on the same device, so one profile works whatever teacher is compressed.
 */
export const BudgetValueSchema = z.union([
  z.number().positive(),
  z.string().regex(/^\d+(\.\d+)?x$/, 'relative budgets look like "0.3x"'),
]);
export type BudgetValue = z.infer<typeof BudgetValueSchema>;

const MinAccuracySchema = z.union([
  z.number().min(0).max(1),
  z.string().regex(/^\d+(\.\d+)?x$/, 'relative budgets look like "0.99x"'),
]);

export const BudgetsSchema = z
  .object({
    /** Batch-1 inference latency, 95th percentile after warm-up, milliseconds. */
    latencyP95: BudgetValueSchema.optional(),
    /** Peak tensor memory during one batch-1 inference (weights included), MB. */
    peakMemoryMB: BudgetValueSchema.optional(),
    /** float32 weight bytes, KB. */
    modelSizeKB: BudgetValueSchema.optional(),
    /** Accuracy in [0, 1], or relative to the teacher's ("0.99x"). */
    minAccuracy: MinAccuracySchema.optional(),
  })
  .strict();
export type Budgets = z.infer<typeof BudgetsSchema>;

const cronExpr = z.string().refine((s) => cron.validate(s), 'not a valid cron expression');

export const DeviceProfileSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
    description: z.string().default(''),
    match: z
      .object({
        /** Node/systeminformation arch names, e.g. "arm64", "arm", "x64". */
        arch: z.array(z.string().min(1)).min(1),
        /** Case-insensitive regex tested against "manufacturer brand" and the board model. */
        cpuModel: z
          .string()
          .refine((s) => {
            try {
              new RegExp(s, 'i');
              return true;
            } catch {
              return false;
            }
          }, 'not a valid regular expression')
          .optional(),
        memoryMB: z
          .object({ min: z.number().nonnegative().default(0), max: z.number().positive().optional() })
          .refine((m) => m.max === undefined || m.max >= m.min, 'memoryMB.max < memoryMB.min')
          .optional(),
      })
      .strict(),
    budgets: BudgetsSchema,
    runtime: z
      .object({
        backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
        threads: z.number().int().positive().default(1),
      })
      .strict(),
    training: z
      .object({
        batchSize: z.number().int().positive(),
        maxRssMB: z.number().positive(),
        maxTemperatureC: z.number().positive().max(150),
        /** Cron expression whose matching minutes are the ones training may run in. */
        allowedCron: cronExpr.default('* * * * *'),
      })
      .strict(),
  })
  .strict();
export type DeviceProfile = z.infer<typeof DeviceProfileSchema>;

/** Names shipped in device-profiles/*.json. */
export const BUILTIN_PROFILES = [
  'raspberry-pi-3b',
  'raspberry-pi-4',
  'raspberry-pi-5',
  'jetson-nano',
  'jetson-orin-nano',
  'x86-64-dev',
] as const;

/** Validates untrusted JSON; every problem is reported at once, under EDGEKT_ERR_PROFILE. */
export function parseDeviceProfile(json: unknown, source = 'profile'): DeviceProfile {
  const r = DeviceProfileSchema.safeParse(json);
  if (!r.success) {
    throw new EdgektError('EDGEKT_ERR_PROFILE', `${source}: ${z.prettifyError(r.error).replace(/\n/g, '; ')}`, {
      issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  return r.data;
}

/** What `profile detect` learns about this machine (kept plain so tests can fake it). */
export interface MachineFacts {
  arch: string;
  cpuModel: string;
  memoryMB: number;
}

export interface ProfileMatch {
  name: string;
  score: number;
  reasons: string[];
}

/**
 * Scores how well a machine fits a profile: arch is required; the CPU regex and memory range add
 * evidence. Score 0 = no match. Higher = more specific.
 */
export function matchProfile(profile: DeviceProfile, m: MachineFacts): ProfileMatch {
  const reasons: string[] = [];
  if (!profile.match.arch.includes(m.arch)) return { name: profile.name, score: 0, reasons: [`arch ${m.arch} not in ${profile.match.arch.join('|')}`] };
  let score = 1;
  reasons.push(`arch ${m.arch}`);
  if (profile.match.cpuModel !== undefined) {
    if (!new RegExp(profile.match.cpuModel, 'i').test(m.cpuModel)) {
      return { name: profile.name, score: 0, reasons: [...reasons, `cpu "${m.cpuModel}" !~ /${profile.match.cpuModel}/`] };
    }
    score += 2;
    reasons.push(`cpu ~ /${profile.match.cpuModel}/`);
  }
  const mem = profile.match.memoryMB;
  if (mem) {
    if (m.memoryMB < mem.min || (mem.max !== undefined && m.memoryMB > mem.max)) {
      return { name: profile.name, score: 0, reasons: [...reasons, `memory ${m.memoryMB} MB outside [${mem.min}, ${mem.max ?? '∞'}]`] };
    }
    score += 1;
    reasons.push(`memory ${m.memoryMB} MB in range`);
  }
  return { name: profile.name, score, reasons };
}

/** Best match first; ties keep input order. Non-matching profiles are left out. */
export function rankProfiles(profiles: DeviceProfile[], m: MachineFacts): ProfileMatch[] {
  return profiles
    .map((p) => matchProfile(p, m))
    .filter((r) => r.score > 0)
    .sort((a, b) => b.score - a.score);
}

/** Teacher figures a relative budget is multiplied by. */
export interface ReferenceFigures {
  latencyP95Ms: number;
  peakMemoryMB: number;
  modelSizeKB: number;
  accuracy?: number;
}

export interface ResolvedBudgets {
  /** Absolute p95 limit; for a relative budget, the factor times the teacher's robust p95. */
  latencyP95Ms?: number;
  /**
   * A relative latency budget's factor ("0.5x" → 0.5): the loop checks it against the teacher
   * measured in the same interleaved run as each candidate, not against one early reading.
   */
  latencyP95Ratio?: number;
  peakMemoryMB?: number;
  modelSizeKB?: number;
  minAccuracy?: number;
}

function resolve(v: BudgetValue | undefined, ref: number | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  if (ref === undefined) throw new EdgektError('EDGEKT_ERR_PROFILE', `relative budget ${what}=${v} needs a teacher figure`);
  return Number(v.slice(0, -1)) * ref;
}

/**
 * Turns "0.3x" budgets into absolute limits against the teacher's robust figures (median of trials);
 * a relative latency budget also keeps its factor, which the loop checks side by side with the teacher.
 */
export function resolveBudgets(b: Budgets, teacher: ReferenceFigures): ResolvedBudgets {
  const out: ResolvedBudgets = {};
  const lat = resolve(b.latencyP95, teacher.latencyP95Ms, 'latencyP95');
  const mem = resolve(b.peakMemoryMB, teacher.peakMemoryMB, 'peakMemoryMB');
  const size = resolve(b.modelSizeKB, teacher.modelSizeKB, 'modelSizeKB');
  const acc = resolve(b.minAccuracy, teacher.accuracy, 'minAccuracy');
  if (lat !== undefined) out.latencyP95Ms = lat;
  if (typeof b.latencyP95 === 'string') out.latencyP95Ratio = Number(b.latencyP95.slice(0, -1));
  if (mem !== undefined) out.peakMemoryMB = mem;
  if (size !== undefined) out.modelSizeKB = size;
  if (acc !== undefined) out.minAccuracy = acc;
  return out;
}

export type { ModelCost } from './measurement.js';
