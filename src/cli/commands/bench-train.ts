import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { EdgektError } from '../../core/errors.js';
import type { RefTrainCnnVariant } from '../../bench/ref-train-cnn.js';
import { runTrainBench, type TorchAnchor, type TorchAnchorResult, type TrainBenchReport } from '../../bench/train-bench.js';
import { threadCpuMs } from '../../runtime/parallel/index.js';
import { action, parseIntOption, printJson, type CliContext } from '../context.js';

/** ../shared/bench/torch_train_step.py relative to the repository (this file is at <repo>/{src,dist}/cli/commands/). */
export const DEFAULT_TORCH_SCRIPT = fileURLToPath(new URL('../../../../shared/bench/torch_train_step.py', import.meta.url));

/** The first interpreter that can `import torch` (Debian's python3-torch lives in /usr/bin/python3). */
export function findTorchPython(candidates: string[]): string | null {
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore', timeout: 120_000 });
    if (r.status === 0) return py;
  }
  return null;
}

function runJson(cmd: string, args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`exit ${code}: ${err.trim().split('\n').pop() ?? ''}`));
      try {
        resolve(JSON.parse(line) as Record<string, unknown>);
      } catch {
        reject(new Error(`unexpected output: ${line.slice(0, 200)}`));
      }
    });
  });
}

export function createTorchAnchor(python: string, script: string, warn: (m: string) => void): TorchAnchor {
  return async (variant, o): Promise<TorchAnchorResult | null> => {
    try {
      const r = await runJson(python, [script, '--variant', variant, '--threads', String(o.threads), '--batch', String(o.batch), '--steps', String(o.steps)]);
      if (typeof r.stepMs !== 'number' || typeof r.inferMs !== 'number') throw new Error('no stepMs/inferMs in its output');
      return { stepMs: r.stepMs, inferMs: r.inferMs, version: typeof r.version === 'string' ? r.version : undefined };
    } catch (e) {
      warn(`bench train: PyTorch anchor failed for ${variant} (${e instanceof Error ? e.message : String(e)}); anchor fields are null`);
      return null;
    }
  };
}

interface BenchTrainOptions {
  json?: boolean;
  workers: number;
  steps: number;
  warmup: number;
  batch: number;
  variant: string;
  torch: boolean;
  torchScript?: string;
  python?: string;
}

function parseVariants(v: string): RefTrainCnnVariant[] {
  if (v === 'both') return ['standard', 'separable'];
  if (v === 'standard' || v === 'separable') return [v];
  throw new EdgektError('EDGEKT_ERR_USAGE', `--variant expects standard, separable or both, got "${v}"`);
}

function fmt(v: number | null, digits = 1): string {
  return v === null ? '—' : v.toFixed(digits);
}

function printTable(ctx: CliContext, r: TrainBenchReport): void {
  ctx.out(`backend ${r.backend}, batch ${r.batch}, median of ${r.steps} steps after warm-up${r.torchVersion ? `, PyTorch ${r.torchVersion}` : ''}`);
  ctx.out('variant    step ms  torch ms  ratio  infer ms  torch infer  1-worker ms  N-worker ms  speed-up');
  for (const x of r.results) {
    ctx.out(
      `${x.variant.padEnd(9)} ${fmt(x.stepMs).padStart(8)} ${fmt(x.torchStepMs).padStart(9)} ${fmt(x.ratio, 2).padStart(6)} ` +
        `${fmt(x.inferMs, 2).padStart(9)} ${fmt(x.torchInferMs, 2).padStart(12)} ${fmt(x.stepMs1Worker).padStart(12)} ` +
        `${fmt(x.stepMsNWorkers).padStart(12)} ${fmt(x.speedup, 2).padStart(9)}`,
    );
  }
  for (const x of r.results) {
    const c = x.cpu;
    if (c.stepMs === null && c.speedup === null) continue;
    ctx.out(
      `${x.variant.padEnd(9)} CPU time: step ${fmt(c.stepMs, 0)} ms; busiest worker ${fmt(c.stepMs1Worker, 0)} ms (1) / ` +
        `${fmt(c.stepMsNWorkers, 0)} ms (${r.workers}) = ${fmt(c.speedup, 2)}x`,
    );
  }
  for (const x of r.results) {
    if (x.ratioN === null) continue;
    ctx.out(`${x.variant.padEnd(9)} all cores: ${fmt(x.stepMsNWorkers)} ms with ${r.workers} workers vs PyTorch ${fmt(x.torchStepMsNThreads)} ms with ${r.workers} threads (ratio ${fmt(x.ratioN, 2)})`);
  }
  for (const x of r.results) {
    const bn = x.batchNorm;
    ctx.out(`${x.variant.padEnd(9)} BatchNorm: fused op ${bn.fusedStepMs.toFixed(1)} ms vs tfjs-layers ${bn.tfjsStepMs.toFixed(1)} ms per step (${bn.speedup.toFixed(2)}x)`);
  }
  if (r.gemmGflops !== null) {
    ctx.out(`dense throughput here: ${r.gemmGflops} GFLOP/s (1024³ matMul on ${r.backend})`);
    for (const x of r.results) {
      ctx.out(
        `${x.variant.padEnd(9)} ${x.stepGflop.toFixed(2)} GFLOP per step at ${x.stepGflops} GFLOP/s; floor ${fmt(x.floorStepMs)} ms ` +
          `(all arithmetic at ${r.gemmGflops} GFLOP/s) = ratio ${fmt(x.floorRatio, 2)} at best`,
      );
    }
  }
  if (r.speedup) ctx.out(`${r.speedup.workers} workers: ${r.speedup.factor.toFixed(2)}x faster per step than 1 (${r.speedup.variant})`);
}

export function registerBenchTrain(bench: Command, ctx: CliContext): void {
  bench
    .command('train')
    .description('training speed of ref-train-cnn (batch 64) on this thread and on N worker threads, against the PyTorch anchor')
    .option('--json', 'print JSON')
    .option('--workers <n>', 'worker threads for the data-parallel speed-up (1 skips it; default: cores)', parseIntOption('workers'), os.availableParallelism())
    .option('--steps <n>', 'timed steps (median reported, ≥ 5)', parseIntOption('steps'), 7)
    .option('--warmup <n>', 'untimed warm-up steps', parseIntOption('warmup'), 2)
    .option('--batch <n>', 'batch size', parseIntOption('batch'), 64)
    .option('--variant <v>', 'standard | separable | both', 'both')
    .option('--torch-script <path>', 'the PyTorch anchor script', undefined)
    .option('--python <path>', 'python with torch (default: python3, then /usr/bin/python3)')
    .option('--no-torch', 'skip the PyTorch anchor')
    .action(
      action(ctx, async (opts: BenchTrainOptions) => {
        const variants = parseVariants(opts.variant);
        const info = await ctx.backend();
        let anchor: TorchAnchor | undefined;
        if (opts.torch) {
          const script = path.resolve(opts.torchScript ?? DEFAULT_TORCH_SCRIPT);
          const python = existsSync(script) ? findTorchPython(opts.python ? [opts.python] : ['python3', '/usr/bin/python3']) : null;
          if (!existsSync(script)) ctx.err(`bench train: no anchor script at ${script}; anchor fields are null`);
          else if (!python) ctx.err('bench train: no python3 with torch found; anchor fields are null');
          else anchor = createTorchAnchor(python, script, ctx.err);
        }
        const bar = process.stderr.isTTY
          ? new cliProgress.SingleBar({ format: 'bench train [{bar}] {value}/{total} {phase}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
          : null;
        let report: TrainBenchReport;
        // Other work on the machine inflates wall times; the 1-minute load average says how much.
        const loadBefore = os.loadavg()[0]!;
        try {
          report = await runTrainBench({
            variants,
            batch: opts.batch,
            steps: opts.steps,
            warmup: opts.warmup,
            workers: opts.workers,
            backend: info.backend,
            anchor,
            cpuClock: threadCpuMs,
            progress: ({ message, done, total }) => {
              if (!bar) return ctx.err(`bench train: ${message}`);
              if (done === 0) bar.start(total, 0, { phase: message });
              else bar.update(done, { phase: message });
            },
          });
        } finally {
          bar?.stop();
        }
        const loadAvg1m = { before: Number(loadBefore.toFixed(2)), after: Number(os.loadavg()[0]!.toFixed(2)), cores: os.availableParallelism() };
        if (opts.json) return printJson(ctx, { ...report, loadAvg1m });
        printTable(ctx, report);
        ctx.out(`load average (1 min) ${loadAvg1m.before} before, ${loadAvg1m.after} after, on ${loadAvg1m.cores} cores`);
      }),
    );
}
