import { Command, CommanderError } from 'commander';
import { EXIT } from '../core/errors.js';
import { createCliContext, type CliContext } from './context.js';
import { registerRuntime } from './commands/runtime.js';
import { registerBench } from './commands/bench.js';
import { registerData } from './commands/data.js';
import { registerProfile } from './commands/profile.js';
import { registerCompress } from './commands/compress.js';
import { registerLighten } from './commands/lighten.js';
import { registerTeacher } from './commands/teacher.js';
import { registerDistill } from './commands/distill.js';
import { registerDemo } from './commands/demo-fleet.js';
import { registerAgent } from './commands/agent.js';
import { registerCoordinator } from './commands/coordinator.js';
import { registerFleet } from './commands/fleet.js';
import { registerKeys } from './commands/keys.js';
import { registerArtifact } from './commands/artifact.js';

/** Every subcommand module exports one `registerX(program, ctx)`; add new ones here. */
const COMMANDS: Array<(program: Command, ctx: CliContext) => void> = [
  registerRuntime,
  registerBench,
  registerData,
  registerProfile,
  registerCompress,
  registerLighten,
  registerTeacher,
  registerDistill,
  registerDemo,
  registerKeys,
  registerArtifact,
  registerAgent,
  registerCoordinator,
  registerFleet,
];

export async function main(argv: string[]): Promise<number> {
  const program = new Command('edgekt');
  program
    .description('Compress CNNs on the device: lighten, multi-level knowledge transfer, global iterative pruning')
    .version('0.1.0')
    .option('--backend <name>', 'tfjs backend: auto | tensorflow | wasm | cpu (env EDGEKT_BACKEND)')
    .option('--log-json', 'log progress as pino JSON lines on stderr instead of bars and text lines (level: env EDGEKT_LOG_LEVEL)')
    .showHelpAfterError()
    .exitOverride();
  const ctx = createCliContext(program, process.env);
  for (const register of COMMANDS) register(program, ctx);
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
