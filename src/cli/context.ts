import { CommanderError, InvalidArgumentError, type Command } from 'commander';
import pino, { type Logger } from 'pino';
import { EdgektError, exitCodeFor, toEdgektError, EXIT } from '../core/errors.js';
import type { BackendInfo } from '../runtime/backend.js';

/** What every command shares: output streams and backend initialisation from the global option. */
export interface CliContext {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Initialises the backend chosen by --backend / EDGEKT_BACKEND (cached after the first call). */
  backend: () => Promise<BackendInfo>;
  /** The pino logger when --log-json is given (JSON lines on stderr replace the human lines), else null. */
  logger: () => Logger | null;
  exitCode: number;
}

export function createCliContext(program: Command, env: NodeJS.ProcessEnv): CliContext {
  let info: Promise<BackendInfo> | undefined;
  let logger: Logger | undefined;
  const ctx: CliContext = {
    out: (line) => process.stdout.write(line + '\n'),
    err: (line) => process.stderr.write(line + '\n'),
    backend: () => {
      const opt = program.opts<{ backend?: string }>().backend;
      // Imported here, not at the top: tfjs loads only for the commands that compute.
      info ??= import('../runtime/backend.js').then((b) => b.initBackend(b.parseBackendChoice(opt ?? (env.EDGEKT_BACKEND || 'auto'))));
      return info;
    },
    logger: () => {
      if (!program.opts<{ logJson?: boolean }>().logJson) return null;
      logger ??= pino({ level: env.EDGEKT_LOG_LEVEL || 'info' }, pino.destination({ dest: 2, sync: true }));
      return logger;
    },
    exitCode: EXIT.OK,
  };
  return ctx;
}

/**
 * Wraps a command action: EdgektErrors become one line on stderr and their documented exit code,
 * never a stack trace; anything else is reported as internal (stack only with EDGEKT_DEBUG=1).
 */
export function action<A extends unknown[]>(
  ctx: CliContext,
  fn: (...args: A) => Promise<number | void> | number | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      ctx.exitCode = typeof code === 'number' ? code : EXIT.OK;
    } catch (e) {
      // Option parsers throw commander's InvalidArgumentError; inside an action that is still a usage error.
      const err = e instanceof CommanderError ? new EdgektError('EDGEKT_ERR_USAGE', e.message.replace(/^error: /, '')) : toEdgektError(e);
      ctx.err(`edgekt: error ${err.code}: ${err.message}`);
      if (process.env.EDGEKT_DEBUG === '1' && e instanceof Error && e.stack) ctx.err(e.stack);
      ctx.exitCode = exitCodeFor(err);
    }
  };
}

export function printJson(ctx: CliContext, value: unknown): void {
  ctx.out(JSON.stringify(value, null, 2));
}

export function parseIntOption(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`--${name} expects an integer, got "${value}"`);
    return n;
  };
}

/** `2` → 2, `1,2,2` → [1, 2, 2]: a count for every stage or one per stage (positive integers). */
export function parseDepthOption(name: string) {
  return (value: string): number | number[] => {
    const parts = value.split(',').map((x) => x.trim());
    const ns = parts.map(Number);
    if (parts.length === 0 || !ns.every((n) => Number.isInteger(n) && n >= 1)) {
      throw new InvalidArgumentError(`--${name} expects a positive integer or a comma-separated list of them (one per stage), got "${value}"`);
    }
    return ns.length === 1 ? ns[0]! : ns;
  };
}

export function parseFloatOption(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`--${name} expects a number, got "${value}"`);
    return n;
  };
}

/** One of a fixed set of words, e.g. `--importance l1`; anything else is a usage error naming the set. */
export function parseChoiceOption<T extends string>(name: string, choices: readonly T[]) {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) throw new InvalidArgumentError(`--${name} expects one of ${choices.join(' | ')}, got "${value}"`);
    return value as T;
  };
}
