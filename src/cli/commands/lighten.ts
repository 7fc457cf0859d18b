import { InvalidArgumentError, type Command } from 'commander';
import { lighten } from '../../compress/lighten/index.js';
import { loadModel, saveModel } from '../../model/index.js';
import { action, parseDepthOption, printJson, type CliContext } from '../context.js';

// Commander turns InvalidArgumentError into a usage error (exit 2); other throws from a parser crash.
const number = (name: string, integer: boolean) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new InvalidArgumentError(`--${name} expects ${integer ? 'an integer' : 'a number'}, got "${v}"`);
  }
  return n;
};

interface LightenCliOptions {
  teacher: string;
  out: string;
  width: number;
  depth?: number | number[];
  seed: number;
  minChannels: number;
  json?: boolean;
}

const fmt = (n: number) => n.toLocaleString('en-US');

export function registerLighten(program: Command, ctx: CliContext): void {
  program
    .command('lighten')
    .description('derive a lightweight student (depthwise-separable convs, GAP head) from a teacher and save it')
    .requiredOption('--teacher <dir>', 'teacher tfjs LayersModel directory (model.json + weights)')
    .requiredOption('--out <dir>', 'directory to write the student to')
    .option('--width <f>', 'channel width multiplier', number('width', false), 0.5)
    .option('--depth <n|list>', 'convolutions kept per stage: one count, or one per stage like 1,2,2 (default: all)', parseDepthOption('depth'))
    .option('--min-channels <n>', 'floor for scaled channel counts', number('min-channels', true), 8)
    .option('--seed <n>', 'seed of the student initializers', number('seed', true), 0)
    .option('--json', 'print JSON')
    .action(
      action(ctx, async (opts: LightenCliOptions) => {
        await ctx.backend();
        const teacher = await loadModel(opts.teacher);
        try {
          const r = await lighten(teacher.graph, { widthMultiplier: opts.width, depth: opts.depth, minChannels: opts.minChannels, seed: opts.seed });
          try {
            const saved = await saveModel(r.student, opts.out);
            const result = {
              teacherDir: opts.teacher, out: opts.out, options: { width: opts.width, depth: opts.depth ?? null, minChannels: opts.minChannels, seed: opts.seed },
              ...r.summary, stages: r.stages, droppedConvs: r.droppedConvs, logitsLayer: r.logitsLayer, studentWeightBytes: saved.weightBytes,
            };
            if (opts.json) return printJson(ctx, result);
            const s = r.summary;
            ctx.out(`teacher   ${fmt(s.teacher.params)} params  ${fmt(s.teacher.macs)} MACs  (${opts.teacher})`);
            ctx.out(`student   ${fmt(s.student.params)} params  ${fmt(s.student.macs)} MACs  (${opts.out})`);
            ctx.out(`ratio     params ${s.paramsRatio.toFixed(1)}x  MACs ${s.macsRatio.toFixed(1)}x smaller`);
            for (const m of r.stages) {
              ctx.out(`stage ${m.index}   ${m.teacher.height}x${m.teacher.width}: teacher ${m.teacher.layerName} (${m.teacher.channels} ch) -> student ${m.student.layerName} (${m.student.channels} ch)`);
            }
            if (r.droppedConvs.length) ctx.out(`dropped   ${r.droppedConvs.join(', ')}`);
          } finally {
            r.student.dispose();
          }
        } finally {
          teacher.model.dispose();
        }
      }),
    );
}
