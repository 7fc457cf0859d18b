import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { FederatedRunSpecSchema } from '../../config/federated.js';
import { EdgektError } from '../../core/errors.js';
import { action, printJson, type CliContext } from '../context.js';

type Api = (method: 'GET' | 'POST', route: string, body?: unknown) => Promise<unknown>;
type Table = (rows: Array<Record<string, string | number | boolean | null>>, cols: string[]) => string;

interface RoundRow {
  id: string;
  round: number;
  attempt: number;
  state: string;
  invited: string[];
  result: { included?: string[]; refused?: Array<{ deviceId: string; codes: string[] }>; late?: string[]; dropped?: string[]; metrics?: Record<string, number>; error?: { code: string } } | null;
}

async function readSpec(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `cannot read --config ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `${file} is not YAML/JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const spec = FederatedRunSpecSchema.safeParse(raw);
  if (!spec.success) throw new EdgektError('EDGEKT_ERR_USAGE', `${file}: ${spec.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return spec.data;
}

const fmtMetrics = (m: Record<string, number> | undefined): string =>
  m && Object.keys(m).length ? Object.entries(m).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(4)}`).join(' ') : '-';

/** `edgekt fleet federated start|status`: thin wrappers around POST/GET /api/federated. */
export function registerFleetFederated(fleet: Command, ctx: CliContext, api: Api, json: () => boolean, table: Table): void {
  const fed = fleet.command('federated').description('federated fine-tuning runs over the fleet (rounds of selected devices, aggregated on the coordinator)');
  fed.command('start').description('start a run: RUN.yaml is a FederatedRunSpec (rounds, strategy, epochs, selection, deadlineSeconds, ...); the base model\'s weights become the first global')
    .requiredOption('--config <file>', 'run spec, YAML or JSON')
    .requiredOption('--base <dir>', 'tfjs LayersModel directory of the base model (the lightened student before pruning)')
    .option('--id <id>', 'run id (default: chosen by the coordinator)')
    .action(action(ctx, async (o: { config: string; base: string; id?: string }) => {
      const spec = await readSpec(o.config);
      await ctx.backend();
      const [{ loadModel }, { weightSetFromModel }, { encodeGlobal }] = await Promise.all([
        import('../../model/io.js'), import('../../federated/tfjs-weights.js'), import('../../coordinator/rounds/files.js'),
      ]);
      const loaded = await loadModel(o.base);
      let weights: string;
      try {
        weights = Buffer.from(encodeGlobal(weightSetFromModel(loaded.model), 0, 'upload')).toString('base64');
      } finally {
        loaded.model.dispose();
      }
      const modelJson = JSON.parse(await readFile(path.join(o.base, 'model.json'), 'utf8')) as Record<string, unknown>;
      const r = (await api('POST', '/api/federated', { ...(o.id ? { id: o.id } : {}), spec, base: { modelJson, weights } })) as { id: string; globalSha256: string };
      if (json()) return printJson(ctx, r);
      ctx.out(`federated run ${r.id} started (global ${r.globalSha256})`);
    }));
  fed.command('status [runId]').description('without RUN_ID: every run; with it: its rounds (state, included, refused, late, dropped, metrics)')
    .action(action(ctx, async (runId: string | undefined) => {
      if (!runId) {
        const runs = (await api('GET', '/api/federated')) as Array<{ id: string; state: string; roundNumber: number; attempt: number; spec: { rounds?: number } }>;
        if (json()) return printJson(ctx, runs);
        ctx.out(table(runs.map((r) => ({ run: r.id, state: r.state, rounds: `${r.roundNumber}/${r.spec.rounds ?? '?'}`, attempt: r.attempt })), ['run', 'state', 'rounds', 'attempt']));
        return;
      }
      const run = (await api('GET', `/api/federated/${encodeURIComponent(runId)}`)) as { id: string; state: string; roundNumber: number; spec: { rounds?: number }; rounds: RoundRow[] };
      if (json()) return printJson(ctx, run);
      ctx.out(`federated run ${run.id}: ${run.state}, ${run.roundNumber}/${run.spec.rounds ?? '?'} rounds`);
      ctx.out(table(run.rounds.map((r) => ({
        round: r.round, attempt: r.attempt, state: r.state, invited: r.invited.length,
        included: r.result?.included?.length ?? null, refused: r.result?.refused?.map((x) => `${x.deviceId}:${x.codes.join('+')}`).join(',') || (r.result ? 0 : null),
        late: r.result?.late?.length ?? null, dropped: r.result?.dropped?.length ?? null,
        metrics: r.result?.error ? r.result.error.code : fmtMetrics(r.result?.metrics),
      })), ['round', 'attempt', 'state', 'invited', 'included', 'refused', 'late', 'dropped', 'metrics']));
    }));
}
