import { existsSync } from 'node:fs';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { Command } from 'commander';
import { archBench, type ArchModel } from '../../bench/arch-bench.js';
import { lighten } from '../../compress/lighten/index.js';
import { foldBatchNorm } from '../../compress/pipeline/fold-bn.js';
import { loadModel } from '../../model/index.js';
import { buildReferenceTeacher } from '../../model/reference-teacher.js';
import { action, parseDepthOption, parseFloatOption, parseIntOption, printJson, type CliContext } from '../context.js';
import { teacherDir } from './teacher.js';

interface ArchOptions {
  teacher?: string;
  widths: number[];
  depths: Array<number | number[] | 'all'>;
  runs: number;
  trials: number;
  json?: boolean;
}

const collect = <T>(parse: (v: string) => T) => (v: string, prev: T[] | undefined): T[] => [...(prev ?? []), parse(v)];
const depthName = (d: number | number[] | 'all'): string => (d === 'all' ? 'all' : Array.isArray(d) ? d.join(',') : String(d));

export function registerBenchArch(bench: Command, ctx: CliContext): void {
  bench
    .command('arch')
    .description('student latency vs architecture: the teacher and lightened students (width × depth grid), all BN-folded, in one interleaved batch-1 run, each beside its compute bound (MACs ÷ measured throughput)')
    .option('--teacher <dir>', 'teacher model (default: the cached fashion-mnist teacher, else the reference architecture untrained: latency does not depend on the weights)')
    .option('--width <f>', 'lighten width multiplier (repeat for a grid)', collect(parseFloatOption('width')))
    .option('--depth <n|list|all>', 'convs kept per stage: all, one count, or one per stage like 1,2,2 (repeat for a grid)', collect((v: string) => (v === 'all' ? ('all' as const) : parseDepthOption('depth')(v))))
    .option('--runs <n>', 'timed runs per trial', parseIntOption('runs'), 60)
    .option('--trials <n>', 'interleaved trials (figures are medians over them)', parseIntOption('trials'), 7)
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (o: Omit<ArchOptions, 'widths' | 'depths'> & { width?: number[]; depth?: ArchOptions['depths'] }) => {
        const info = await ctx.backend();
        const widths = o.width ?? [1, 0.5];
        const depths = o.depth ?? ['all', [1, 2, 2], [1, 1, 2], 1];
        const tdir = o.teacher ?? teacherDir('fashion-mnist', 0);
        const trained = existsSync(path.join(tdir, 'model.json'));
        const teacher = trained ? (await loadModel(tdir)).model : buildReferenceTeacher({ seed: 0 });
        const models: ArchModel[] = [];
        const owned: tf.LayersModel[] = [teacher];
        try {
          const folded = await foldBatchNorm(teacher);
          owned.push(folded);
          models.push({ name: 'teacher (BN folded)', model: folded });
          for (const w of widths) {
            for (const d of depths) {
              const s = (await lighten(teacher, { seed: 0, widthMultiplier: w, ...(d === 'all' ? {} : { depth: d }) })).student;
              const f = await foldBatchNorm(s);
              owned.push(s, f);
              models.push({ name: `width ${w}, depth ${depthName(d)}`, model: f });
            }
          }
          const r = archBench(models, { runs: o.runs, trials: o.trials });
          const out = { backend: info.backend, teacher: trained ? tdir : 'reference architecture (untrained)', runs: o.runs, trials: o.trials, ...r };
          if (o.json) return printJson(ctx, out);
          ctx.out(`backend ${info.backend}; teacher ${out.teacher}; throughput ${(r.macsPerMs / 1000).toFixed(1)} MMAC/s at batch ${r.throughputBatch}`);
          ctx.out('| model | params | MACs | ops | p50 ms | speed-up | bound ms | p50 / bound |');
          ctx.out('|---|---:|---:|---:|---:|---:|---:|---:|');
          for (const x of r.rows) {
            ctx.out(`| ${x.name} | ${x.params.toLocaleString('en-US')} | ${x.macs.toLocaleString('en-US')} | ${x.ops} | ${x.latencyP50Ms.toFixed(3)} | ${x.speedup.toFixed(2)}× | ${x.boundMs.toFixed(3)} | ${x.overBound.toFixed(1)} |`);
          }
          ctx.out(`load average ${r.load.loadAvg1Before?.toFixed(1) ?? '-'} → ${r.load.loadAvg1After?.toFixed(1) ?? '-'}`);
        } finally {
          for (const m of owned) m.dispose();
        }
      }),
    );
}
