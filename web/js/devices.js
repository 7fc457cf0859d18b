// Devices: one server-side page at a time (cursor), filters, live rows (status, telemetry, job).
import { api, qs } from './api.js';
import { ago, cursorPager, h, progressRatio, progressText, sparkline } from './ui.js';

const PAGE = 50;

export function devicesView({ root, watchChanged }) {
  const pager = cursorPager();
  const rows = new Map(); // id -> { device, samples, job, tr }
  let nextCursor = null;
  let total = 0;
  let seq = 0;

  const f = {
    profile: h('input', { name: 'profile', placeholder: 'profile', 'data-testid': 'filter-profile' }),
    group: h('input', { name: 'group', placeholder: 'group', 'data-testid': 'filter-group' }),
    online: h('select', { name: 'online', 'data-testid': 'filter-online' }, h('option', { value: '' }, 'online: any'), h('option', { value: 'true' }, 'online'), h('option', { value: 'false' }, 'offline')),
    state: h('input', { name: 'state', placeholder: 'state', 'data-testid': 'filter-state' }),
  };
  const info = h('span', { class: 'pageinfo', 'data-testid': 'page-info' });
  const prev = h('button', { type: 'button', 'data-testid': 'prev', onclick: () => { pager.prev(); void load(); } }, '‹ Prev');
  const next = h('button', { type: 'button', 'data-testid': 'next', onclick: () => { pager.next(nextCursor); void load(); } }, 'Next ›');
  const body = h('tbody');
  const form = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); pager.reset(); void load(); } },
    f.profile, f.group, f.online, f.state, h('button', { type: 'submit' }, 'Filter'));
  root.append(
    h('h2', {}, 'Devices'), form,
    h('table', { class: 'grid', 'data-testid': 'devices' },
      h('thead', {}, h('tr', {}, ...['device', 'online', 'profile', 'groups', 'state', 'last seen', 'CPU %', 'temp °C', 'job', 'progress'].map((t) => h('th', {}, t)))),
      body),
    h('div', { class: 'pager' }, prev, info, next),
  );

  function jobCells(r) {
    const job = r.job;
    const ratio = progressRatio(job);
    return [
      h('td', { class: 'job', 'data-testid': 'job' }, job ? h('span', { title: job.jobId }, `${job.state}`) : '—'),
      h('td', { class: 'progress', 'data-testid': 'progress' },
        job?.progress ? [h('div', { class: 'bar' }, h('i', { style: `width:${Math.round((ratio ?? 0) * 100)}%` })), h('span', {}, progressText(job))] : ''),
    ];
  }
  function render(r) {
    const d = r.device;
    const tr = h('tr', { 'data-id': d.id },
      h('td', { class: 'id' }, d.id),
      h('td', {}, h('span', { class: `dot ${d.online ? 'on' : 'off'}`, 'data-testid': 'online', title: d.online ? 'online' : 'offline' }, d.online ? 'online' : 'offline')),
      h('td', {}, d.profile ?? '—'),
      h('td', {}, (d.groups ?? []).join(', ')),
      h('td', {}, d.state ?? '—'),
      h('td', { class: 'seen', 'data-seen': d.lastSeen }, ago(d.lastSeen)),
      h('td', {}, sparkline(r.samples.map((s) => s[1]), { min: 0, max: 100, testid: 'cpu' })),
      h('td', {}, sparkline(r.samples.map((s) => s[2]), { testid: 'temp' })),
      ...jobCells(r),
    );
    r.tr?.replaceWith(tr);
    r.tr = tr;
    return tr;
  }

  async function load() {
    const my = ++seq;
    const q = qs({ limit: PAGE, cursor: pager.cursor, profile: f.profile.value.trim(), group: f.group.value.trim(), online: f.online.value, state: f.state.value.trim() });
    const page = await api(`/api/devices?${q}`);
    if (my !== seq) return;
    const ids = page.items.map((d) => d.id);
    const live = ids.length ? (await api(`/api/live?${qs({ devices: ids.join(',') })}`)).devices : {};
    if (my !== seq) return;
    nextCursor = page.nextCursor;
    total = page.total;
    rows.clear();
    body.replaceChildren(...page.items.map((d) => {
      const l = live[d.id] ?? { telemetry: [], job: null };
      const active = d.telemetry?.activeJob;
      const r = { device: d, samples: l.telemetry, job: l.job ?? (active ? { jobId: active.jobId, state: active.state, progress: null } : null), tr: null };
      rows.set(d.id, r);
      return render(r);
    }));
    const from = (pager.page - 1) * PAGE;
    info.textContent = total ? `${(from + 1).toLocaleString('en-US')}–${(from + ids.length).toLocaleString('en-US')} of ${total.toLocaleString('en-US')}` : 'no devices';
    prev.disabled = pager.page === 1;
    next.disabled = !nextCursor;
    watchChanged();
  }

  const ticker = setInterval(() => { for (const td of body.querySelectorAll('td.seen')) td.textContent = ago(Number(td.dataset.seen)); }, 5000);
  void load();

  return {
    watched: () => [...rows.keys()],
    onEvent(type, e) {
      const r = rows.get(e.id);
      if (!r) return;
      if (type === 'device') r.device = { ...r.device, online: e.online, state: e.state, lastSeen: e.lastSeen };
      else if (type === 'telemetry') r.samples = [...r.samples, ...e.samples].slice(-40);
      else if (type === 'job') r.job = e;
      else return;
      render(r);
    },
    unmount: () => clearInterval(ticker),
  };
}
