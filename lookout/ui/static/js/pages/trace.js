// One trace: what it was (root service and operation, when, how long, how many spans and
// services, how many errors), its waterfall, and the logs its spans wrote. The selected span
// is in the URL (?span=<id>) so a link can point at it.
import { html, useEffect, useMemo, useState } from '../preact.js';
import { api } from '../lib/api.js';
import { useAsync } from '../lib/useasync.js';
import { Link, setQueryParams } from '../lib/router.js';
import { formatTime } from '../lib/time.js';
import { formatNanos, parseTrace, serviceColor } from '../lib/otlp.js';
import { LogPreview, Waterfall, explorerHref, streamsToLogLines } from '../components/waterfall.js';

const TRACE_LOG_LIMIT = 200;

function useTrace(traceId) {
  const [state, setState] = useState({ trace: null, error: null, notFound: false });
  useEffect(() => {
    const ctl = new AbortController();
    setState({ trace: null, error: null, notFound: false });
    api(`/api/traces/${encodeURIComponent(traceId)}`, { signal: ctl.signal })
      .then((data) => {
        const trace = parseTrace(data);
        setState(trace.spans.length ? { trace, error: null, notFound: false } : { trace: null, error: null, notFound: true });
      })
      .catch((e) => {
        if (e.name === 'AbortError') return;
        setState({ trace: null, error: e.message, notFound: e.status === 404 });
      });
    return () => ctl.abort();
  }, [traceId]);
  return state;
}

// The span a person thinks of as "the trace": the earliest span that has no parent at all
// (else the earliest orphan).
function rootSpan(trace) {
  return trace.roots.find((s) => !s.parentSpanId) || trace.roots[0];
}

function Summary({ trace }) {
  const root = rootSpan(trace);
  const startMs = Number(trace.startNs / 1000000n);
  return html`<div class="panel trace-summary" data-testid="trace-summary">
    <h1 class="trace-title">
      <span class="wf-service" style=${`color:${serviceColor(root.service)}`}>${root.service}</span>
      <span data-testid="trace-root-name">${root.name}</span>
    </h1>
    <div class="trace-facts">
      <span><label>Trace ID</label> <span class="mono" data-testid="trace-id">${trace.traceId}</span></span>
      <span><label>Start</label> ${formatTime(startMs, { millis: true })}</span>
      <span><label>Duration</label> <b data-testid="trace-duration">${formatNanos(trace.duration)}</b></span>
      <span><label>Spans</label> <b data-testid="trace-span-count">${trace.spans.length}</b></span>
      <span><label>Errors</label> <b data-testid="trace-error-count" class=${trace.errorCount ? 'error' : ''}>${trace.errorCount}</b></span>
      <span><label>Services</label> ${trace.services.map((s) => html`<span class="trace-service">
        <span class="svc-dot" style=${`background:${serviceColor(s.name)}`}></span>${s.name} <span class="muted">(${s.count})</span></span>`)}</span>
    </div>
  </div>`;
}

function TraceLogs({ trace, onSelect }) {
  const logs = useAsync((signal) => api(`/lookout/api/v1/traces/${encodeURIComponent(trace.traceId)}/logs`,
    { params: { limit: TRACE_LOG_LIMIT }, signal }).then((r) => streamsToLogLines(r.data && r.data.result)), [trace.traceId]);
  const startMs = Number(trace.startNs / 1000000n);
  const query = `{service_name=~".+"} | trace_id="${trace.traceId}"`;
  return html`<div class="panel trace-logs">
    <div class="panel-title">Logs for this trace
      ${logs.data && html`<span class="badge">${logs.data.length}${logs.data.length >= TRACE_LOG_LIMIT ? '+' : ''}</span>`}
      <${Link} class="small-link" data-testid="trace-logs-link"
        href=${explorerHref('/ui/logs', query, startMs + trace.duration / 2e6, 60e3 + trace.duration / 2e6)}>open in Logs<//>
    </div>
    <${LogPreview} state=${logs} zeroNs=${trace.startNs} testid="trace-logs" spans=${trace.byId} onSelect=${onSelect} />
  </div>`;
}

export function TracePage({ loc, params }) {
  const traceId = params.traceId || '';
  const { trace, error, notFound } = useTrace(traceId);
  const selected = loc.query.get('span') || '';
  const onSelect = useMemo(() => (id) => setQueryParams({ span: id }), []);

  let body;
  if (notFound) {
    body = html`<div class="error-box" data-testid="trace-not-found">Trace ${traceId} not found.</div>
      <p class="muted">It may be older than the retention, not flushed yet, or held by another tenant.</p>`;
  } else if (error) {
    body = html`<div class="error-box" data-testid="trace-error">${error}</div>`;
  } else if (!trace) {
    body = html`<p class="muted">Loading trace ${traceId}…</p>`;
  } else {
    body = html`<${Summary} trace=${trace} />
      <${Waterfall} trace=${trace} selectedId=${selected} onSelect=${onSelect} />
      <${TraceLogs} trace=${trace} onSelect=${onSelect} />`;
  }
  return html`<div class="page trace-page">
    <div class="toolbar"><${Link} href="/ui/traces">← Search traces<//></div>
    ${body}
  </div>`;
}
