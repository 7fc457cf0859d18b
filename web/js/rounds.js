// Rounds: federated runs and their rounds (who took part, who was refused and why, the round's metrics).
import { api, ApiError } from './api.js';
import { fmtNum, fmtPct, h, sparkline } from './ui.js';

const list = (a) => (Array.isArray(a) ? a : []);

/** The first of `keys` that a round's metrics hold as a number. */
function metric(m, keys) {
  if (!m || typeof m !== 'object') return undefined;
  for (const k of keys) if (typeof m[k] === 'number') return m[k];
  return undefined;
}

// The coordinator's evaluate hook writes its keys as they are; the clients' sample-weighted means come as `client.<name>`.
const accuracyOf = (m) => metric(m, ['accuracy', 'testAccuracy', 'client.accuracy']);
const lossOf = (m) => metric(m, ['loss', 'client.loss']);
/** `/api/rounds` calls the round number `round`; the store row calls it `roundNumber`. */
const numberOf = (r) => r.round ?? r.roundNumber;

function refusedCell(res) {
  const refused = list(res.refused);
  const failed = list(res.failed);
  if (!refused.length && !failed.length) return '—';
  const title = [
    ...refused.map((r) => `${r.deviceId}: ${list(r.codes).join(', ')}`),
    ...failed.map((f) => `${f.deviceId}: failed ${f.code}`),
  ].join('\n');
  return h('span', { class: 'bad', title, 'data-testid': 'refused' }, `${refused.length} refused${failed.length ? `, ${failed.length} failed` : ''}`);
}

function roundRow(r) {
  const res = r.result ?? {};
  const m = res.metrics ?? {};
  return h('tr', { 'data-round': r.id },
    h('td', {}, numberOf(r)),
    h('td', { class: r.state === 'completed' ? 'ok' : r.state === 'open' ? '' : 'bad' }, r.state),
    h('td', {}, list(res.included).length || (r.state === 'open' ? '…' : '0')),
    h('td', {}, refusedCell(res)),
    h('td', {}, list(res.late).length || '—'),
    h('td', {}, list(res.dropped).length || '—'),
    h('td', {}, fmtPct(accuracyOf(m))),
    h('td', {}, fmtNum(lossOf(m), 3)),
    h('td', { title: res.globalSha256 ?? '' }, res.globalSha256 ? String(res.globalSha256).slice(0, 10) : '—'));
}

export function roundsView({ root }) {
  const box = h('div', { 'data-testid': 'rounds' }, 'loading…');
  root.append(h('h2', {}, 'Rounds'), box);
  let timer = null;

  async function load() {
    let runs = [];
    let rounds = [];
    try {
      [runs, rounds] = await Promise.all([
        api('/api/federated').then((b) => list(b.items ?? b)),
        api('/api/rounds').then((b) => list(b.items ?? b)),
      ]);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 404) throw e;
    }
    if (!rounds.length && !runs.length) return box.replaceChildren(h('p', { class: 'hint' }, 'no rounds'));
    const byRun = new Map(runs.map((run) => [run.id, { run, rounds: [] }]));
    for (const r of rounds) {
      const key = r.runId ?? '(no run)';
      if (!byRun.has(key)) byRun.set(key, { run: null, rounds: [] });
      byRun.get(key).rounds.push(r);
    }
    box.replaceChildren(...[...byRun.entries()].reverse().map(([id, { run, rounds: rs }]) => {
      rs.sort((a, b) => numberOf(a) - numberOf(b) || a.createdAt - b.createdAt);
      const acc = rs.filter((r) => r.state === 'completed').map((r) => accuracyOf(r.result?.metrics));
      const total = run?.spec?.rounds;
      return h('section', { class: 'run', 'data-run': id },
        h('h3', {}, `run ${id} `, h('small', {}, run ? `${run.state} · ${run.roundNumber}${total ? ` of ${total}` : ''} rounds · ${run.spec?.strategy ?? ''}` : ''),
          ' ', sparkline(acc, { testid: 'round-accuracy', min: 0, max: 1 })),
        h('table', { class: 'grid', 'data-testid': 'round-table' },
          h('thead', {}, h('tr', {}, ...['round', 'state', 'included', 'refused', 'late', 'dropped', 'accuracy', 'loss', 'global'].map((t) => h('th', {}, t)))),
          h('tbody', {}, rs.map(roundRow))));
    }));
  }

  void load();
  // Rounds move on their own schedule (deadlines): refresh while the view is open.
  timer = setInterval(() => void load(), 5000);
  return { unmount: () => clearInterval(timer) };
}
