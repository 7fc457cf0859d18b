import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { EdgektError } from '../../core/errors.js';
import { privateKeyPem, publicKeyPem } from '../../transport/keys.js';
import { generateKeyPair } from '../../transport/signing.js';
import { action, printJson, type CliContext } from '../context.js';

interface GenerateCliOptions {
  out: string;
  name: string;
  force?: boolean;
  json?: boolean;
}

async function writeNew(file: string, text: string, mode: number, force: boolean): Promise<void> {
  try {
    await writeFile(file, text, { mode, flag: force ? 'w' : 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new EdgektError('EDGEKT_ERR_USAGE', `${file} exists (use --force to replace it)`);
    throw e;
  }
}

export function registerKeys(program: Command, ctx: CliContext): void {
  const keys = program.command('keys').description('Ed25519 signing keys for manifests');
  keys
    .command('generate')
    .description('write a new key pair: NAME.key (private, mode 0600) and NAME.pub; prints its keyId')
    .requiredOption('--out <dir>', 'directory to write the key files into (created if missing)')
    .option('--name <name>', 'base name of the key files', 'edgekt')
    .option('--force', 'replace existing key files')
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (opts: GenerateCliOptions) => {
        if (!/^[A-Za-z0-9._-]+$/.test(opts.name)) throw new EdgektError('EDGEKT_ERR_USAGE', `--name must be a plain file name, got "${opts.name}"`);
        const dir = path.resolve(opts.out);
        await mkdir(dir, { recursive: true });
        const pair = generateKeyPair();
        const keyFile = path.join(dir, `${opts.name}.key`);
        const pubFile = path.join(dir, `${opts.name}.pub`);
        await writeNew(keyFile, privateKeyPem(pair.privateKey), 0o600, opts.force === true);
        await writeNew(pubFile, publicKeyPem(pair.publicKey), 0o644, opts.force === true);
        if (opts.json) return printJson(ctx, { keyId: pair.keyId, privateKey: keyFile, publicKey: pubFile });
        ctx.out(`keyId    ${pair.keyId}`);
        ctx.out(`private  ${keyFile} (keep secret)`);
        ctx.out(`public   ${pubFile} (give to devices: --trust)`);
      }),
    );
}
