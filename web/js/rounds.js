// Rounds: federated learning, accuracy per round per budget group (a placeholder until rounds exist).
import { api, ApiError } from './api.js';
import { fmtPct, h } from './ui.js';

export function roundsView({ root }) {
  const box = h('div', { 'data-testid': 'rounds' }, 'loading…');
  root.append(h('h2', {}, 'Rounds'), box);
  void (async () => {
    let items = [];
    try { items = (await api('/api/rounds')).items ?? []; } catch (e) { if (!(e instanceof ApiError) || e.status !== 404) throw e; }
    if (!items.length) return box.replaceChildren(h('p', { class: 'hint' }, 'no rounds'));
    box.replaceChildren(h('table', { class: 'grid' }, h('thead', {}, h('tr', {}, h('th', {}, 'round'), h('th', {}, 'budget group'), h('th', {}, 'accuracy'), h('th', {}, 'clients'))),
      h('tbody', {}, items.map((r) => h('tr', {}, h('td', {}, r.roundNumber), h('td', {}, r.budgetGroup ?? '—'), h('td', {}, fmtPct(r.accuracy)), h('td', {}, r.clients ?? '—'))))));
  })();
  return {};
}
