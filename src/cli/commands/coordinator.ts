import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { setFlagsFromString } from 'node:v8';
import pino from 'pino';
import { parseCoordinatorConfig } from '../../config/coordinator-config.js';
import { EdgektError } from '../../core/errors.js';
import { createCoordinator } from '../../coordinator/daemon.js';
import { createPostgresCoordinatorStore, createSqliteCoordinatorStore } from '../../store/coordinator/index.js';
import { readPrivateKeyFile } from '../../transport/keys.js';
import { action, type CliContext } from '../context.js';

async function readText(file: string, field: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_CONFIG', `${field}: cannot read ${file} (${e instanceof Error ? e.message : String(e)})`, { path: field });
  }
}

/** Tokens, one per line; blank lines and # comments ignored. */
export const tokenLines = (text: string): string[] => text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

/** `edgekt coordinator --config FILE`: registry, artifacts, rollouts and the HTTP API, until SIGTERM. */
export function registerCoordinator(program: Command, ctx: CliContext): void {
  program
    .command('coordinator')
    .description('run the fleet coordinator: device registry, signed teachers served in blocks, staged rollouts, results, HTTP API')
    .requiredOption('--config <file>', 'coordinator YAML config (broker, store, http, fleet key, artifacts dir)')
    .action(
      action(ctx, async (o: { config: string }) => {
        const c = parseCoordinatorConfig(await readText(o.config, '--config'), o.config);
        // Read by V8 at every major GC, so setting it now applies to the whole run. A flag given
        // on the command line or in NODE_OPTIONS wins.
        const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ').includes('heap-growing-percent');
        if (c.heapGrowingPercent > 0 && !given) setFlagsFromString(`--heap-growing-percent=${c.heapGrowingPercent}`);
        const logger = pino({ level: c.log.level, base: { coordinator: c.id } });
        const store = 'sqlite' in c.store
          ? await createSqliteCoordinatorStore(c.store.sqlite)
          : await createPostgresCoordinatorStore((await readText(c.store.postgresUrlFile, 'store.postgresUrlFile')).trim());
        const secrets = {
          ...(c.broker.passwordFile ? { password: (await readText(c.broker.passwordFile, 'broker.passwordFile')).trim() } : {}),
          ...(c.broker.tls?.ca ? { ca: await readFile(c.broker.tls.ca) } : {}),
          ...(c.broker.tls?.cert ? { cert: await readFile(c.broker.tls.cert) } : {}),
          ...(c.broker.tls?.key ? { key: await readFile(c.broker.tls.key) } : {}),
        };
        const coordinator = createCoordinator({
          config: c, store, secrets, logger,
          fleetKey: await readPrivateKeyFile(c.fleetKey),
          adminTokens: tokenLines(await readText(c.http.adminTokensFile, 'http.adminTokensFile')),
          readTokens: c.http.readTokensFile ? tokenLines(await readText(c.http.readTokensFile, 'http.readTokensFile')) : [],
        });
        const { httpUrl } = await coordinator.start();
        logger.info({ http: httpUrl }, 'coordinator started');
        ctx.err(`coordinator ${c.id}: API on ${httpUrl}`);
        await new Promise<void>((resolve) => {
          process.once('SIGTERM', () => resolve());
          process.once('SIGINT', () => resolve());
        });
        await coordinator.stop();
        return 0;
      }),
    );
}
