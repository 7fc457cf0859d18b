// Results: per device teacher vs student, and the accuracy/latency scatter (SVG rendered by vega on the server).
import { api, qs } from './api.js';
import { cursorPager, fmtInt, fmtNum, fmtPct, h } from './ui.js';

const PAGE = 50;

function budgets(rep) {
  const rows = Array.isArray(rep.budgetTable) ? rep.budgetTable : [];
  const title = rows.map((b) => `${b.budget}: ${b.value ?? '—'} vs ${b.limit} ${b.met ? 'met' : 'MISSED'}`).join('\n');
  const met = typeof rep.met === 'boolean' ? rep.met : null;
  return h('span', { class: met === null ? '' : met ? 'ok' : 'bad', title: title || undefined, 'data-testid': 'met' },
    met === null ? '—' : `${met ? '✓ met' : '✗ missed'}${rows.length ? ` (${rows.filter((b) => b.met).length}/${rows.length})` : ''}`);
}

export function resultsView({ root }) {
  const pager = cursorPager();
  let nextCursor = null;
  let timer = null;
  const chart = h('div', { class: 'chart', 'data-testid': 'scatter' }, 'loading…');
  const body = h('tbody');
  const info = h('span', { class: 'pageinfo' });
  const prev = h('button', { type: 'button', onclick: () => { pager.prev(); void loadTable(); } }, '‹ Prev');
  const next = h('button', { type: 'button', onclick: () => { pager.next(nextCursor); void loadTable(); } }, 'Next ›');
  root.append(h('h2', {}, 'Results'), chart,
    h('table', { class: 'grid', 'data-testid': 'results' },
      h('thead', {}, h('tr', {}, ...['device', 'profile', 'rollout', 'params teacher → student', 'latency p95 ms', 'peak memory MB', 'accuracy', 'budgets'].map((t) => h('th', {}, t)))), body),
    h('div', { class: 'pager' }, prev, info, next));

  async function loadChart() {
    const res = await api('/api/results/scatter.svg', { raw: true });
    const n = Number(res.headers.get('x-points') ?? 0);
    const svg = await res.text();
    chart.dataset.points = String(n);
    if (n === 0) chart.replaceChildren(h('p', { class: 'hint' }, 'no results yet'));
    else chart.innerHTML = svg; // rendered by the coordinator's vega from our own data
  }

  async function loadTable() {
    const page = await api(`/api/results?${qs({ limit: PAGE, cursor: pager.cursor })}`);
    nextCursor = page.nextCursor;
    body.replaceChildren(...page.items.map((r) => {
      const rep = r.report ?? {};
      const t = rep.teacher ?? {}, s = rep.student ?? {};
      return h('tr', { 'data-job': r.jobId },
        h('td', {}, r.deviceId), h('td', {}, rep.profile ?? '—'), h('td', {}, r.rolloutId ?? '—'),
        h('td', {}, `${fmtInt(t.params)} → ${fmtInt(s.params)}`, typeof t.params === 'number' && s.params ? h('small', {}, ` (${(t.params / s.params).toFixed(0)}×)`) : ''),
        h('td', {}, `${fmtNum(t.latencyP95Ms, 3)} → ${fmtNum(s.latencyP95Ms, 3)}`),
        h('td', {}, `${fmtNum(t.peakMemoryMB)} → ${fmtNum(s.peakMemoryMB)}`),
        h('td', {}, `${fmtPct(t.testAccuracy ?? t.accuracy)} → ${fmtPct(s.testAccuracy ?? s.accuracy)}`),
        h('td', {}, budgets(rep)));
    }));
    const from = (pager.page - 1) * PAGE;
    info.textContent = page.items.length ? `${from + 1}–${from + page.items.length}` : 'no results';
    prev.disabled = pager.page === 1;
    next.disabled = !nextCursor;
  }

  void loadChart();
  void loadTable();
  return {
    onEvent(type) {
      if (type !== 'result' || timer) return;
      // Coalesce a burst of results into one chart render and one table page.
      timer = setTimeout(() => { timer = null; void loadChart(); if (!nextCursor) void loadTable(); }, 500);
    },
    unmount: () => clearTimeout(timer),
  };
}
