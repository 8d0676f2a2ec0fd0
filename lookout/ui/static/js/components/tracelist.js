// The list of traces a search found (Tempo's /api/search `traces`): which service and
// operation each started with, when, how long it took (a bar against the slowest one in the
// list, so outliers stand out) and how many spans matched. Each row opens the trace.
//
// Props: traces (Tempo search response `traces`), errors (optional Set of trace ids known to
// hold an error span: those rows are marked).
import { html } from '../preact.js';
import { Link, navigate } from '../lib/router.js';
import { formatTime } from '../lib/time.js';
import { serviceColor } from '../lib/otlp.js';

function durationLabel(ms) {
  if (ms < 1) return '<1ms';
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60e3) return `${+(ms / 1000).toFixed(2)}s`;
  return `${Math.floor(ms / 60e3)}m${Math.round((ms % 60e3) / 1000)}s`;
}

function matchedCount(trace) {
  const sets = trace.spanSets || (trace.spanSet ? [trace.spanSet] : []);
  if (!sets.length) return null;
  return sets.reduce((n, s) => n + (s.matched ?? (s.spans || []).length), 0);
}

function TraceRow({ trace, slowest, error }) {
  const href = `/ui/traces/${trace.traceID}`;
  const ms = Number(trace.durationMs || 0);
  const startMs = Number(BigInt(trace.startTimeUnixNano || '0') / 1000000n);
  const matched = matchedCount(trace);
  const service = trace.rootServiceName || '';
  const open = (e) => {
    if (e.target.closest('a')) return; // the link handles itself (and ctrl+click)
    navigate(href);
  };
  return html`<tr class=${`trace-row${error ? ' is-error' : ''}`} data-testid="trace-row" data-trace-id=${trace.traceID} onClick=${open}>
    <td>
      <span class="svc-dot" style=${`background:${serviceColor(service)}`}></span>
      <${Link} href=${href} class="trace-link"><b>${service}</b>: ${trace.rootTraceName || html`<span class="muted">(no root span)</span>`}<//>
      ${error && html` <span class="badge error" title="this trace holds a span with status error">error</span>`}
      <div class="muted mono trace-id">${trace.traceID}</div>
    </td>
    <td class="nowrap">${startMs ? formatTime(startMs, { millis: true }) : ''}</td>
    <td class="trace-duration">
      <div class="duration-bar"><span style=${`width:${slowest ? Math.max(1, (ms / slowest) * 100) : 0}%`}></span></div>
      <span class="duration-label">${durationLabel(ms)}</span>
    </td>
    <td class="num">${matched ?? ''}</td>
  </tr>`;
}

export function TraceList({ traces, errors }) {
  if (!traces || !traces.length) return html`<p class="empty" data-testid="no-traces">No traces match.</p>`;
  const slowest = Math.max(...traces.map((t) => Number(t.durationMs || 0)));
  return html`<table class="data trace-list" data-testid="trace-list">
    <thead><tr><th>Trace</th><th>Start time</th><th>Duration</th><th class="num">Matched spans</th></tr></thead>
    <tbody>${traces.map((t) => html`<${TraceRow} key=${t.traceID} trace=${t} slowest=${slowest}
      error=${errors ? errors.has(t.traceID) : false} />`)}</tbody>
  </table>`;
}
