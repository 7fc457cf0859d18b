import { z } from 'zod';
import { EdgektError } from '../core/errors.js';

/**
 * Block sizes a transfer may use, the range AWS IoT MQTT file delivery allows: small enough for
 * any broker's packet limit, large enough that per-message overhead stays small.
 */
export const BLOCK_SIZE_MIN = 256;
export const BLOCK_SIZE_MAX = 128 * 1024;
export const DEFAULT_BLOCK_SIZE = 64 * 1024;

export const Sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'lowercase hex sha256');

/** One topic level: the same rule as transport/topics (ids are used in topics and ACLs). */
export const ManifestIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'letters, digits, . _ : - (max 128)');

/** A relative POSIX path inside the artifact directory: never absolute, never escaping it. */
const RelativePathSchema = z
  .string()
  .min(1)
  .max(1024)
  .refine((p) => !p.startsWith('/') && !p.includes('\\') && !p.includes('\0'), 'a relative POSIX path')
  .refine((p) => p.split('/').every((s) => s !== '' && s !== '.' && s !== '..'), 'no empty, "." or ".." segments');

const IsoInstantSchema = z.iso.datetime({ offset: true });

export const ManifestFileSchema = z
  .object({
    path: RelativePathSchema,
    size: z.number().int().nonnegative(),
    sha256: Sha256HexSchema,
    blockSize: z.number().int().min(BLOCK_SIZE_MIN).max(BLOCK_SIZE_MAX),
    /**
     * sha256 of every block, signed with the rest: lets a puller reject one bad block (and ask for
     * it again) instead of discovering a bad file only after the last block.
     */
    blocks: z.array(Sha256HexSchema).optional(),
    /** Optional HTTP(S) location: fetched with range requests instead of MQTT blocks. */
    url: z.url({ protocol: /^https?$/ }).optional(),
  })
  .strict()
  .refine((f) => f.blocks === undefined || f.blocks.length === Math.ceil(f.size / f.blockSize), 'blocks must list one hash per block');
export type ManifestFile = z.infer<typeof ManifestFileSchema>;

export const ManifestTargetSchema = z
  .object({
    devices: z.array(ManifestIdSchema).optional(),
    groups: z.array(ManifestIdSchema).optional(),
  })
  .strict()
  .refine((t) => (t.devices?.length ?? 0) + (t.groups?.length ?? 0) > 0, 'target names at least one device or group');
export type ManifestTarget = z.infer<typeof ManifestTargetSchema>;

export const MANIFEST_KINDS = ['teacher', 'student', 'weights'] as const;

/**
 * What a signature covers (TUF's ideas, one role): the files by size and hash, who may install
 * them (target), a per-name version that only goes up (replay) and an expiry (freeze attacks).
 */
export const ManifestSchema = z
  .object({
    schema: z.literal(1),
    kind: z.enum(MANIFEST_KINDS),
    name: ManifestIdSchema,
    version: z.number().int().positive(),
    target: ManifestTargetSchema,
    issuedAt: IsoInstantSchema,
    expires: IsoInstantSchema,
    files: z
      .array(ManifestFileSchema)
      .min(1)
      .refine((fs) => new Set(fs.map((f) => f.path)).size === fs.length, 'file paths are unique'),
    meta: z.record(z.string(), z.json()).optional(),
  })
  .strict()
  .refine((m) => Date.parse(m.expires) > Date.parse(m.issuedAt), 'expires must be after issuedAt');
export type Manifest = z.infer<typeof ManifestSchema>;

export const SignatureSchema = z
  .object({
    /** First 16 hex digits of sha256 over the raw 32-byte Ed25519 public key. */
    keyId: z.string().regex(/^[0-9a-f]{16}$/),
    /** Ed25519 signature, base64. */
    sig: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'base64 of 64 bytes'),
  })
  .strict();
export type Signature = z.infer<typeof SignatureSchema>;

/** The envelope as it travels: the manifest is kept as received (`unknown`) until its signature verifies. */
export const EnvelopeSchema = z
  .object({
    manifest: z.unknown(),
    signatures: z.array(SignatureSchema).optional(),
  })
  .strict();

export interface SignedManifest {
  manifest: Manifest;
  signatures: Signature[];
}

/** One line for a zod error: `path: message; …` (for EDGEKT_ERR_MALFORMED messages). */
export function formatIssues(error: { issues: ReadonlyArray<{ path: readonly PropertyKey[]; message: string }> }): string {
  return error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Parses a manifest or throws EDGEKT_ERR_MALFORMED naming every issue. */
export function parseManifest(value: unknown): Manifest {
  const parsed = ManifestSchema.safeParse(value);
  if (!parsed.success) throw new EdgektError('EDGEKT_ERR_MALFORMED', `manifest: ${formatIssues(parsed.error)}`);
  return parsed.data;
}
