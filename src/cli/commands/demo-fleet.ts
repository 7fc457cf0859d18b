import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { EdgektError, EXIT } from '../../core/errors.js';
import { action, parseFloatOption, parseIntOption, type CliContext } from '../context.js';
import { DEMO_PROFILES, startFleetDemo, teacherUpload } from '../fleet-demo.js';
import { ensureCachedTeacher } from './teacher.js';
import { runSingleDemo } from './demo.js';

interface DemoOptions {
  data: string;
  agents: number;
  width: number;
  teacherEpochs: number;
  distillEpochs: number;
  finalEpochs: number;
  seed: number;
  timeout: number;
  keep?: boolean;
  single?: boolean;
  profile?: string;
  out?: string;
}

async function call(url: string, token: string, method: 'GET' | 'POST', route: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${url}${route}`, {
    method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as { error?: { code: string; message: string } };
  if (!res.ok) throw new EdgektError('EDGEKT_ERR_COORDINATOR', `${route}: ${json.error?.code}: ${json.error?.message}`);
  return json;
}

const pct = (v: unknown): string => (typeof v === 'number' ? `${(v * 100).toFixed(2)}%` : '-');

/**
 * The main job on the embedded default, as a fleet: an aedes broker, a coordinator and N agents as
 * separate processes with different profiles; the reference teacher (trained on the mnist package,
 * cached) is rolled out, every agent compresses it to its own budgets, and the results come back.
 */
export function registerDemo(program: Command, ctx: CliContext): void {
  program
    .command('demo')
    .description('the fleet on this machine: aedes broker, coordinator and N agents with different profiles; roll out the mnist teacher and print each device\'s student')
    .option('--data <spec>', 'dataset spec (teacher training and every agent)', 'mnist')
    .option('--agents <n>', 'agents, each with its own profile (1-3)', parseIntOption('agents'), 3)
    .option('--width <f>', 'lighten width multiplier', parseFloatOption('width'), 1)
    .option('--teacher-epochs <n>', 'teacher training epochs (first run only)', parseIntOption('teacher-epochs'), 4)
    .option('--distill-epochs <n>', 'distillation epochs on each device', parseIntOption('distill-epochs'), 3)
    .option('--final-epochs <n>', 'fine-tune epochs once the budgets hold', parseIntOption('final-epochs'), 2)
    .option('--seed <n>', 'seed of every random choice', parseIntOption('seed'), 0)
    .option('--timeout <s>', 'give up on the rollout after this many seconds', parseIntOption('timeout'), 1800)
    .option('--keep', 'leave the fleet directory (configs, logs, databases) in place')
    .option('--single', 'no fleet: compress in this process for the profile that matches this machine (the single-device demo)')
    .option('--profile <name|file>', 'with --single: the device profile (default: the best match for this machine)')
    .option('--out <dir>', 'with --single: output directory (default <cache>/demo)')
    .action(
      action(ctx, async (o: DemoOptions) => {
        if (o.single) return runSingleDemo(ctx, o);
        if (o.agents < 1 || o.agents > DEMO_PROFILES.length) throw new EdgektError('EDGEKT_ERR_USAGE', `--agents must be 1-${DEMO_PROFILES.length}`);
        const started = performance.now();
        const info = await ctx.backend();
        ctx.out(`backend   ${info.backend} (${info.reason})`);
        const teacher = await ensureCachedTeacher(ctx, { data: o.data, seed: o.seed, epochs: o.teacherEpochs, batchSize: 64 });
        ctx.out(`teacher   ${teacher.cached ? 'cached' : 'trained'} ${teacher.dir}: ${teacher.meta.params.toLocaleString('en-US')} params, ${(teacher.meta.testAccuracy * 100).toFixed(2)}% test accuracy`);
        const devices = DEMO_PROFILES.slice(0, o.agents).map((profile, i) => ({ id: `device-${i + 1}`, profile }));
        const fleet = await startFleetDemo({ devices, datasets: { default: o.data }, backend: info.backend, say: ctx.out });
        let code: number = EXIT.OK;
        try {
          const token = (await readFile(fleet.adminTokenFile, 'utf8')).trim();
          const api = (m: 'GET' | 'POST', r: string, b?: unknown) => call(fleet.apiUrl, token, m, r, b);
          const deadline = Date.now() + 60_000;
          while (((await api('GET', '/api/devices?online=true')) as { total: number }).total < devices.length) {
            if (Date.now() > deadline) throw new EdgektError('EDGEKT_ERR_COORDINATOR', 'not every agent came online within 60 s');
            await new Promise((r) => setTimeout(r, 300));
          }
          const published = (await api('POST', '/api/teachers', teacherUpload(teacher.dir, 'mnist-teacher'))) as { sha256: string; size: number };
          ctx.out(`published teacher ${published.sha256.slice(0, 12)}… (${published.size} bytes)`);
          const settings = { width: o.width, distillEpochs: o.distillEpochs, finalEpochs: o.finalEpochs, seed: o.seed, valFraction: 0.1, step: 0.2 };
          const rollout = (await api('POST', '/api/rollouts', {
            // The latency-budgeted device first and alone (its measurements then see a quiet machine, as
            // a real device would), then the others together: one machine stands in for the whole fleet.
            teacherSha256: published.sha256, target: { kind: 'all' }, staging: { kind: 'percentages', steps: devices.length > 1 ? [Math.floor(100 / devices.length), 100] : [100] },
            abort: { failureShare: 1, minFinished: devices.length }, job: { dataset: 'default', settings },
          })) as { id: string };
          ctx.out(`rollout   ${rollout.id} to ${devices.length} devices`);
          const stopAt = Date.now() + o.timeout * 1000;
          let last = '';
          for (;;) {
            const r = (await api('GET', `/api/rollouts/${rollout.id}`)) as { state: string; counts: Record<string, number> };
            const ex = (await api('GET', `/api/rollouts/${rollout.id}/executions?limit=100`)) as { items: Array<{ deviceId: string; state: string; live: { progress?: { stage?: string; done?: number; total?: number } } | null }> };
            const line = ex.items.map((e) => `${e.deviceId} ${e.state}${e.live?.progress?.stage ? ` (${e.live.progress.stage} ${e.live.progress.done}/${e.live.progress.total})` : ''}`).join(' | ');
            if (line !== last) ctx.err(`[${((performance.now() - started) / 1000).toFixed(0)} s] ${line}`);
            last = line;
            if (r.state !== 'running') break;
            if (Date.now() > stopAt) throw new EdgektError('EDGEKT_ERR_TIMEOUT', `the rollout did not finish within ${o.timeout} s`);
            await new Promise((res) => setTimeout(res, 2000));
          }
          // Results arrive once the coordinator has pulled and verified each student.
          let results: Array<{ deviceId: string; report: Record<string, unknown> }> = [];
          for (let i = 0; i < 60; i++) {
            results = ((await api('GET', `/api/results?rollout=${rollout.id}`)) as { items: typeof results }).items;
            if (results.length >= devices.length) break;
            await new Promise((res) => setTimeout(res, 500));
          }
          ctx.out('');
          ctx.out('| device | profile | parameters | latency p95 (ms) | accuracy | teacher accuracy | budgets met |');
          ctx.out('|---|---|---:|---:|---:|---:|---|');
          for (const d of devices) {
            const r = results.find((x) => x.deviceId === d.id)?.report;
            const s = (r?.student ?? {}) as Record<string, number>;
            const t = (r?.teacher ?? {}) as Record<string, number>;
            ctx.out(`| ${d.id} | ${d.profile.name} | ${s.params ?? '-'} (${t.params && s.params ? (t.params / s.params).toFixed(0) : '-'}× fewer) | ${s.latencyP95Ms?.toFixed(3) ?? '-'} (teacher ${t.latencyP95Ms?.toFixed(3) ?? '-'}) | ${pct(s.accuracy)} | ${pct(t.accuracy)} | ${r ? (r.met ? 'yes' : 'no') : 'no result'} |`);
            if (!r || !r.met) code = EXIT.BUDGET_UNREACHABLE;
          }
          ctx.out('');
          ctx.out(`demo finished in ${((performance.now() - started) / 1000).toFixed(0)} s${o.keep ? `; fleet files in ${fleet.dir}` : ''}`);
        } catch (e) {
          for (const [name, lines] of fleet.logs) ctx.err(`--- ${name} (last lines)\n${lines.slice(-15).join('\n')}`);
          throw e;
        } finally {
          if (o.keep) fleet.processes.forEach((p) => p.kill('SIGTERM'));
          else await fleet.stop();
        }
        return code;
      }),
    );
}
