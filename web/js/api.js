// The coordinator API with the session's bearer token (kept in sessionStorage: gone with the tab).
const KEY = 'edgekt.token';

export const session = {
  get token() { return sessionStorage.getItem(KEY); },
  set token(t) { if (t) sessionStorage.setItem(KEY, t); else sessionStorage.removeItem(KEY); },
  role: null,
};

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

export async function api(path, { method = 'GET', body, raw = false } = {}) {
  const headers = { authorization: `Bearer ${session.token ?? ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) {
    let err = { code: `HTTP_${res.status}`, message: res.statusText };
    try { err = (await res.json()).error ?? err; } catch { /* not JSON */ }
    throw new ApiError(res.status, err.code, err.message);
  }
  return raw ? res : res.json();
}

/** 'admin', 'read', or null when the token is refused. */
export async function probeRole() {
  try { await api('/api/session'); } catch { return null; }
  try { await api('/api/session/admin'); return 'admin'; } catch (e) { if (e.status === 403) return 'read'; throw e; }
}

export const qs = (o) => new URLSearchParams(Object.entries(o).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString();
