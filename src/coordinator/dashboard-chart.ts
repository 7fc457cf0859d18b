import type { TopLevelSpec } from 'vega-lite';
import type { CoordinatorStore, Result, ResultFilter } from '../store/coordinator/index.js';

/** One student on the scatter. */
export interface ScatterPoint {
  device: string;
  profile: string;
  latencyP95Ms: number;
  accuracyPct: number;
  met: boolean;
}

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

/** The student's figures from a result report (the agent's CompressReport, or the simulator's short one). */
export function pointOf(r: Result): ScatterPoint | null {
  const rep = r.report as Record<string, unknown>;
  const s = (rep.student ?? {}) as Record<string, unknown>;
  const latency = num(s.latencyP95Ms);
  const acc = num(s.testAccuracy) ?? num(s.accuracy);
  if (latency === null || acc === null) return null;
  return { device: r.deviceId, profile: typeof rep.profile === 'string' ? rep.profile : 'unknown', latencyP95Ms: latency, accuracyPct: acc * 100, met: rep.met === true };
}

export function scatterSpec(points: readonly ScatterPoint[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    width: 520,
    height: 300,
    background: 'white',
    data: { values: points as unknown as Record<string, unknown>[] },
    mark: { type: 'point', filled: true, size: 90, opacity: 0.85 },
    encoding: {
      x: { field: 'latencyP95Ms', type: 'quantitative', title: 'student latency p95 (ms)', scale: { zero: false, nice: true, padding: 14 }, axis: { format: '~r' } },
      y: { field: 'accuracyPct', type: 'quantitative', title: 'student accuracy (%)', scale: { zero: false, nice: true, padding: 14 }, axis: { format: '~r' } },
      color: { field: 'profile', type: 'nominal', title: 'profile' },
      shape: { field: 'met', type: 'nominal', title: 'budgets met', scale: { domain: [true, false], range: ['circle', 'cross'] } },
      tooltip: [{ field: 'device' }, { field: 'profile' }, { field: 'latencyP95Ms', format: '.3f' }, { field: 'accuracyPct', format: '.2f' }],
    },
  };
}

/** Accuracy against latency, coloured by profile, rendered headlessly to SVG (no browser bundle, no CDN). */
export async function renderScatterSvg(store: CoordinatorStore, filter: ResultFilter, maxPoints = 5000): Promise<{ svg: string; points: number }> {
  const points: ScatterPoint[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: Result[]; nextCursor: string | null } = await store.listResults(filter, { limit: 1000, cursor });
    for (const r of page.items) {
      const p = pointOf(r);
      if (p) points.push(p);
    }
    cursor = page.nextCursor;
  } while (cursor && points.length < maxPoints);
  // Loaded on the first chart, not at start: vega + vega-lite add ~27 MB to every coordinator's RSS.
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(scatterSpec(points.slice(-maxPoints))).spec), { renderer: 'none' });
  try {
    return { svg: await view.toSVG(), points: Math.min(points.length, maxPoints) };
  } finally {
    view.finalize();
  }
}
