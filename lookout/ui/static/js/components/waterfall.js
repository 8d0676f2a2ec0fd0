// The trace waterfall: one row per span in tree order, each with its service, name and a bar
// placed on the trace's time axis, so where the time went is visible at a glance. Rows are
// virtualized (a 10,000-span trace stays fast); subtrees collapse; the critical path (what the
// trace's end waited for) is drawn over the bars; a filter finds spans by name, service or
// attribute. Clicking a span opens its details beside the list: attributes, events (an
// exception first), links, its logs and the way to its service's metrics.
//
// Props: trace (from lib/otlp.js parseTrace), selectedId (span id or ''), onSelect(spanId|'').
import { html, useEffect, useMemo, useState } from '../preact.js';
import { api } from '../lib/api.js';
import { useAsync } from '../lib/useasync.js';
import { Link } from '../lib/router.js';
import { formatTime } from '../lib/time.js';
import { criticalPath, formatAttrValue, formatNanos, serviceColor, visibleSpans } from '../lib/otlp.js';
import { lokiStreamsToLines } from './loglines.js';
import { VirtualList } from './vlist.js';

const ROW_HEIGHT = 26;
const MAX_LIST_HEIGHT = 620;
const INDENT = 14;
const TICKS = [0, 0.25, 0.5, 0.75, 1];

const pct = (x, total) => (total > 0 ? (x / total) * 100 : 0);
const nsToMs = (big) => Number(big / 1000000n);

function TimeRuler({ duration }) {
  return html`<div class="wf-ruler">
    ${TICKS.map((k) => html`<span class="wf-tick" style=${`left:${k * 100}%`}>${formatNanos(duration * k)}</span>`)}
  </div>`;
}

function SpanBar({ span, duration, critical }) {
  const left = pct(span.start, duration);
  const width = Math.max(pct(span.duration, duration), 0.15);
  const color = span.status === 'error' ? 'var(--error)' : serviceColor(span.service);
  return html`<div class="wf-timeline">
    <div class="wf-bar" style=${`left:${left}%;width:${width}%;background:${color}`}>
      ${critical && span.duration > 0 && critical.map(([a, b]) => html`<span class="wf-critical"
        style=${`left:${pct(a - span.start, span.duration)}%;width:${pct(b - a, span.duration)}%`}></span>`)}
    </div>
    <span class="wf-duration" style=${`left:${left + width}%`}>${formatNanos(span.duration)}</span>
  </div>`;
}

function SpanRow({ span, duration, collapsed, critical, selected, match, current, onToggle, onSelect }) {
  const cls = ['wf-row'];
  if (span.status === 'error') cls.push('is-error');
  if (selected) cls.push('is-selected');
  if (match) cls.push('is-match');
  if (current) cls.push('is-current');
  if (critical) cls.push('on-critical-path');
  const toggle = (e) => {
    e.stopPropagation();
    onToggle(span.spanId);
  };
  return html`<div class=${cls.join(' ')} data-testid="span-row" data-span-id=${span.spanId} data-depth=${span.depth}
      data-status=${span.status} data-critical=${critical ? 'true' : 'false'} onClick=${() => onSelect(span.spanId)}>
    <div class="wf-name-col" style=${`padding-left:${4 + span.depth * INDENT}px`}>
      ${span.children.length
        ? html`<button type="button" class="wf-toggle" data-testid="span-toggle" aria-expanded=${!collapsed}
            title=${collapsed ? `Expand (${span.descendants} spans)` : 'Collapse'} onClick=${toggle}>${collapsed ? '▸' : '▾'}</button>`
        : html`<span class="wf-toggle-space"></span>`}
      <span class="wf-service" style=${`color:${serviceColor(span.service)}`}>${span.service}</span>
      <span class="wf-name" data-testid="span-name" title=${span.name}>${span.name}</span>
      ${span.status === 'error' && html`<span class="wf-error-icon" title=${span.statusMessage || 'status error'}>⚠</span>`}
      ${collapsed && html`<span class="badge">${span.descendants}</span>`}
    </div>
    <${SpanBar} span=${span} duration=${duration} critical=${critical} />
  </div>`;
}

// The text a span is found by: name, service, attribute keys and values.
function haystack(span) {
  const parts = [span.name, span.service, span.statusMessage];
  for (const attrs of [span.attrs, span.resourceAttrs]) {
    for (const [k, v] of Object.entries(attrs)) parts.push(`${k}=${formatAttrValue(v)}`);
  }
  return parts.join('\n').toLowerCase();
}

function useSpanSearch(trace, text) {
  const texts = useMemo(() => new Map(), [trace]);
  return useMemo(() => {
    const needle = text.trim().toLowerCase();
    if (!needle) return [];
    return trace.spans.filter((s) => {
      if (!texts.has(s)) texts.set(s, haystack(s));
      return texts.get(s).includes(needle);
    });
  }, [trace, text]);
}

export function Waterfall({ trace, selectedId = '', onSelect }) {
  const [collapsed, setCollapsed] = useState(() => new Set());
  const [showCritical, setShowCritical] = useState(true);
  const [find, setFind] = useState('');
  const [matchAt, setMatchAt] = useState(0);
  const [scrollTo, setScrollTo] = useState(() => (selectedId && trace.byId.has(selectedId) ? trace.byId.get(selectedId).index : null));
  const critical = useMemo(() => criticalPath(trace), [trace]);
  const rows = useMemo(() => visibleSpans(trace.spans, collapsed), [trace, collapsed]);
  const rowIndex = useMemo(() => new Map(rows.map((s, i) => [s.spanId, i])), [rows]);
  const matches = useSpanSearch(trace, find);
  const matchIds = useMemo(() => new Set(matches.map((s) => s.spanId)), [matches]);
  const current = matches.length ? matches[Math.min(matchAt, matches.length - 1)] : null;
  const selected = selectedId ? trace.byId.get(selectedId) : null;

  const toggle = (id) => {
    const next = new Set(collapsed);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setCollapsed(next);
  };
  const collapseAll = () => setCollapsed(new Set(trace.spans.filter((s) => s.children.length).map((s) => s.spanId)));
  const expandAll = () => setCollapsed(new Set());
  // Show a span: open its collapsed ancestors, then scroll to it.
  const reveal = (span) => {
    const next = new Set(collapsed);
    for (let p = span.parent; p; p = p.parent) next.delete(p.spanId);
    if (next.size !== collapsed.size) setCollapsed(next);
    setScrollTo(span.index);
  };
  useEffect(() => {
    if (matches.length) reveal(matches[0]); // typing jumps to the first match
  }, [matches]);
  const step = (d) => {
    if (!matches.length) return;
    const i = (Math.min(matchAt, matches.length - 1) + d + matches.length) % matches.length;
    setMatchAt(i);
    reveal(matches[i]);
  };
  const onFind = (e) => {
    setFind(e.target.value);
    setMatchAt(0);
  };

  const scrollIndex = scrollTo !== null && trace.spans[scrollTo] ? rowIndex.get(trace.spans[scrollTo].spanId) ?? null : null;
  const height = Math.max(ROW_HEIGHT, Math.min(rows.length * ROW_HEIGHT + 2, MAX_LIST_HEIGHT));
  const renderRow = (i) => {
    const s = rows[i];
    return html`<${SpanRow} span=${s} duration=${trace.duration} collapsed=${collapsed.has(s.spanId)}
      critical=${showCritical ? critical.get(s.spanId) : null} selected=${s.spanId === selectedId}
      match=${matchIds.has(s.spanId)} current=${current === s} onToggle=${toggle}
      onSelect=${(id) => onSelect(id === selectedId ? '' : id)} />`;
  };

  return html`<div class="waterfall" data-testid="waterfall">
    <div class="toolbar wf-toolbar">
      <button type="button" class="btn" data-testid="collapse-all" onClick=${collapseAll}>Collapse all</button>
      <button type="button" class="btn" data-testid="expand-all" onClick=${expandAll}>Expand all</button>
      <label class="wf-check"><input type="checkbox" data-testid="critical-path-toggle" checked=${showCritical}
        onChange=${(e) => setShowCritical(e.target.checked)} /> Critical path</label>
      <span class="spacer"></span>
      <input class="wf-find" type="search" data-testid="span-find" placeholder="Find spans (name, service, attribute)"
        value=${find} onInput=${onFind} onKeyDown=${(e) => e.key === 'Enter' && step(e.shiftKey ? -1 : 1)} />
      ${find.trim() && html`<span class="muted" data-testid="span-find-count">${matches.length
        ? `${Math.min(matchAt, matches.length - 1) + 1} of ${matches.length}` : 'no match'}</span>
        <button type="button" class="btn" title="Previous match" onClick=${() => step(-1)}>‹</button>
        <button type="button" class="btn" title="Next match" onClick=${() => step(1)}>›</button>`}
    </div>
    <div class=${`wf-body${selected ? ' with-details' : ''}`}>
      <div class="wf-list">
        <div class="wf-header">
          <div class="wf-name-col">Service & operation</div>
          <${TimeRuler} duration=${trace.duration} />
        </div>
        <${VirtualList} count=${rows.length} rowHeight=${ROW_HEIGHT} height=${height} renderRow=${renderRow}
          scrollToIndex=${scrollIndex} testid="span-list" />
      </div>
      ${selected && html`<${SpanDetails} key=${selected.spanId} span=${selected} trace=${trace} onClose=${() => onSelect('')} />`}
    </div>
  </div>`;
}

// ---- the details of one span ----------------------------------------------------------------

function AttrTable({ attrs, testid }) {
  const keys = Object.keys(attrs).sort();
  if (!keys.length) return html`<p class="muted">none</p>`;
  return html`<table class="data attr-table" data-testid=${testid}>
    <tbody>${keys.map((k) => html`<tr><td class="attr-key mono">${k}</td><td class="mono attr-value">${formatAttrValue(attrs[k])}</td></tr>`)}</tbody>
  </table>`;
}

function ExceptionBox({ event, span }) {
  const a = event.attrs;
  return html`<div class="span-exception" data-testid="span-exception">
    <div><b>${a['exception.type'] || 'Exception'}</b>${a['exception.message'] ? `: ${a['exception.message']}` : ''}
      <span class="muted"> at +${formatNanos(event.time - span.start)}</span></div>
    ${a['exception.stacktrace'] && html`<pre class="span-stacktrace">${a['exception.stacktrace']}</pre>`}
  </div>`;
}

function EventList({ span }) {
  if (!span.events.length) return html`<p class="muted">none</p>`;
  return html`<ul class="span-events" data-testid="span-events">
    ${span.events.map((ev) => html`<li class=${ev.name === 'exception' ? 'is-exception' : ''}>
      <span class="mono muted">+${formatNanos(ev.time - span.start)}</span> <b>${ev.name}</b>
      ${Object.keys(ev.attrs).length > 0 && html`<${AttrTable} attrs=${ev.attrs} />`}
    </li>`)}
  </ul>`;
}

function LinkList({ span }) {
  if (!span.links.length) return html`<p class="muted">none</p>`;
  return html`<ul class="span-links" data-testid="span-links">
    ${span.links.map((l) => html`<li>
      <${Link} href=${`/ui/traces/${l.traceId}?span=${l.spanId}`} class="mono">${l.traceId}<//>
      <span class="muted mono"> span ${l.spanId}</span>
      ${Object.keys(l.attrs).length > 0 && html`<${AttrTable} attrs=${l.attrs} />`}
    </li>`)}
  </ul>`;
}

// PromQL label value in double quotes.
const promString = (s) => `"${String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

// The span-metrics queries for one service + operation, as Tempo's span metrics name them.
export function spanMetricsQueries(service, name) {
  const sel = `service=${promString(service)}, span_name=${promString(name)}`;
  return [
    ['Rate', `sum by (status_code) (rate(traces_spanmetrics_calls_total{${sel}}[5m]))`],
    ['Errors', `sum(rate(traces_spanmetrics_calls_total{${sel}, status_code="STATUS_CODE_ERROR"}[5m]))`],
    ['Duration p95', `histogram_quantile(0.95, sum by (le) (rate(traces_spanmetrics_latency_bucket{${sel}}[5m])))`],
  ];
}

// An explorer link showing the time around a moment (±margin ms).
export function explorerHref(path, query, atMs, marginMs) {
  const qs = new URLSearchParams({ query, from: String(Math.floor(atMs - marginMs)), to: String(Math.ceil(atMs + marginMs)) });
  return `${path}?${qs}`;
}

// Loki streams -> [{ts (BigInt ns), line, level, service}] oldest first.
export function streamsToLogLines(result) {
  // read as the logs explorer reads a line (its level from labels, metadata or text)
  return lokiStreamsToLines(result).reverse().map((e) => ({
    ts: BigInt(e.ts), line: e.line, level: e.level === 'unknown' ? '' : e.level, service: e.labels.service_name || '',
    spanId: e.metadata.span_id || '',
  }));
}

// A short list of log lines, each time shown as an offset from `zeroNs` (BigInt).
// state: useAsync's {data: lines, error} for the lines of a span or a trace.
// spans (optional, the trace's byId map) and onSelect: a line logged inside a span of the
// trace names that span, and a click on the name selects it in the waterfall.
export function LogPreview({ state, zeroNs, testid, spans = null, onSelect = null }) {
  if (state.error) return html`<div class="error-box">${state.error.message}</div>`;
  if (!state.data) return html`<p class="muted">Loading logs…</p>`;
  if (!state.data.length) return html`<p class="empty">No logs for this ${testid === 'span-logs' ? 'span' : 'trace'}.</p>`;
  return html`<ul class="log-preview" data-testid=${testid}>
    ${state.data.map((l) => html`<li class="mono">
      <span class="muted">${l.ts >= zeroNs ? '+' : '-'}${formatNanos(Math.abs(Number(l.ts - zeroNs)))}</span>
      ${l.level && html` <span class=${`log-level sev-${l.level}`}>${l.level.toUpperCase()}</span>`}
      ${l.service && html` <span class="muted">${l.service}</span>`}
      ${spans && spans.has(l.spanId) && html` <button type="button" class="link log-span" data-testid="log-span"
        title=${`span ${l.spanId}`} onClick=${() => onSelect && onSelect(l.spanId)}>${spans.get(l.spanId).name}</button>`}
      <span class="log-line">${l.line}</span>
    </li>`)}
  </ul>`;
}

// The log lines written inside one span: the span's trace and span ids are structured
// metadata of the lines its code logged, so a LogQL filter on both over the span's time
// (with a little margin for clock skew) finds exactly them.
function spanLogsQuery(span) {
  return `{service_name=~".+"} | trace_id="${span.traceId}" | span_id="${span.spanId}"`;
}

function useSpanLogs(span) {
  return useAsync((signal) => {
    const start = span.startNs - 1000000000n;
    const end = span.startNs + BigInt(span.duration) + 5000000000n;
    return api('/loki/api/v1/query_range', {
      params: { query: spanLogsQuery(span), start: String(start), end: String(end), limit: 100, direction: 'forward' },
      signal,
    }).then((r) => streamsToLogLines(r.data && r.data.result));
  }, [span]);
}

function SpanDetails({ span, trace, onClose }) {
  const logs = useSpanLogs(span);
  const startMs = nsToMs(span.startNs);
  const exceptions = span.events.filter((e) => e.name === 'exception');
  return html`<aside class="span-details panel" data-testid="span-details">
    <div class="panel-title">
      <span class="wf-service" style=${`color:${serviceColor(span.service)}`}>${span.service}</span>
      <span data-testid="span-details-name">${span.name}</span>
      <span class="spacer"></span>
      <button type="button" class="link" title="Close" onClick=${onClose}>✕</button>
    </div>
    ${span.status === 'error' && html`<div class="error-box" data-testid="span-status">Status error${span.statusMessage ? `: ${span.statusMessage}` : ''}</div>`}
    ${exceptions.map((ev) => html`<${ExceptionBox} event=${ev} span=${span} />`)}
    <table class="span-facts">
      <tr><th>Span ID</th><td class="mono">${span.spanId}</td></tr>
      <tr><th>Parent</th><td class="mono">${span.parentSpanId || 'none (root)'}${span.parentSpanId && !span.parent ? ' (not in this trace)' : ''}</td></tr>
      <tr><th>Kind</th><td>${span.kind}</td></tr>
      <tr><th>Start</th><td>${formatTime(startMs, { millis: true })} <span class="muted">(+${formatNanos(span.start)} into the trace)</span></td></tr>
      <tr><th>Duration</th><td>${formatNanos(span.duration)} <span class="muted">(${(pct(span.duration, trace.duration)).toFixed(1)}% of the trace)</span></td></tr>
      <tr><th>Status</th><td>${span.status}${span.statusMessage ? `: ${span.statusMessage}` : ''}</td></tr>
      ${span.scope && span.scope.name && html`<tr><th>Scope</th><td class="mono">${span.scope.name}${span.scope.version ? ` ${span.scope.version}` : ''}</td></tr>`}
    </table>
    <div class="span-actions">
      <b>Service metrics:</b>
      ${spanMetricsQueries(span.service, span.name).map(([label, q]) => html`<${Link} data-testid="span-metrics-link"
        href=${explorerHref('/ui/metrics', q, startMs, 30 * 60e3)}>${label}<//>`)}
      <${Link} data-testid="span-service-link" href=${`/ui/services/${encodeURIComponent(span.service)}`}>${span.service} service<//>
    </div>
    <h3>Attributes</h3>
    <${AttrTable} attrs=${span.attrs} testid="span-attributes" />
    <h3>Events</h3>
    <${EventList} span=${span} />
    <h3>Links</h3>
    <${LinkList} span=${span} />
    <h3>Logs for this span <${Link} class="small-link" data-testid="span-logs-link"
      href=${explorerHref('/ui/logs', spanLogsQuery(span), startMs, 60e3)}>open in Logs<//></h3>
    <${LogPreview} state=${logs} zeroNs=${span.startNs} testid="span-logs" />
    <details>
      <summary><h3 class="inline">Resource attributes</h3></summary>
      <${AttrTable} attrs=${span.resourceAttrs} testid="span-resource-attributes" />
    </details>
  </aside>`;
}
