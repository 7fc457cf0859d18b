import { Command, CommanderError } from 'commander';
import { EXIT } from '../core/errors.js';
import { createCliContext, type CliContext } from './context.js';
import { lazyCommands, type LazyCommand } from './lazy-commands.js';

/**
 * Every subcommand module exports one `registerX(program, ctx, rest)`; add new ones here. Modules
 * are imported only for the command being run (all of them for help or an unknown name): the
 * coordinator and the fleet simulator never load tfjs and its wasm, which the compress side needs.
 */
const COMMANDS: readonly LazyCommand<Command>[] = [
  { name: 'runtime', load: async () => (await import('./commands/runtime.js')).registerRuntime },
  { name: 'bench', load: async () => (await import('./commands/bench.js')).registerBench },
  { name: 'data', load: async () => (await import('./commands/data.js')).registerData },
  { name: 'profile', load: async () => (await import('./commands/profile.js')).registerProfile },
  { name: 'compress', load: async () => (await import('./commands/compress.js')).registerCompress },
  { name: 'lighten', load: async () => (await import('./commands/lighten.js')).registerLighten },
  { name: 'teacher', load: async () => (await import('./commands/teacher.js')).registerTeacher },
  { name: 'distill', load: async () => (await import('./commands/distill.js')).registerDistill },
  { name: 'demo', load: async () => (await import('./commands/demo-fleet.js')).registerDemo },
  { name: 'keys', load: async () => (await import('./commands/keys.js')).registerKeys },
  { name: 'artifact', load: async () => (await import('./commands/artifact.js')).registerArtifact },
  { name: 'agent', load: async () => (await import('./commands/agent.js')).registerAgent },
  { name: 'coordinator', load: async () => (await import('./commands/coordinator.js')).registerCoordinator },
  { name: 'fleet', load: async () => (await import('./commands/fleet.js')).registerFleet },
];

/** Global options that take a value (their value is not a command name). */
const VALUE_OPTIONS = ['--backend'];

export async function main(argv: string[]): Promise<number> {
  const program = new Command('edgekt');
  program
    .description('Compress CNNs on the device: lighten, multi-level knowledge transfer, global iterative pruning')
    .version('0.1.0')
    .option('--backend <name>', 'tfjs backend: auto | tensorflow | wasm | cpu (env EDGEKT_BACKEND)')
    .option('--log-json', 'log progress as pino JSON lines on stderr instead of bars and text lines (level: env EDGEKT_LOG_LEVEL)')
    .showHelpAfterError()
    // Parse errors (unknown option, bad option value) carry the same stable code as every other usage error.
    .configureOutput({ outputError: (str, write) => write(`edgekt: error EDGEKT_ERR_USAGE: ${str.replace(/^error: /, '')}`) })
    .exitOverride();
  const ctx: CliContext = createCliContext(program, process.env);
  await lazyCommands(program, ctx, COMMANDS, argv.slice(2), VALUE_OPTIONS);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    throw e;
  }
  return ctx.exitCode;
}
