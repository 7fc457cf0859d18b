import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { EdgektError } from '../../core/errors.js';
import { action, parseFloatOption, parseIntOption, printJson, type CliContext } from '../context.js';
import { tokenLines } from './coordinator.js';
import { registerFleetFederated } from './fleet-federated.js';

interface FleetGlobal {
  url: string;
  tokenFile?: string;
  json?: boolean;
}

/** A tiny API client: bearer token from a file (never the command line), errors mapped to codes. */
async function api(g: FleetGlobal, method: 'GET' | 'POST', route: string, body?: unknown): Promise<unknown> {
  const file = g.tokenFile ?? process.env.EDGEKT_TOKEN_FILE;
  if (!file) throw new EdgektError('EDGEKT_ERR_USAGE', 'pass --token-file FILE (or set EDGEKT_TOKEN_FILE)');
  let token: string;
  try {
    token = tokenLines(await readFile(file, 'utf8'))[0] ?? '';
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_USAGE', `cannot read token file ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  let res: Response;
  try {
    res = await fetch(new URL(route, g.url), {
      method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (e) {
    throw new EdgektError('EDGEKT_ERR_COORDINATOR', `cannot reach the coordinator at ${g.url}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const json = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
  if (!res.ok) {
    const code = json?.error?.code;
    const known = code === 'EDGEKT_ERR_FORBIDDEN' || code === 'EDGEKT_ERR_AUTH' || code === 'EDGEKT_ERR_NOT_FOUND' || code === 'EDGEKT_ERR_USAGE' ? code : 'EDGEKT_ERR_COORDINATOR';
    throw new EdgektError(known, `${method} ${route}: HTTP ${res.status}: ${json?.error?.message ?? 'no detail'}`);
  }
  return json;
}

function table(rows: Array<Record<string, string | number | boolean | null>>, cols: string[]): string {
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '-').length)));
  const line = (cells: string[]): string => cells.map((s, i) => s.padEnd(w[i]!)).join('  ').trimEnd();
  return [line(cols), line(w.map((n) => '-'.repeat(n))), ...rows.map((r) => line(cols.map((c) => String(r[c] ?? '-'))))].join('\n');
}

const pct = (v: unknown): string => (typeof v === 'number' ? `${(v * 100).toFixed(2)}%` : '-');

export function registerFleet(program: Command, ctx: CliContext): void {
  const fleet = program
    .command('fleet')
    .description('talk to a coordinator\'s HTTP API: devices, teachers, rollouts, results, federated runs')
    .option('--url <url>', 'coordinator API (env EDGEKT_COORDINATOR_URL)', process.env.EDGEKT_COORDINATOR_URL ?? 'http://127.0.0.1:8080')
    .option('--token-file <file>', 'file whose first line is the bearer token (env EDGEKT_TOKEN_FILE)')
    .option('--json', 'print JSON');
  const g = (): FleetGlobal => fleet.opts<FleetGlobal>();

  fleet.command('devices').description('list devices (first page)')
    .option('--profile <name>').option('--group <name>').option('--online', 'online only').option('--limit <n>', 'page size', parseIntOption('limit'), 100)
    .action(action(ctx, async (o: { profile?: string; group?: string; online?: boolean; limit: number }) => {
      const q = new URLSearchParams({ limit: String(o.limit), ...(o.profile ? { profile: o.profile } : {}), ...(o.group ? { group: o.group } : {}), ...(o.online ? { online: 'true' } : {}) });
      const page = (await api(g(), 'GET', `/api/devices?${q}`)) as { items: Array<Record<string, unknown>>; total: number };
      if (g().json) return printJson(ctx, page);
      ctx.out(table(page.items.map((d) => ({ device: String(d.id), online: Boolean(d.online), profile: String(d.profile ?? '-'), groups: (d.groups as string[]).join(','), lastSeen: new Date(Number(d.lastSeen)).toISOString() })), ['device', 'online', 'profile', 'groups', 'lastSeen']));
      ctx.out(`${page.items.length} of ${page.total}`);
    }));

  fleet.command('publish-teacher <dir>').description('upload a tfjs teacher directory (model.json + weights) to the coordinator')
    .requiredOption('--name <name>', 'teacher name (versions count up per name)')
    .action(action(ctx, async (dir: string, o: { name: string }) => {
      let names: string[];
      try {
        names = (await readdir(dir)).filter((f) => f === 'model.json' || f.endsWith('.bin'));
      } catch {
        throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', `${dir} is not a readable directory`);
      }
      if (!names.includes('model.json')) throw new EdgektError('EDGEKT_ERR_MODEL_FORMAT', `no model.json in ${dir}`);
      const files = await Promise.all(names.map(async (p) => ({ path: p, base64: (await readFile(path.join(dir, p))).toString('base64') })));
      const r = (await api(g(), 'POST', '/api/teachers', { name: o.name, files })) as { sha256: string; version: number; size: number };
      if (g().json) return printJson(ctx, r);
      ctx.out(`teacher ${o.name} v${r.version}: ${r.sha256} (${r.size} bytes)`);
    }));

  const rollout = fleet.command('rollout').description('staged rollouts of a teacher');
  rollout.command('start').description('start a rollout of a published teacher')
    .requiredOption('--teacher <sha256>', 'teacher bundle (from publish-teacher)')
    .option('--all', 'every device').option('--group <g>').option('--profile <p>').option('--devices <ids>', 'comma-separated device ids')
    .option('--dataset <name>', 'dataset name on the devices', 'default')
    .option('--settings <json>', 'compression settings as JSON (CompressJobSpec fields)', '{}')
    .option('--percentages <list>', 'staged percentages, e.g. 10,50,100')
    .option('--rate <n>', 'devices per minute', parseIntOption('rate'))
    .option('--increment <f>', 'rate multiplier each minute', parseFloatOption('increment'), 1)
    .option('--abort-share <f>', 'abort when this share of finished executions failed', parseFloatOption('abort-share'))
    .option('--abort-min <n>', 'only after this many finished', parseIntOption('abort-min'), 1)
    .option('--timeout <s>', 'in-progress timeout, seconds', parseIntOption('timeout'))
    .option('--retries <n>', 'retries of a failed or timed-out device (0-10)', parseIntOption('retries'), 0)
    .action(action(ctx, async (o: Record<string, string | number | boolean | undefined>) => {
      const picks = [o.all, o.group, o.profile, o.devices].filter((x) => x !== undefined);
      if (picks.length !== 1) throw new EdgektError('EDGEKT_ERR_USAGE', 'give exactly one of --all, --group, --profile, --devices');
      const target = o.all ? { kind: 'all' } : o.group ? { kind: 'group', group: o.group } : o.profile ? { kind: 'profile', profile: o.profile } : { kind: 'devices', deviceIds: String(o.devices).split(',').map((s) => s.trim()).filter(Boolean) };
      let settings: unknown;
      try {
        settings = JSON.parse(String(o.settings));
      } catch {
        throw new EdgektError('EDGEKT_ERR_USAGE', '--settings is not JSON');
      }
      const staging = o.percentages ? { kind: 'percentages', steps: String(o.percentages).split(',').map(Number) } : { kind: 'rate', perMinute: Number(o.rate ?? 1000), incrementFactor: Number(o.increment) };
      const spec = {
        teacherSha256: o.teacher, target, staging, job: { dataset: o.dataset, settings },
        ...(o.abortShare !== undefined ? { abort: { failureShare: o.abortShare, minFinished: o.abortMin } } : {}),
        ...(o.timeout !== undefined ? { timeouts: { inProgressMs: Number(o.timeout) * 1000 } } : {}),
        retries: { max: o.retries },
      };
      const r = (await api(g(), 'POST', '/api/rollouts', spec)) as { id: string };
      if (g().json) return printJson(ctx, r);
      ctx.out(`rollout ${r.id} started`);
    }));
  rollout.command('status <id>').description('state and executions per state')
    .action(action(ctx, async (id: string) => {
      const r = (await api(g(), 'GET', `/api/rollouts/${encodeURIComponent(id)}`)) as { id: string; state: string; counts: Record<string, number> };
      if (g().json) return printJson(ctx, r);
      ctx.out(`rollout ${r.id}: ${r.state}`);
      ctx.out(table(Object.entries(r.counts).map(([state, n]) => ({ state, devices: n })), ['state', 'devices']));
    }));
  rollout.command('abort <id>').description('stop dispatching and cancel executions in flight')
    .action(action(ctx, async (id: string) => {
      const r = (await api(g(), 'POST', `/api/rollouts/${encodeURIComponent(id)}/abort`)) as { id: string; state: string };
      if (g().json) return printJson(ctx, r);
      ctx.out(`rollout ${r.id}: ${r.state}`);
    }));

  registerFleetFederated(fleet, ctx, (method, route, body) => api(g(), method, route, body), () => Boolean(g().json), table);

  fleet.command('results').description('compression results per device')
    .option('--rollout <id>').option('--device <id>').option('--limit <n>', 'page size', parseIntOption('limit'), 100)
    .action(action(ctx, async (o: { rollout?: string; device?: string; limit: number }) => {
      const q = new URLSearchParams({ limit: String(o.limit), ...(o.rollout ? { rollout: o.rollout } : {}), ...(o.device ? { device: o.device } : {}) });
      const page = (await api(g(), 'GET', `/api/results?${q}`)) as { items: Array<{ deviceId: string; jobId: string; report: Record<string, unknown> }> };
      if (g().json) return printJson(ctx, page);
      ctx.out(table(page.items.map(({ deviceId, report: r }) => {
        const s = (r.student ?? {}) as Record<string, number | null>;
        const t = (r.teacher ?? {}) as Record<string, number | null>;
        return {
          device: deviceId, profile: String(r.profile ?? '-'), params: s.params ?? null, 'p95 ms': typeof s.latencyP95Ms === 'number' ? s.latencyP95Ms.toFixed(3) : '-',
          accuracy: pct(s.accuracy), teacher: pct(t.accuracy), 'budgets met': Boolean(r.met),
        };
      }), ['device', 'profile', 'params', 'p95 ms', 'accuracy', 'teacher', 'budgets met']));
    }));
}
