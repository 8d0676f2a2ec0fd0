// Time ranges as Grafana writes them: from/to are "now", "now-1h", "now-7d", epoch
// milliseconds ("1732480000000") or an ISO date. They stay strings in the URL so a relative
// range is still relative when the link is reopened; resolveRange turns them into numbers.

const UNIT_MS = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3, y: 365 * 86400e3 };

export const DEFAULT_FROM = 'now-1h';
export const DEFAULT_TO = 'now';

// "5m" -> 300000; "1h30m" -> 5400000; null when it is not a duration.
export function parseDuration(text) {
  const s = String(text).trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d|w|y))+$/.test(s)) return null;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/g)) total += parseFloat(m[1]) * UNIT_MS[m[2]];
  return total;
}

// One end of a range -> epoch ms (NaN when it cannot be read).
export function parseTimeExpr(expr, now = Date.now()) {
  const s = String(expr ?? '').trim();
  if (s === '' || s === 'now') return now;
  const rel = /^now\s*([-+])\s*(.+)$/.exec(s);
  if (rel) {
    const d = parseDuration(rel[2]);
    if (d === null) return NaN;
    return rel[1] === '-' ? now - d : now + d;
  }
  if (/^\d{12,}$/.test(s)) return Number(s);
  const t = Date.parse(s);
  return Number.isNaN(t) ? NaN : t;
}

// {from, to} strings -> {start, end} epoch ms; throws an Error naming the bad end.
export function resolveRange(from, to, now = Date.now()) {
  const start = parseTimeExpr(from || DEFAULT_FROM, now);
  const end = parseTimeExpr(to || DEFAULT_TO, now);
  if (Number.isNaN(start)) throw new Error(`cannot read the start time "${from}"`);
  if (Number.isNaN(end)) throw new Error(`cannot read the end time "${to}"`);
  if (start >= end) throw new Error('the start of the time range must be before its end');
  return { start, end };
}

// Epoch ms -> the nanosecond string Loki and Tempo take (exact: no float has 19 digits).
export function msToNs(ms) {
  return `${Math.round(ms)}000000`;
}

// A step (seconds) giving about `points` points over the range, rounded to a friendly value.
export function autoStep(startMs, endMs, points = 250) {
  const raw = Math.max(1, (endMs - startMs) / 1000 / points);
  const nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
  return nice.find((n) => n >= raw) ?? Math.ceil(raw / 86400) * 86400;
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '';
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 1000) return `${+ms.toFixed(ms < 10 ? 2 : 1)}ms`;
  if (ms < 60e3) return `${+(ms / 1000).toFixed(2)}s`;
  if (ms < 3600e3) return `${Math.floor(ms / 60e3)}m${Math.round((ms % 60e3) / 1000)}s`;
  return `${Math.floor(ms / 3600e3)}h${Math.round((ms % 3600e3) / 60e3)}m`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// Local wall-clock time "2026-11-24 13:05:09.123".
export function formatTime(ms, { millis = false } = {}) {
  const d = new Date(ms);
  const s = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return millis ? `${s}.${pad(d.getMilliseconds(), 3)}` : s;
}

export function describeRange(from, to) {
  const f = from || DEFAULT_FROM;
  const t = to || DEFAULT_TO;
  const rel = /^now-(.+)$/.exec(f);
  if (rel && t === 'now') return `Last ${rel[1]}`;
  const show = (x) => (/^\d{12,}$/.test(x) ? formatTime(Number(x)) : x);
  return `${show(f)} to ${show(t)}`;
}
