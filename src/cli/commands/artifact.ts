import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_BLOCK_SIZE, MANIFEST_KINDS, type Manifest } from '../../config/manifest.js';
import { EdgektError } from '../../core/errors.js';
import { readPrivateKeyFile, readPublicKeyFile } from '../../transport/keys.js';
import { manifestForDir, verifyDirFiles } from '../../transport/manifest-dir.js';
import { signManifest, verifyEnvelope, verifyManifest } from '../../transport/signing.js';
import { action, parseIntOption, printJson, type CliContext } from '../context.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `30m`, `12h`, `7d` (from now) or an ISO instant → seconds from `now`. */
export function parseExpires(value: string, now: number): number {
  const m = /^(\d+)([smhd])$/.exec(value);
  const seconds = m ? Number(m[1]) * UNITS[m[2]!]! : (Date.parse(value) - now) / 1000;
  if (!Number.isFinite(seconds) || seconds <= 0) throw new EdgektError('EDGEKT_ERR_USAGE', `--expires expects 30m, 12h, 7d or a future ISO time, got "${value}"`);
  return Math.round(seconds);
}

interface SignCliOptions {
  key: string;
  name: string;
  artifactVersion: string;
  kind: string;
  targetDevice: string[];
  targetGroup: string[];
  expires: string;
  blockSize: string;
  out?: string;
  json?: boolean;
}

interface VerifyCliOptions {
  trust: string[];
  device?: string;
  group: string[];
  lastVersion?: string;
  maxBytes?: string;
  files: boolean;
  json?: boolean;
}

function summary(m: Manifest): string[] {
  const target = [...(m.target.devices ?? []).map((d) => `device ${d}`), ...(m.target.groups ?? []).map((g) => `group ${g}`)].join(', ');
  const bytes = m.files.reduce((s, f) => s + f.size, 0);
  return [`${m.kind} ${m.name} v${m.version}`, `target   ${target}`, `expires  ${m.expires}`, `files    ${m.files.length} (${bytes.toLocaleString('en-US')} bytes)`];
}

export function registerArtifact(program: Command, ctx: CliContext): void {
  const artifact = program.command('artifact').description('signed artifact manifests (what the coordinator delivers to devices)');
  artifact
    .command('sign')
    .argument('<dir>', 'directory of the artifact files (e.g. a tfjs model)')
    .description('hash every file of DIR and write the signed manifest envelope (DIR/manifest.json unless --out)')
    .requiredOption('--key <file>', 'Ed25519 private key file (PEM or raw base64), from `edgekt keys generate`')
    .requiredOption('--name <name>', 'artifact name (versions are monotonic per name)')
    // Not --version: commander gives that to the root program wherever it stands on the line.
    .requiredOption('--artifact-version <n>', 'version, a positive integer greater than the last one delivered under --name')
    .option('--kind <kind>', `artifact kind: ${MANIFEST_KINDS.join(' | ')}`, 'teacher')
    .option('--target-device <id>', 'device allowed to install it (repeatable)', collect, [])
    .option('--target-group <group>', 'device group allowed to install it (repeatable)', collect, [])
    .option('--expires <when>', 'expiry: 30m, 12h, 7d from now, or an ISO time', '7d')
    .option('--block-size <bytes>', 'transfer block size (256 to 131072)', String(DEFAULT_BLOCK_SIZE))
    .option('--out <file>', 'where to write the envelope (default DIR/manifest.json)')
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (dir: string, opts: SignCliOptions) => {
        const version = parseIntOption('artifact-version')(opts.artifactVersion);
        const blockSize = parseIntOption('block-size')(opts.blockSize);
        if (!(MANIFEST_KINDS as readonly string[]).includes(opts.kind)) throw new EdgektError('EDGEKT_ERR_USAGE', `--kind must be one of ${MANIFEST_KINDS.join(', ')}`);
        if (opts.targetDevice.length + opts.targetGroup.length === 0) throw new EdgektError('EDGEKT_ERR_USAGE', 'give at least one --target-device or --target-group');
        const now = Date.now();
        const root = path.resolve(dir);
        const out = path.resolve(opts.out ?? path.join(root, 'manifest.json'));
        const rel = path.relative(root, out).split(path.sep).join('/');
        const key = await readPrivateKeyFile(opts.key);
        const manifest = await manifestForDir(root, {
          kind: opts.kind as Manifest['kind'],
          name: opts.name,
          version,
          target: { ...(opts.targetDevice.length ? { devices: opts.targetDevice } : {}), ...(opts.targetGroup.length ? { groups: opts.targetGroup } : {}) },
          expiresInSeconds: parseExpires(opts.expires, now),
          blockSize,
          now,
          exclude: [rel],
        });
        const envelope = signManifest(manifest, key);
        await writeFile(out, JSON.stringify(envelope, null, 2) + '\n');
        if (opts.json) return printJson(ctx, { out, keyId: envelope.signatures[0]!.keyId, manifest });
        for (const line of summary(manifest)) ctx.out(line);
        ctx.out(`signed   by ${envelope.signatures[0]!.keyId} → ${out}`);
      }),
    );
  artifact
    .command('verify')
    .argument('<file>', 'manifest envelope (manifest.json)')
    .description('check the signature, expiry and (with --device/--group) target and version; then the files next to it')
    .requiredOption('--trust <pubfile>', 'trusted public key file (repeatable)', collect, [])
    .option('--device <id>', 'check the manifest targets this device (or one of --group)')
    .option('--group <group>', 'groups of that device (repeatable)', collect, [])
    .option('--last-version <n>', 'refuse versions not newer than this')
    .option('--max-bytes <n>', 'refuse manifests declaring more bytes than this')
    .option('--no-files', 'do not check the files next to the manifest')
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (file: string, opts: VerifyCliOptions) => {
        if (opts.trust.length === 0) throw new EdgektError('EDGEKT_ERR_USAGE', 'give at least one --trust public key file');
        const trustedKeys = await Promise.all(opts.trust.map((f) => readPublicKeyFile(f)));
        const text = await readFile(file).catch((e: unknown) => {
          throw new EdgektError('EDGEKT_ERR_MALFORMED', `cannot read ${file}`, {}, { cause: e });
        });
        const base = {
          trustedKeys,
          now: Date.now(),
          ...(opts.maxBytes === undefined ? {} : { maxBytes: parseIntOption('max-bytes')(opts.maxBytes) }),
        };
        const targeted = opts.device !== undefined || opts.group.length > 0;
        if (opts.lastVersion !== undefined && !targeted) throw new EdgektError('EDGEKT_ERR_USAGE', '--last-version goes with --device or --group');
        const m = targeted
          ? verifyManifest(text, {
              ...base,
              deviceId: opts.device ?? '',
              groups: opts.group,
              ...(opts.lastVersion === undefined ? {} : { lastVersion: parseIntOption('last-version')(opts.lastVersion) }),
            })
          : verifyEnvelope(text, base);
        if (opts.files) await verifyDirFiles(path.dirname(path.resolve(file)), m);
        if (opts.json) return printJson(ctx, { ok: true, filesChecked: opts.files, manifest: m });
        for (const line of summary(m)) ctx.out(line);
        ctx.out(`ok       signature${targeted ? ', target' : ''}${opts.files ? ', files' : ''} verified`);
      }),
    );
}
