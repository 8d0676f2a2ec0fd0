// Log lines as a reader wants them: one line per row (time, severity, text), coloured by level,
// virtualized so 10,000 lines scroll as fast as 10; a click on a row opens its fields (stream
// labels, structured metadata, fields parsed from JSON or logfmt) in a panel beside the list, and
// a trace id, wherever the line carries it, links to the trace.
//
// <${LogLines} lines height /> with lines = [{ts: ns string, line, labels, metadata, level}];
// lokiStreamsToLines(result, {indexLabels}) turns a Loki "streams" result into such lines.
import { html, useState } from '../preact.js';
import { Link } from '../lib/router.js';
import { formatTime } from '../lib/time.js';
import { VirtualList } from './vlist.js';

const ROW_HEIGHT = 22;

// ---- levels -------------------------------------------------------------------------------

const LEVEL_NAMES = {
  fatal: 'fatal', critical: 'fatal', crit: 'fatal', panic: 'fatal', emergency: 'fatal', alert: 'fatal',
  error: 'error', err: 'error', eror: 'error',
  warn: 'warn', warning: 'warn',
  info: 'info', information: 'info', informational: 'info', notice: 'info',
  debug: 'debug', dbug: 'debug',
  trace: 'trace',
};
const LEVEL_KEYS = ['detected_level', 'level', 'severity_text', 'severity', 'lvl', 'loglevel'];
const LEVEL_IN_TEXT = /\b(fatal|critical|panic|error|err|warn|warning|info|debug|trace)\b/i;

// "ERROR", "Warning", "err", "error2" (OTel severity texts) -> error/warn/info/debug/trace/fatal,
// or "unknown".
export function normalizeLevel(value) {
  if (value === undefined || value === null) return 'unknown';
  const v = String(value).trim().toLowerCase().replace(/\d+$/, '');
  return LEVEL_NAMES[v] || 'unknown';
}

function levelOf(metadata, labels, line) {
  for (const key of LEVEL_KEYS) {
    const v = metadata[key] ?? labels[key];
    if (v !== undefined && normalizeLevel(v) !== 'unknown') return normalizeLevel(v);
  }
  const m = LEVEL_IN_TEXT.exec(line.length > 300 ? line.slice(0, 300) : line);
  return m ? normalizeLevel(m[1]) : 'unknown';
}

// ---- Loki results -> lines ----------------------------------------------------------------

function compareTsDesc(a, b) {
  if (a.ts.length !== b.ts.length) return b.ts.length - a.ts.length;
  return a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : 0;
}

// Split one stream's labels into index labels and the rest (structured metadata and parsed
// labels, which Loki merges into the stream unless asked for categorized labels).
function splitLabels(stream, indexLabels) {
  if (!indexLabels) return [stream, {}];
  const labels = {};
  const metadata = {};
  for (const [k, v] of Object.entries(stream)) (indexLabels.has(k) ? labels : metadata)[k] = v;
  return [labels, metadata];
}

// A Loki "streams" result -> lines, newest first. Values are [ts, line] or, with the
// categorize-labels encoding, [ts, line, {structuredMetadata, parsed}]. indexLabels (a Set of
// the tenant's stream label names, from /loki/api/v1/labels) separates the labels Loki merged.
export function lokiStreamsToLines(result, { indexLabels = null } = {}) {
  const out = [];
  for (const s of result || []) {
    const [labels, streamMetadata] = splitLabels(s.stream || {}, indexLabels);
    for (const v of s.values || []) {
      const extra = v[2];
      const metadata = extra ? { ...streamMetadata, ...extra.structuredMetadata, ...extra.parsed } : streamMetadata;
      const line = v[1] ?? '';
      out.push({ ts: String(v[0]), line, labels, metadata, level: levelOf(metadata, labels, line) });
    }
  }
  return out.sort(compareTsDesc);
}

// ---- fields of one line ---------------------------------------------------------------------

const TRACE_ID_KEYS = ['trace_id', 'traceid', 'traceId', 'traceID'];
const TRACE_ID_IN_TEXT = /trace_?id"?\s*[=:]\s*"?([0-9a-f]{32})\b/i;
const HEX32 = /^[0-9a-f]{32}$/i;

export function traceIdOf(entry) {
  const md = entry.metadata || {};
  const labels = entry.labels || {};
  for (const key of TRACE_ID_KEYS) {
    const v = md[key] ?? labels[key];
    if (v && HEX32.test(v)) return v.toLowerCase();
  }
  const m = TRACE_ID_IN_TEXT.exec(entry.line);
  return m ? m[1].toLowerCase() : null;
}

function flatten(obj, prefix, out) {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}_${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

const LOGFMT_PAIR = /([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)/g;

// Fields as LogQL's | json or | logfmt would extract them (nested JSON keys joined with "_").
export function parseLineFields(line) {
  const text = line.trim();
  if (text.startsWith('{')) {
    try {
      const obj = JSON.parse(text);
      if (obj && typeof obj === 'object') return { parser: 'json', fields: flatten(obj, '', {}) };
    } catch { /* not JSON: try logfmt */ }
  }
  const fields = {};
  for (const m of text.matchAll(LOGFMT_PAIR)) {
    let v = m[2];
    if (v.startsWith('"')) {
      try { v = JSON.parse(v); } catch { v = v.slice(1, -1); }
    }
    fields[m[1]] = v;
  }
  return Object.keys(fields).length ? { parser: 'logfmt', fields } : null;
}

// ---- view -----------------------------------------------------------------------------------

export function formatLogTime(ts) {
  return formatTime(Number(ts.slice(0, -6) || 0), { millis: true });
}

function TraceLink({ id, children }) {
  return html`<span onClick=${(e) => e.stopPropagation()}>
    <${Link} href=${`/ui/traces/${id}`} class="trace-link" data-testid="trace-link" title=${`Open trace ${id}`}>${children}<//>
  </span>`;
}

function LogRow({ entry, selected, onSelect }) {
  const tid = traceIdOf(entry);
  return html`<div class=${`log-row level-${entry.level}${selected ? ' selected' : ''}`} data-testid="log-line"
      data-level=${entry.level} onClick=${() => onSelect(selected ? null : entry)} title="Click to show its fields">
    <span class="log-ts">${formatLogTime(entry.ts)}</span>
    <span class=${`log-level sev-${entry.level}`} data-testid="log-level">${entry.level === 'unknown' ? '—' : entry.level}</span>
    <span class="log-text">${entry.line}</span>
    ${tid && html`<${TraceLink} id=${tid}>trace<//>`}
  </div>`;
}

function FieldTable({ title, fields, testid }) {
  const keys = Object.keys(fields || {}).sort();
  if (!keys.length) return null;
  return html`<div class="log-fields" data-testid=${testid}>
    <div class="log-fields-title">${title}</div>
    <table class="data">
      ${keys.map((k) => html`<tr key=${k} data-testid="log-field" data-field=${k}>
        <th>${k}</th><td class="mono">${fields[k]}</td></tr>`)}
    </table>
  </div>`;
}

function LogDetails({ entry, onClose }) {
  const tid = traceIdOf(entry);
  const parsed = parseLineFields(entry.line);
  return html`<aside class="log-details" data-testid="log-details">
    <div class="panel-title">
      <span class=${`log-level sev-${entry.level}`}>${entry.level}</span>
      <span class="mono">${formatLogTime(entry.ts)}</span>
      <span class="spacer"></span>
      <button type="button" class="link" onClick=${onClose} title="Close">✕</button>
    </div>
    <pre class="log-details-line" data-testid="log-details-line">${entry.line}</pre>
    ${tid && html`<div class="log-details-trace">Trace <${TraceLink} id=${tid}>${tid}<//></div>`}
    <${FieldTable} title="Stream labels" fields=${entry.labels} testid="log-labels" />
    <${FieldTable} title="Structured metadata" fields=${entry.metadata} testid="log-metadata" />
    ${parsed && html`<${FieldTable} title=${`Parsed fields (${parsed.parser})`} fields=${parsed.fields} testid="log-parsed" />`}
  </aside>`;
}

export function LogLines({ lines, height = 600 }) {
  const [chosen, setSelected] = useState(null);
  const selected = chosen && lines.includes(chosen) ? chosen : null; // gone after a new query
  const renderRow = (i) => html`<${LogRow} entry=${lines[i]} selected=${lines[i] === selected} onSelect=${setSelected} />`;
  return html`<div class="log-lines">
    <div class="log-lines-list">
      <${VirtualList} count=${lines.length} rowHeight=${ROW_HEIGHT}
        height=${Math.min(height, lines.length * ROW_HEIGHT + 2)} renderRow=${renderRow} testid="log-lines" />
    </div>
    ${selected && html`<${LogDetails} entry=${selected} onClose=${() => setSelected(null)} />`}
  </div>`;
}
