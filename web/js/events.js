// Server-Sent Events from /api/events: small deltas, device-scoped ones only for the watched rows.
import { api, session } from './api.js';

const TYPES = ['device', 'telemetry', 'job', 'rollout', 'fleet', 'result'];

export function connectEvents({ onEvent, watched, onState }) {
  let client = null;
  const es = new EventSource(`/api/events?token=${encodeURIComponent(session.token ?? '')}`);
  const sendWatch = async () => {
    if (!client) return;
    try { await api('/api/events/watch', { method: 'POST', body: { client, devices: watched().slice(0, 1000) } }); } catch { /* stream gone: hello re-sends */ }
  };
  es.addEventListener('hello', (e) => { client = JSON.parse(e.data).client; onState('live'); void sendWatch(); });
  es.onerror = () => onState(es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
  for (const t of TYPES) es.addEventListener(t, (e) => onEvent(t, JSON.parse(e.data)));
  return { updateWatch: sendWatch, close: () => es.close() };
}
