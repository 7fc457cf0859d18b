// Rollouts: stages, counts per state, failure share against the abort threshold; admin: start, abort.
import { api } from './api.js';
import { ago, h, progressText } from './ui.js';

const FINAL = ['succeeded', 'failed', 'rejected', 'canceled', 'timed_out'];
const FAILED = ['failed', 'rejected', 'timed_out'];
const ORDER = ['dispatched', 'received', 'downloading', 'verified', 'lightening', 'distilling', 'pruning', 'benchmarking', 'reporting', ...FINAL];

function targetText(t) {
  return t.kind === 'all' ? 'all devices' : t.kind === 'devices' ? `${t.deviceIds.length} devices` : `${t.kind} ${t[t.kind]}`;
}
function stagingText(s) {
  return s.kind === 'percentages' ? `steps ${s.steps.map((x) => `${x} %`).join(' → ')}` : `${s.perMinute}/min ×${s.incrementFactor}${s.maxPerMinute ? ` ≤ ${s.maxPerMinute}` : ''}`;
}

export function rolloutsView({ root, role, watchChanged }) {
  const cards = new Map(); // id -> { rollout, counts, el, execs: Map<deviceId, exec> | null }
  const list = h('div', { class: 'rollouts', 'data-testid': 'rollouts' });
  const admin = role === 'admin';
  root.append(h('h2', {}, 'Rollouts'), admin ? startForm() : h('p', { class: 'hint', 'data-testid': 'read-only' }, 'Read-only token: starting and aborting rollouts needs an admin token.'), list);

  function startForm() {
    const teacher = h('select', { name: 'teacher', 'data-testid': 'teacher', required: true });
    const kind = h('select', { name: 'kind', 'data-testid': 'target-kind' }, ...['group', 'profile', 'all'].map((k) => h('option', { value: k }, k)));
    const value = h('input', { name: 'target', placeholder: 'group or profile', 'data-testid': 'target-value' });
    const steps = h('input', { name: 'steps', value: '50,100', title: 'cumulative percentages', 'data-testid': 'steps' });
    const share = h('input', { name: 'share', type: 'number', min: 1, max: 100, value: 25, 'data-testid': 'abort-share' });
    const minFinished = h('input', { name: 'min', type: 'number', min: 1, value: 2 });
    const msg = h('span', { class: 'error', role: 'alert' });
    void api('/api/teachers').then((ts) => teacher.replaceChildren(...ts.map((t) => h('option', { value: t.sha256 }, `${t.name} v${t.version} (${t.sha256.slice(0, 8)})`))));
    return h('form', { class: 'start', 'data-testid': 'start-form', onsubmit: async (e) => {
      e.preventDefault();
      msg.textContent = '';
      const k = kind.value;
      const target = k === 'all' ? { kind: 'all' } : { kind: k, [k]: value.value.trim() };
      try {
        await api('/api/rollouts', { method: 'POST', body: {
          teacherSha256: teacher.value, target,
          staging: { kind: 'percentages', steps: steps.value.split(',').map(Number) },
          abort: { failureShare: Number(share.value) / 100, minFinished: Number(minFinished.value) },
        } });
        await load();
      } catch (err) { msg.textContent = `${err.code}: ${err.message}`; }
    } },
    h('strong', {}, 'Start a rollout'), teacher, kind, value, h('label', {}, 'steps %', steps), h('label', {}, 'abort at %', share), h('label', {}, 'after', minFinished),
    h('button', { type: 'submit', class: 'admin', 'data-testid': 'start-rollout' }, 'Start'), msg);
  }

  function render(c) {
    const r = c.rollout;
    const counts = c.counts ?? {};
    const n = Object.values(counts).reduce((a, b) => a + b, 0);
    const fin = FINAL.reduce((a, s) => a + (counts[s] ?? 0), 0);
    const failed = FAILED.reduce((a, s) => a + (counts[s] ?? 0), 0);
    const share = fin ? failed / fin : 0;
    const ab = r.spec.abort;
    const states = ORDER.filter((s) => counts[s]).concat(Object.keys(counts).filter((s) => !ORDER.includes(s)));
    const el = h('article', { class: `rollout ${r.state}`, 'data-rollout': r.id },
      h('header', {}, h('strong', {}, r.id), h('span', { class: `badge ${r.state}`, 'data-testid': 'rollout-state' }, r.state), h('small', {}, `created ${ago(r.createdAt)}`),
        admin && ['running', 'scheduled', 'paused'].includes(r.state) ? h('button', { type: 'button', class: 'admin danger', 'data-testid': 'abort', onclick: () => abort(r.id) }, 'Abort') : null),
      h('p', {}, `${targetText(r.spec.target)} · ${stagingText(r.spec.staging)} · teacher ${r.spec.teacherSha256.slice(0, 8)}`),
      h('div', { class: 'stack', title: `${fin}/${n} finished` }, ...states.map((s) => h('i', { class: `st-${s}`, style: `flex:${counts[s]}`, title: `${s}: ${counts[s]}` }))),
      h('p', { class: 'counts', 'data-testid': 'counts' }, states.length ? states.map((s) => h('span', { class: `chip st-${s}` }, `${s} ${counts[s]}`)) : 'no executions yet'),
      h('p', { class: 'threshold', 'data-testid': 'threshold' },
        `failures ${failed}/${fin} finished = ${(share * 100).toFixed(1)} %`,
        ab ? h('span', { class: share >= ab.failureShare && fin >= ab.minFinished ? 'over' : '' }, ` · abort at ${(ab.failureShare * 100).toFixed(0)} % after ${ab.minFinished} finished`) : ' · no abort threshold'),
      h('details', { ontoggle: (e) => toggle(c, e.target.open) }, h('summary', {}, 'executions'), execTable(c)),
    );
    if (c.el) {
      el.querySelector('details').open = c.el.querySelector('details').open;
      c.el.replaceWith(el);
    }
    c.el = el;
    return el;
  }

  function execTable(c) {
    if (!c.execs) return h('p', {}, '…');
    return h('table', { class: 'grid small' }, h('thead', {}, h('tr', {}, ...['device', 'job', 'state', 'attempts', 'progress', 'error'].map((t) => h('th', {}, t)))),
      h('tbody', {}, [...c.execs.values()].map((e) => h('tr', { 'data-id': e.deviceId }, h('td', {}, e.deviceId), h('td', {}, e.jobId.split('.').pop()), h('td', {}, e.state), h('td', {}, e.attempts),
        h('td', {}, progressText(e.live)), h('td', { class: 'error' }, e.error ? e.error.code : '')))));
  }

  async function toggle(c, open) {
    if (!open) { c.execs = null; watchChanged(); return; }
    const page = await api(`/api/rollouts/${encodeURIComponent(c.rollout.id)}/executions?limit=100`);
    c.execs = new Map(page.items.map((e) => [e.deviceId, e]));
    render(c);
    watchChanged();
  }

  async function abort(id) {
    try { await api(`/api/rollouts/${encodeURIComponent(id)}/abort`, { method: 'POST' }); } catch (err) { alert(`${err.code}: ${err.message}`); }
    await refresh(id);
  }

  async function refresh(id) {
    const r = await api(`/api/rollouts/${encodeURIComponent(id)}`);
    const c = cards.get(id) ?? { el: null, execs: null };
    Object.assign(c, { rollout: r, counts: r.counts });
    cards.set(id, c);
    return render(c);
  }

  // One load at a time; a request during a load runs once more after it (no stale cards in the list).
  let loading = null;
  let again = false;
  function load() {
    if (loading) { again = true; return loading; }
    loading = loadOnce().finally(() => { loading = null; if (again) { again = false; void load(); } });
    return loading;
  }
  async function loadOnce() {
    const rs = await api('/api/rollouts');
    rs.sort((a, b) => b.createdAt - a.createdAt);
    for (const r of rs) await refresh(r.id);
    // The cards' current elements: an event during the awaits may have re-rendered one.
    const els = rs.map((r) => cards.get(r.id).el);
    list.replaceChildren(...(els.length ? els : [h('p', { class: 'hint' }, 'no rollouts')]));
  }
  void load();

  return {
    watched: () => [...cards.values()].flatMap((c) => (c.execs ? [...c.execs.keys()] : [])),
    onEvent(type, e) {
      if (type === 'rollout') {
        const c = cards.get(e.id);
        if (!c) return void load();
        c.rollout = { ...c.rollout, state: e.state, updatedAt: e.updatedAt };
        c.counts = e.counts;
        render(c);
      } else if (type === 'job') {
        for (const c of cards.values()) {
          const x = c.execs?.get(e.id);
          if (x && (x.jobId === e.jobId || e.rolloutId === c.rollout.id)) { Object.assign(x, { jobId: e.jobId, state: e.state, live: e }); render(c); }
        }
      }
    },
  };
}
