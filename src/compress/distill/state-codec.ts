import { z } from 'zod';
import { EdgektError } from '../../core/errors.js';
import type { DistillState, TensorData } from './state.js';

const tensorRef = z.strictObject({
  name: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  /** Offset into the weights blob, in float32 elements. */
  offset: z.number().int().nonnegative(),
});

const phase = z.enum(['hints', 'logits', 'joint']);
const count = z.number().int().nonnegative();
const lossSums = z.strictObject({
  total: z.number(),
  hints: z.array(z.number()),
  kd: z.number().nullable(),
  ce: z.number().nullable(),
  steps: count,
});
const phases = z.partialRecord(phase, lossSums);

const metaSchema = z.strictObject({
  format: z.literal('edgekt-distill-state'),
  version: z.literal(1),
  run: z.strictObject({
    schedule: z.enum(['fitnets', 'joint']),
    lrSchedule: z.enum(['constant', 'cosine']),
    learningRate: z.number(),
    seed: z.number(),
    batchSize: count,
    count,
    stepsPerEpoch: count,
    totalSteps: count,
    hintSteps: count,
  }),
  position: z.strictObject({ globalStep: count, epoch: count, step: count }),
  rng: z.strictObject({ noise: z.number().int().min(0).max(0xffffffff), shuffleSeed: z.number() }),
  student: z.array(tensorRef),
  adapters: z.array(tensorRef),
  optimizers: z.array(
    z.strictObject({ phase, iterations: count, accBeta1: z.number(), accBeta2: z.number(), moments: z.array(tensorRef) }),
  ),
  history: z.array(z.strictObject({ epoch: count, phases })),
  epochSums: phases,
  /** Float32 elements in the blob, so a truncated blob is caught before any read. */
  elements: count,
});

/** The JSON half of an encoded DistillState (tensor data replaced by offsets into the bytes). */
export type DistillStateMeta = z.infer<typeof metaSchema>;

/** A DistillState as a CheckpointStore keeps it: JSON-serialisable meta plus one little-endian float32 blob. */
export interface EncodedDistillState {
  meta: DistillStateMeta;
  weights: Uint8Array;
}

/** Splits a state into JSON meta and one float32 blob, for a CheckpointStore (or any byte store). */
export function encodeDistillState(state: DistillState): EncodedDistillState {
  const all: TensorData[] = [];
  let elements = 0;
  const ref = (t: TensorData): z.infer<typeof tensorRef> => {
    all.push(t);
    const r = { name: t.name, shape: t.shape.slice(), offset: elements };
    elements += t.data.length;
    return r;
  };
  const meta: DistillStateMeta = {
    format: 'edgekt-distill-state',
    version: 1,
    run: { ...state.run },
    position: { ...state.position },
    rng: { ...state.rng },
    student: state.student.map(ref),
    adapters: state.adapters.map(ref),
    optimizers: state.optimizers.map((o) => ({ phase: o.phase, iterations: o.iterations, accBeta1: o.accBeta1, accBeta2: o.accBeta2, moments: o.moments.map(ref) })),
    history: structuredClone(state.history),
    epochSums: structuredClone(state.epochSums),
    elements: 0,
  };
  meta.elements = elements;
  const blob = new Float32Array(elements);
  let at = 0;
  for (const t of all) {
    blob.set(t.data, at);
    at += t.data.length;
  }
  return { meta, weights: toLittleEndian(blob) };
}

/**
 * Inverse of encodeDistillState. Throws EDGEKT_ERR_CHECKPOINT on meta that fails the schema or on
 * bytes that do not hold what the meta describes (truncated, wrong size).
 */
export function decodeDistillState(encoded: { meta: unknown; weights: Uint8Array }): DistillState {
  const parsed = metaSchema.safeParse(encoded.meta);
  if (!parsed.success) {
    throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `distillation checkpoint meta is invalid: ${parsed.error.issues[0]?.message ?? ''}`, {
      issues: parsed.error.issues.slice(0, 5).map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    });
  }
  const m = parsed.data;
  if (encoded.weights.byteLength !== m.elements * 4) {
    throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `distillation checkpoint holds ${encoded.weights.byteLength} bytes, meta says ${m.elements * 4}`);
  }
  const blob = fromLittleEndian(encoded.weights);
  const take = (r: z.infer<typeof tensorRef>): TensorData => {
    const n = r.shape.reduce((a, b) => a * b, 1);
    if (r.offset + n > blob.length) throw new EdgektError('EDGEKT_ERR_CHECKPOINT', `distillation checkpoint tensor ${r.name} runs past the data`);
    return { name: r.name, shape: r.shape.slice(), data: blob.slice(r.offset, r.offset + n) };
  };
  return {
    version: 1,
    run: { ...m.run },
    position: { ...m.position },
    rng: { ...m.rng },
    student: m.student.map(take),
    adapters: m.adapters.map(take),
    optimizers: m.optimizers.map((o) => ({ ...o, moments: o.moments.map(take) })),
    history: m.history,
    epochSums: m.epochSums,
  };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function toLittleEndian(f: Float32Array): Uint8Array {
  const out = new Uint8Array(f.byteLength);
  if (LITTLE_ENDIAN) out.set(new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
  else {
    const view = new DataView(out.buffer);
    f.forEach((v, i) => view.setFloat32(i * 4, v, true));
  }
  return out;
}

function fromLittleEndian(bytes: Uint8Array): Float32Array {
  if (LITTLE_ENDIAN) return new Float32Array(bytes.slice().buffer); // slice: an aligned copy
  const out = new Float32Array(bytes.byteLength / 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}
