// One service at a glance (/ui/services/<name>): its RED charts from span metrics (request
// rate by operation, error rate, latency percentiles), its operations, who calls it and what
// it calls (from the service graph), and its recent and failing traces, with links to its
// logs, traces and metrics in the explorers — the page an alert about a service leads to.
import { html } from '../preact.js';
import { api } from '../lib/api.js';
import { useAsync } from '../lib/useasync.js';
import { Link, setQueryParams } from '../lib/router.js';
import { autoStep, DEFAULT_FROM, DEFAULT_TO, resolveRange } from '../lib/time.js';
import {
  CALLS_TOTAL, ENTRY_KINDS, ERROR_STATUS, LATENCY_BUCKET, formatLatency, formatPercent, formatRate,
  loadServiceGraph, selector, windowIncrease, windowRate,
} from '../lib/servicegraph.js';
import { TimeSeriesChart, promMatrixToSeries } from '../components/chart.js';
import { TimeRangePicker } from '../components/timerange.js';
import { TraceList } from '../components/tracelist.js';

const TRACE_LIMIT = 20;
const KIND_NAMES = {
  SPAN_KIND_SERVER: 'server', SPAN_KIND_CLIENT: 'client', SPAN_KIND_CONSUMER: 'consumer',
  SPAN_KIND_PRODUCER: 'producer', SPAN_KIND_INTERNAL: 'internal', SPAN_KIND_UNSPECIFIED: 'unspecified',
};

// Runs fn(signal) whenever deps change: {loading, data, error}.
const instant = (query, time, signal) => api('/api/v1/query', { params: { query, time }, signal })
  .then((r) => r.data.result);

const value = (sample) => {
  const v = parseFloat(sample.value[1]);
  return Number.isFinite(v) ? v : null;
};

// The queries of the RED charts over [start, end] at `step` seconds.
export function redQueries(service, step) {
  const w = Math.max(4 * step, 60);
  const calls = selector(CALLS_TOTAL, { service }, ENTRY_KINDS);
  const errors = selector(CALLS_TOTAL, { service }, `${ENTRY_KINDS},${ERROR_STATUS}`);
  const buckets = selector(LATENCY_BUCKET, { service }, ENTRY_KINDS);
  const rate = (s) => windowRate(s, `${w}s`, w);
  return {
    requests: `sum by (span_name) (${rate(calls)})`,
    errors: `(sum(${rate(errors)}) or vector(0)) / sum(${rate(calls)})`,
    latency: [0.5, 0.95, 0.99].map((q) => [`p${Math.round(q * 100)}`,
      `histogram_quantile(${q}, sum by (le) (${rate(buckets)}))`]),
  };
}

// The instant queries of the operations table and the headline numbers over the range.
export function operationQueries(service, range) {
  const by = 'span_name, span_kind';
  return {
    calls: `sum by (${by}) (${windowIncrease(selector(CALLS_TOTAL, { service }), range)})`,
    errors: `sum by (${by}) (${windowIncrease(selector(CALLS_TOTAL, { service }, ERROR_STATUS), range)})`,
    p95: `histogram_quantile(0.95, sum by (${by}, le) (${windowIncrease(selector(LATENCY_BUCKET, { service }), range)}))`,
    entryP95: `histogram_quantile(0.95, sum by (le) (${windowIncrease(selector(LATENCY_BUCKET, { service }, ENTRY_KINDS), range)}))`,
  };
}

async function loadOperations(service, start, end, signal) {
  const seconds = Math.max(1, Math.round((end - start) / 1000));
  const q = operationQueries(service, `${seconds}s`);
  const [calls, errors, p95, entryP95] = await Promise.all(
    [q.calls, q.errors, q.p95, q.entryP95].map((x) => instant(x, end / 1000, signal)));
  const key = (m) => `${m.span_name}\u0000${m.span_kind}`;
  const failed = new Map(errors.map((s) => [key(s.metric), value(s) || 0]));
  const p95s = new Map(p95.map((s) => [key(s.metric), value(s)]));
  const ops = calls.filter((s) => value(s) > 0).map((s) => {
    const requests = value(s);
    const err = Math.min(requests, failed.get(key(s.metric)) || 0);
    return {
      name: s.metric.span_name, kind: s.metric.span_kind, requests, errors: err, rate: requests / seconds,
      errorRate: err / requests, p95: p95s.get(key(s.metric)) ?? null,
    };
  }).sort((a, b) => b.requests - a.requests || a.name.localeCompare(b.name));
  const entry = ops.filter((o) => o.kind === 'SPAN_KIND_SERVER' || o.kind === 'SPAN_KIND_CONSUMER');
  const total = entry.reduce((a, o) => a + o.requests, 0);
  const totalErrors = entry.reduce((a, o) => a + o.errors, 0);
  return {
    ops,
    summary: { rate: total / seconds, errorRate: total ? totalErrors / total : 0, p95: entryP95.length ? value(entryP95[0]) : null },
  };
}

async function loadRed(service, start, end, signal) {
  const step = autoStep(start, end, 200);
  const q = redQueries(service, step);
  const range = (query) => api('/api/v1/query_range', {
    params: { query, start: start / 1000, end: end / 1000, step }, signal,
  }).then((r) => r.data.result);
  const [requests, errors, ...latency] = await Promise.all([q.requests, q.errors, ...q.latency.map(([, x]) => x)].map(range));
  return {
    requests: promMatrixToSeries(requests, '{{span_name}}'),
    errors: promMatrixToSeries(errors, 'error rate'),
    latency: latency.flatMap((res, i) => promMatrixToSeries(res, q.latency[i][0])),
  };
}

export function traceqlFor(service, errorsOnly = false) {
  return `{ resource.service.name = ${JSON.stringify(service)}${errorsOnly ? ' && status = error' : ''} }`;
}

function searchTraces(q, start, end, signal) {
  return api('/api/search', {
    params: { q, start: Math.floor(start / 1000), end: Math.ceil(end / 1000), limit: TRACE_LIMIT }, signal,
  }).then((r) => r.traces || []);
}

function Panel({ title, state, children, testid, extra }) {
  return html`<div class="panel" data-testid=${testid}>
    <div class="panel-title">${title}${extra}</div>
    ${state.error ? html`<div class="error-box">${state.error.message}</div>`
      : !state.data ? html`<p class="empty">Loading…</p>` : children(state.data)}
  </div>`;
}

function Charts({ state, start, end, onZoom }) {
  const chart = (title, key, unit, testid) => html`<${Panel} title=${title} state=${state} testid=${testid}>
    ${(d) => (d[key].length && d[key].some((s) => s.points.some(([, v]) => v !== null))
      ? html`<${TimeSeriesChart} series=${d[key]} start=${start} end=${end} height=${220} unit=${unit} onZoom=${onZoom} />`
      : html`<p class="empty">No data</p>`)}
  <//>`;
  return html`<div class="service-charts">
    ${chart('Requests by operation', 'requests', 'reqps', 'chart-requests')}
    ${chart('Error rate', 'errors', 'percentunit', 'chart-errors')}
    ${chart('Latency', 'latency', 's', 'chart-latency')}
  </div>`;
}

function Stat({ label, value: v, error, testid }) {
  return html`<div class="service-stat" data-testid=${testid}><div class=${`value${error ? ' error' : ''}`}>${v}</div>
    <div class="label">${label}</div></div>`;
}

function OperationsTable({ ops, service, from, to }) {
  if (!ops.length) return html`<p class="empty">No span metrics for ${service} in this time range.</p>`;
  const opLink = (name) => `/ui/traces?${new URLSearchParams({
    mode: 'traceql', q: `{ resource.service.name = ${JSON.stringify(service)} && name = ${JSON.stringify(name)} }`, from, to })}`;
  return html`<table class="data" data-testid="operations">
    <thead><tr><th>Operation</th><th>Kind</th><th class="num">Requests</th><th class="num">Rate</th>
      <th class="num">Error rate</th><th class="num">p95</th></tr></thead>
    <tbody>${ops.map((o) => html`<tr key=${o.name + o.kind} data-testid="operation-row" data-operation=${o.name}>
      <td><${Link} href=${opLink(o.name)}>${o.name}<//></td>
      <td class="muted">${KIND_NAMES[o.kind] || o.kind}</td>
      <td class="num">${Math.round(o.requests)}</td><td class="num">${formatRate(o.rate)}</td>
      <td class=${`num${o.errors ? ' error' : ''}`}>${formatPercent(o.errorRate)}</td>
      <td class="num">${formatLatency(o.p95)}</td></tr>`)}</tbody>
  </table>`;
}

function PeersTable({ edges, side, from, to, testid }) {
  if (!edges.length) return html`<p class="empty">${side === 'client' ? 'No callers seen in the service graph.' : 'No calls to other services seen in the service graph.'}</p>`;
  const peer = (e) => e[side];
  return html`<table class="data" data-testid=${testid}>
    <thead><tr><th>Service</th><th class="num">Rate</th><th class="num">Error rate</th><th class="num">p95</th></tr></thead>
    <tbody>${edges.map((e) => html`<tr key=${e.id} data-testid="peer-row" data-service=${peer(e)}>
      <td>${e.connectionType === 'virtual_node' && peer(e) === 'user' ? html`<span class="muted">${peer(e)} (clients)</span>`
        : html`<${Link} href=${`/ui/services/${encodeURIComponent(peer(e))}?${new URLSearchParams({ from, to })}`}>${peer(e)}<//>`}
        ${e.connectionType && e.connectionType !== 'virtual_node' ? html` <span class="muted">${e.connectionType}</span>` : ''}</td>
      <td class="num">${formatRate(e.rate)}</td>
      <td class=${`num${e.failed ? ' error' : ''}`}>${formatPercent(e.errorRate)}</td>
      <td class="num">${formatLatency(e.p95)}</td></tr>`)}</tbody>
  </table>`;
}

function TracesPanel({ title, state, testid, errorIds, empty }) {
  return html`<${Panel} title=${title} state=${state} testid=${testid}
      extra=${state.data ? html`<span class="muted">${state.data.length}${state.data.length === TRACE_LIMIT ? '+' : ''}</span>` : ''}>
    ${(traces) => (traces.length ? html`<${TraceList} traces=${traces} errors=${errorIds} />` : html`<p class="empty">${empty}</p>`)}
  <//>`;
}

export function ServicePage({ loc, params }) {
  const service = params.service;
  const from = loc.query.get('from') || DEFAULT_FROM;
  const to = loc.query.get('to') || DEFAULT_TO;
  let range;
  let rangeError = null;
  try {
    range = resolveRange(from, to);
  } catch (e) {
    rangeError = e;
    range = resolveRange(DEFAULT_FROM, DEFAULT_TO);
  }
  const { start, end } = range;
  const deps = [service, from, to];
  const red = useAsync((signal) => loadRed(service, start, end, signal), deps);
  const ops = useAsync((signal) => loadOperations(service, start, end, signal), deps);
  const graph = useAsync((signal) => loadServiceGraph(from, to, signal), deps);
  const recent = useAsync((signal) => searchTraces(traceqlFor(service), start, end, signal), deps);
  const failing = useAsync((signal) => searchTraces(traceqlFor(service, true), start, end, signal), deps);
  const errorIds = new Set((failing.data || []).map((t) => t.traceID));
  const onZoom = (s, e) => setQueryParams({ from: String(Math.round(s)), to: String(Math.round(e)) }, { replace: false });
  const qs = (o) => new URLSearchParams({ ...o, from, to }).toString();
  const links = [
    ['Logs', `/ui/logs?${qs({ query: `{service_name=${JSON.stringify(service)}}` })}`],
    ['Traces', `/ui/traces?${qs({ mode: 'traceql', q: traceqlFor(service) })}`],
    ['Metrics', `/ui/metrics?${qs({ query: `sum by (span_name) (rate(${selector(CALLS_TOTAL, { service }, ENTRY_KINDS)}[5m]))` })}`],
  ];
  const summary = ops.data && ops.data.summary;
  const edges = graph.data ? graph.data.edges : [];
  return html`<div class="page service-page">
    <div class="toolbar">
      <h1 data-testid="service-name">${service}</h1>
      <${Link} href=${`/ui/services?${new URLSearchParams({ from, to })}`} class="muted">← Service map<//>
      <span class="spacer"></span>
      <div class="service-links">${links.map(([label, href]) => html`<${Link} class="btn" href=${href}
        data-testid=${`link-${label.toLowerCase()}`}>${label}<//>`)}</div>
      <${TimeRangePicker} from=${from} to=${to} onChange=${(f, t) => setQueryParams({ from: f, to: t }, { replace: false })} />
    </div>
    ${rangeError && html`<div class="error-box">${rangeError.message}</div>`}
    ${summary && html`<div class="service-stats">
      <${Stat} label="requests (server spans)" value=${formatRate(summary.rate)} testid="stat-rate" />
      <${Stat} label="error rate" value=${formatPercent(summary.errorRate)} error=${summary.errorRate > 0} testid="stat-errors" />
      <${Stat} label="p95 latency" value=${formatLatency(summary.p95) || '–'} testid="stat-p95" />
    </div>`}
    <${Charts} state=${red} start=${start} end=${end} onZoom=${onZoom} />
    <div class="service-grid">
      <${Panel} title="Operations" state=${ops} testid="operations-panel">
        ${(d) => html`<${OperationsTable} ops=${d.ops} service=${service} from=${from} to=${to} />`}<//>
      <div>
        <${Panel} title="Called by" state=${graph} testid="upstream">
          ${() => html`<${PeersTable} edges=${edges.filter((e) => e.server === service)} side="client" from=${from} to=${to}
            testid="upstream-table" />`}<//>
        <${Panel} title="Calls" state=${graph} testid="downstream">
          ${() => html`<${PeersTable} edges=${edges.filter((e) => e.client === service)} side="server" from=${from} to=${to}
            testid="downstream-table" />`}<//>
      </div>
    </div>
    <${TracesPanel} title="Recent error traces" state=${failing} testid="error-traces" errorIds=${errorIds}
      empty="No error traces in this time range." />
    <${TracesPanel} title="Recent traces" state=${recent} testid="recent-traces" errorIds=${errorIds}
      empty="No traces in this time range." />
  </div>`;
}
