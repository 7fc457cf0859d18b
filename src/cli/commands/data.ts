import type { Command } from 'commander';
import { loadDataset, summarizeDataset, type DatasetSummary } from '../../data/index.js';
import { action, parseFloatOption, parseIntOption, printJson, type CliContext } from '../context.js';

/** Option values stay strings until the action runs, so a bad value goes through action()'s one-line error path. */
interface InspectOptions {
  json?: boolean;
  seed?: string;
  valFraction?: string;
  testFraction?: string;
  limit?: string;
  perClassLimit?: string;
}

function opt<T>(value: string | undefined, parse: (v: string) => T): T | undefined {
  return value === undefined ? undefined : parse(value);
}

export function registerData(program: Command, ctx: CliContext): void {
  const data = program.command('data').description('datasets: mnist, fashion-mnist[:DIR], idx:DIR, folder:DIR');
  data
    .command('inspect')
    .description('load a dataset spec and print sample counts per class and split')
    .argument('<spec>', 'mnist | fashion-mnist[:DIR] | idx:DIR | folder:DIR')
    .option('--json', 'print JSON')
    .option('--seed <n>', 'seed for subsets and splits', '0')
    .option('--val-fraction <f>', 'share of train carved off as validation (default 0, or 0.1 for single-pool sources)')
    .option('--test-fraction <f>', 'share held out as test when the source has no test split (default 0.1)')
    .option('--limit <n>', 'keep at most N samples of each source split')
    .option('--per-class-limit <n>', 'keep at most N samples per class of each source split')
    .action(
      action(ctx, async (spec: string, opts: InspectOptions) => {
        const t0 = performance.now();
        const d = await loadDataset(spec, {
          seed: opt(opts.seed, parseIntOption('seed')),
          valFraction: opt(opts.valFraction, parseFloatOption('val-fraction')),
          testFraction: opt(opts.testFraction, parseFloatOption('test-fraction')),
          limit: opt(opts.limit, parseIntOption('limit')),
          perClassLimit: opt(opts.perClassLimit, parseIntOption('per-class-limit')),
        });
        const summary = summarizeDataset(d);
        const loadMs = Math.round(performance.now() - t0);
        if (opts.json) return printJson(ctx, { ...summary, loadMs });
        for (const line of formatSummary(summary)) ctx.out(line);
        ctx.out(`loaded in ${loadMs} ms`);
      }),
    );
}

/** Plain-text table: one row per class, one column per split, totals last. */
export function formatSummary(s: DatasetSummary): string[] {
  const splits = [['train', s.train], ['validation', s.validation], ['test', s.test]].filter(
    (e): e is [string, NonNullable<DatasetSummary['test']>] => e[1] !== null,
  );
  const rows: string[][] = [['class', ...splits.map(([n]) => n), 'all']];
  s.classNames.forEach((name, c) => {
    const counts = splits.map(([, v]) => v.perClass[c] ?? 0);
    rows.push([name === String(c) ? name : `${c} ${name}`, ...counts.map(String), String(counts.reduce((a, b) => a + b, 0))]);
  });
  const totals = splits.map(([, v]) => v.count);
  rows.push(['total', ...totals.map(String), String(totals.reduce((a, b) => a + b, 0))]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  return [
    `dataset  ${s.name}`,
    `shape    ${s.shape.join('x')} (HxWxC), ${s.numClasses} classes`,
    '',
    ...rows.map(fmt),
  ];
}
