// The dashboard shell: login, the four views (hash routes), the event stream, the fleet summary.
import { probeRole, session } from './api.js';
import { connectEvents } from './events.js';
import { devicesView } from './devices.js';
import { rolloutsView } from './rollouts.js';
import { resultsView } from './results.js';
import { roundsView } from './rounds.js';

const VIEWS = { devices: devicesView, rollouts: rolloutsView, results: resultsView, rounds: roundsView };
const $ = (id) => document.getElementById(id);
let current = null;
let events = null;

function setLive(state) {
  const el = $('live');
  el.textContent = state;
  el.className = `live ${state === 'live' ? 'on' : 'off'}`;
}

function route() {
  const name = (location.hash.slice(1) || 'devices').split('?')[0];
  const make = VIEWS[name] ?? VIEWS.devices;
  current?.unmount?.();
  const root = $('view');
  root.replaceChildren();
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === name);
  current = make({ root, role: session.role, watchChanged: () => events?.updateWatch() });
  events?.updateWatch();
}

function onEvent(type, data) {
  if (type === 'fleet') $('fleet').textContent = `${data.online.toLocaleString('en-US')} online / ${data.total.toLocaleString('en-US')} devices`;
  current?.onEvent?.(type, data);
}

async function start() {
  const role = session.token ? await probeRole() : null;
  if (!role) {
    session.token = null;
    $('login').hidden = false;
    $('nav').hidden = $('session').hidden = true;
    return;
  }
  session.role = role;
  $('login').hidden = true;
  $('nav').hidden = $('session').hidden = false;
  $('role').textContent = role === 'admin' ? 'admin' : 'read-only';
  document.body.dataset.role = role;
  events = connectEvents({ onEvent, watched: () => current?.watched?.() ?? [], onState: setLive });
  window.addEventListener('hashchange', route);
  route();
}

$('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  session.token = $('token').value.trim();
  $('login-error').textContent = '';
  if (!(await probeRole())) {
    session.token = null;
    $('login-error').textContent = 'token refused';
    return;
  }
  $('token').value = '';
  await start();
});
$('logout').addEventListener('click', () => {
  session.token = null;
  location.hash = '';
  location.reload();
});

void start();
