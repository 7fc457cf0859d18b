// Small DOM helpers: h() builds elements, sparkline() an inline SVG polyline.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
export function sparkline(values, { width = 90, height = 22, min, max, testid } = {}) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('width', width); svg.setAttribute('height', height); svg.setAttribute('class', 'spark');
  if (testid) svg.setAttribute('data-testid', testid);
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x));
  svg.dataset.points = String(v.length);
  if (v.length === 0) return svg;
  const lo = min ?? Math.min(...v), hi = Math.max(max ?? -Infinity, ...v);
  const span = hi - lo || 1;
  const pts = v.map((x, i) => `${(v.length === 1 ? width / 2 : (i * (width - 2)) / (v.length - 1) + 1).toFixed(1)},${(height - 2 - ((x - lo) * (height - 4)) / span).toFixed(1)}`);
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', pts.join(' '));
  svg.append(line);
  const t = document.createElementNS(SVG, 'title');
  t.textContent = `last ${v[v.length - 1]}`;
  svg.append(t);
  return svg;
}

export const fmtInt = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '—');
export const fmtNum = (n, d = 2) => (typeof n === 'number' && Number.isFinite(n) ? n.toFixed(d) : '—');
export const fmtPct = (n, d = 1) => (typeof n === 'number' && Number.isFinite(n) ? `${(n * 100).toFixed(d)} %` : '—');
export function ago(ms) {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : s < 86400 ? `${Math.floor(s / 3600)} h ago` : new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}

/** Text of a job's progress: "download · blocks 3/10", "distill 40/100", or the stage alone. */
export function progressText(job) {
  const p = job?.progress;
  if (!p) return '';
  if (p.blocks) return `${p.stage ?? 'download'} · blocks ${p.blocks.received}/${p.blocks.total}`;
  if (typeof p.total === 'number' && p.total > 0) return `${p.stage ?? ''} ${p.done ?? 0}/${p.total}`.trim();
  return p.stage ?? '';
}
export function progressRatio(job) {
  const p = job?.progress;
  if (!p) return null;
  if (p.blocks && p.blocks.total > 0) return p.blocks.received / p.blocks.total;
  if (typeof p.total === 'number' && p.total > 0) return (p.done ?? 0) / p.total;
  return null;
}

/** A cursor pager: remembers the cursors of the pages before, so Prev works without offsets. */
export function cursorPager() {
  const stack = [null];
  return {
    get cursor() { return stack[stack.length - 1]; },
    get page() { return stack.length; },
    next(c) { if (c) stack.push(c); },
    prev() { if (stack.length > 1) stack.pop(); },
    reset() { stack.length = 1; },
  };
}
