import type { CliContext } from './context.js';

/** A subcommand whose module is imported only when it runs: `rest` is argv after its name. */
export type Register<P> = (parent: P, ctx: CliContext, rest: string[]) => void | Promise<void>;

export interface LazyCommand<P> {
  name: string;
  load: () => Promise<Register<P>>;
}

/** The first positional word of args (skipping options, and the values of `valueOptions`) and what follows it. */
export function commandWord(args: readonly string[], valueOptions: readonly string[] = []): { name: string | null; rest: string[] } {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return { name: null, rest: [] };
    if (a.startsWith('-')) {
      if (valueOptions.includes(a)) i++;
      continue;
    }
    return { name: a, rest: args.slice(i + 1) };
  }
  return { name: null, rest: [] };
}

/** Registers the command args name, or every command when it names none of them (help, typos). */
export async function lazyCommands<P>(parent: P, ctx: CliContext, commands: readonly LazyCommand<P>[], args: readonly string[], valueOptions: readonly string[] = []): Promise<void> {
  const { name, rest } = commandWord(args, valueOptions);
  const hit = commands.filter((c) => c.name === name);
  for (const c of hit.length ? hit : commands) await (await c.load())(parent, ctx, hit.length ? rest : []);
}
