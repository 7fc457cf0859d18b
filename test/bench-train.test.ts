import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../src/runtime/backend.js';
import { median, runTrainBench, trainStepGflop, type TrainBenchReport } from '../src/bench/train-bench.js';
import { buildRefTrainCnn } from '../src/bench/ref-train-cnn.js';
import { DEFAULT_TORCH_SCRIPT, findTorchPython } from '../src/cli/commands/bench-train.js';
import { threadCpuMs } from '../src/runtime/parallel/index.js';
import { runCli } from './helpers/cli.js';

// Small batches keep this file fast; the real benchmark (batch 64) is `edgekt bench train`.
const SMALL = ['--batch', '4', '--steps', '5', '--warmup', '1', '--variant', 'separable'];

function checkReport(r: TrainBenchReport, workers: number): void {
  expect(r.workers).toBe(workers);
  for (const x of r.results) {
    expect(x.stepMs).toBeGreaterThan(0);
    expect(x.inferMs).toBeGreaterThan(0);
    if (x.torchStepMs !== null) expect(x.ratio).toBeCloseTo(x.stepMs / x.torchStepMs, 2);
    if (workers > 1) {
      expect(x.stepMs1Worker).toBeGreaterThan(0);
      expect(x.speedup).toBeCloseTo(x.stepMs1Worker! / x.stepMsNWorkers!, 2);
    }
  }
}

describe('median', () => {
  it('is the middle value, or the mean of the two middle values', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});

describe('step arithmetic', () => {
  it('counts forward, weight gradients and all input gradients but the first layer', () => {
    // Per image: conv1 32·32·3·32·9 = 884,736; conv2 and conv3 18,874,368 each; dense 1,280.
    const m = buildRefTrainCnn('standard');
    expect(trainStepGflop(m, 64)).toBeCloseTo((2 * 64 * (3 * 38_634_752 - 884_736)) / 1e9, 9);
    m.dispose();
  });
});

describe('runTrainBench', () => {
  it('measures steps, inference, the anchor and the 2-worker speed-up of ref-train-cnn', async () => {
    await initBackend('wasm');
    const calls: string[] = [];
    const phases: number[] = [];
    const report = await runTrainBench({
      variants: ['separable'],
      batch: 4,
      steps: 5,
      warmup: 1,
      workers: 2,
      backend: 'wasm',
      cpuClock: threadCpuMs,
      anchor: async (variant, o) => {
        calls.push(`${variant}/${o.batch}/${o.steps}/${o.threads}`);
        return { stepMs: 10 / o.threads, inferMs: 0.5, version: 'fake' };
      },
      progress: (p) => phases.push(p.done),
    });
    expect(calls).toEqual(['separable/4/5/1', 'separable/4/5/2']);
    expect(report.backend).toBe('wasm');
    expect(report.torchVersion).toBe('fake');
    expect(report.results.map((x) => x.variant)).toEqual(['separable']);
    checkReport(report, 2);
    const x = report.results[0]!;
    expect(x.ratio).toBeCloseTo(x.stepMs / 10, 2);
    expect(x.inferRatio).toBeCloseTo(x.inferMs / 0.5, 2);
    expect(x.torchStepMsNThreads).toBe(5);
    expect(x.ratioN).toBeCloseTo(x.stepMsNWorkers! / 5, 2);
    expect(report.speedup).toMatchObject({ variant: 'separable', workers: 2, factor: x.speedup });
    expect(report.gemmGflops).toBeGreaterThan(0);
    expect(x.floorStepMs).toBeCloseTo((x.stepGflop / report.gemmGflops!) * 1000, 0);
    expect(x.floorRatio).toBeCloseTo(x.floorStepMs! / 10, 1); // both rounded in the report
    expect(x.batchNorm.fusedStepMs).toBeGreaterThan(0);
    expect(x.batchNorm.speedup).toBeCloseTo(x.batchNorm.tfjsStepMs / x.batchNorm.fusedStepMs, 2);
    expect(x.stepGflops).toBeCloseTo(x.stepGflop / (x.stepMs / 1000), 0);
    expect(phases).toEqual(phases.map((_, i) => i));
  });

  it('rejects fewer than 5 timed steps', async () => {
    await expect(runTrainBench({ steps: 4, workers: 1, backend: 'wasm' })).rejects.toMatchObject({ code: 'EDGEKT_ERR_USAGE' });
  });
});

describe('edgekt bench train (built CLI)', () => {
  it('prints the JSON report with null anchor fields when the anchor script is missing', () => {
    const r = runCli(['bench', 'train', '--json', ...SMALL, '--workers', '1', '--torch-script', '/nonexistent/torch.py']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as TrainBenchReport;
    expect(report.results).toHaveLength(1);
    expect(report.results[0]).toMatchObject({ variant: 'separable', torchStepMs: null, torchInferMs: null, ratio: null, speedup: null });
    expect(report.speedup).toBeNull();
    expect(report).toHaveProperty('loadAvg1m.cores');
    checkReport(report, 1);
    expect(r.stderr).toContain('anchor fields are null');
  });

  it('rejects bad options with the usage exit code', () => {
    expect(runCli(['bench', 'train', '--steps', '3', '--no-torch']).code).toBe(2);
    expect(runCli(['bench', 'train', '--variant', 'wide', '--no-torch']).code).toBe(2);
  });

  const python = existsSync(DEFAULT_TORCH_SCRIPT) ? findTorchPython(['python3', '/usr/bin/python3']) : null;
  it.skipIf(!python)('runs the PyTorch anchor in the same run when python3 has torch', () => {
    // One worker: the N-thread anchor and the speed-up are covered above with a fake anchor.
    const r = runCli(['bench', 'train', '--json', ...SMALL, '--workers', '1']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as TrainBenchReport;
    const x = report.results[0]!;
    expect(x.torchStepMs).toBeGreaterThan(0);
    expect(x.torchInferMs).toBeGreaterThan(0);
    expect(report.torchVersion).toMatch(/^\d/);
    expect(x.ratio).toBeGreaterThan(0);
    checkReport(report, 1);
  });
});
