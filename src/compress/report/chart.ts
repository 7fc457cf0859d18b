import { compile, type TopLevelSpec } from 'vega-lite';
import * as vega from 'vega';
import type { CompressReport } from './report.js';

interface Point {
  label: string;
  kind: string;
  iteration: number | null;
  latencyP95Ms: number;
  accuracyPct: number;
}

function points(r: CompressReport): Point[] {
  const pts: Point[] = [];
  const acc = (a: number | null): number => (a === null ? NaN : a * 100);
  if (r.teacher.accuracy !== null) pts.push({ label: 'teacher', kind: 'teacher', iteration: null, latencyP95Ms: r.teacher.latencyP95Ms, accuracyPct: acc(r.teacher.accuracy) });
  for (const h of r.history) {
    if (h.figures.accuracy === null) continue;
    pts.push({ label: `${h.kind} ${h.iteration}`, kind: 'iteration', iteration: h.iteration, latencyP95Ms: h.figures.latencyP95Ms, accuracyPct: acc(h.figures.accuracy) });
  }
  if (r.student.accuracy !== null) pts.push({ label: 'student', kind: 'student', iteration: null, latencyP95Ms: r.student.latencyP95Ms, accuracyPct: acc(r.student.accuracy) });
  return pts;
}

/** The vega-lite spec of the report chart: accuracy against p95 latency, one point per iteration. */
export function chartSpec(r: CompressReport): TopLevelSpec {
  const values = points(r);
  const x = { field: 'latencyP95Ms', type: 'quantitative' as const, title: 'batch-1 latency p95 (ms)', scale: { zero: false } };
  const y = { field: 'accuracyPct', type: 'quantitative' as const, title: 'accuracy (%)', scale: { zero: false } };
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `edgekt compress: ${r.profile} (${r.met ? 'budgets met' : 'budget unreachable'})`,
    width: 480,
    height: 300,
    data: { values: values as unknown as Record<string, unknown>[] },
    layer: [
      {
        transform: [{ filter: "datum.kind === 'iteration'" }],
        mark: { type: 'line', point: true, color: '#888' },
        encoding: { x, y, order: { field: 'iteration', type: 'quantitative' } },
      },
      {
        transform: [{ filter: "datum.kind !== 'iteration'" }],
        mark: { type: 'point', filled: true, size: 160 },
        encoding: {
          x,
          y,
          color: { field: 'kind', type: 'nominal', title: null, scale: { domain: ['teacher', 'student'], range: ['#d62728', '#1f77b4'] } },
          shape: { field: 'kind', type: 'nominal', title: null, scale: { domain: ['teacher', 'student'], range: ['square', 'diamond'] } },
        },
      },
      {
        transform: [{ filter: "datum.kind !== 'iteration'" }],
        mark: { type: 'text', dy: -12 },
        encoding: { x, y, text: { field: 'label' } },
      },
      ...(r.budgets.latencyP95Ms !== undefined
        ? [{
            data: { values: [{ limit: r.budgets.latencyP95Ms }] },
            mark: { type: 'rule' as const, strokeDash: [4, 4], color: '#2ca02c' },
            encoding: { x: { field: 'limit', type: 'quantitative' as const } },
          }]
        : []),
    ],
  };
  return spec;
}

/** Renders the chart headlessly (no canvas) to an SVG string. */
export async function renderChartSvg(r: CompressReport): Promise<string> {
  const view = new vega.View(vega.parse(compile(chartSpec(r)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
