// The metrics explorer: one PromQL query over a time range, as a graph (range query) or a
// table (instant query at the end of the range), like Prometheus' console and Grafana's
// Explore. Everything that defines the view (query, from/to, tab, step, exemplars) lives in
// the URL, so a link reopens it; dragging across the graph zooms to an absolute range.
import { html, useEffect, useMemo, useState } from '../preact.js';
import { api } from '../lib/api.js';
import { setQueryParams } from '../lib/router.js';
import { DEFAULT_FROM, DEFAULT_TO, autoStep, parseDuration, resolveRange } from '../lib/time.js';
import { promqlCompleter } from '../lib/completers.js';
import { QueryEditor } from '../components/queryeditor.js';
import { TimeRangePicker } from '../components/timerange.js';
import { TimeSeriesChart, promMatrixToSeries } from '../components/chart.js';
import { ResultTable } from '../components/resulttable.js';

const TABS = [['graph', 'Graph'], ['table', 'Table']];

// "30", "30s", "1m" -> seconds; null for empty or unreadable.
function stepSeconds(text) {
  const s = String(text || '').trim();
  if (!s) return null;
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const ms = parseDuration(s);
  return ms ? ms / 1000 : null;
}

function readView(query) {
  return {
    query: query.get('query') || '',
    from: query.get('from') || DEFAULT_FROM,
    to: query.get('to') || DEFAULT_TO,
    tab: query.get('tab') === 'table' ? 'table' : 'graph',
    step: query.get('step') || '',
    exemplars: query.get('exemplars') === '1',
  };
}

// Prometheus' exemplar answer -> the chart's [{t, value, traceId, labels}].
function flattenExemplars(data) {
  const out = [];
  for (const group of data || []) {
    for (const e of group.exemplars || []) {
      const traceId = e.labels.trace_id || e.labels.traceID || e.labels.traceId;
      if (traceId) out.push({ t: Number(e.timestamp), value: Number(e.value), traceId, labels: group.seriesLabels });
    }
  }
  return out;
}

// Runs the view's query whenever it (or `runs`, bumped by the Run button) changes.
function useQueryResult(view, runs) {
  const [state, setState] = useState({ loading: false, error: null, data: null, exemplars: [], range: null });
  useEffect(() => {
    if (!view.query.trim()) {
      setState({ loading: false, error: null, data: null, exemplars: [], range: null });
      return undefined;
    }
    let range;
    try {
      range = resolveRange(view.from, view.to);
    } catch (e) {
      setState({ loading: false, error: { message: e.message, kind: 'range' }, data: null, exemplars: [], range: null });
      return undefined;
    }
    const ctl = new AbortController();
    const signal = ctl.signal;
    const start = range.start / 1000;
    const end = range.end / 1000;
    const step = stepSeconds(view.step) || autoStep(range.start, range.end);
    // a reload keeps its result on screen; another tab's result (a range matrix in the table,
    // an instant vector in the graph) is not shown while this tab's query runs
    setState((s) => (s.tab === view.tab ? { ...s, loading: true } : { ...s, loading: true, data: null, tab: view.tab }));
    const main = view.tab === 'table'
      ? api('/api/v1/query', { params: { query: view.query, time: end }, signal })
      : api('/api/v1/query_range', { params: { query: view.query, start, end, step }, signal });
    const ex = view.exemplars && view.tab === 'graph'
      ? api('/api/v1/query_exemplars', { params: { query: view.query, start, end }, signal }).then((r) => flattenExemplars(r.data)).catch(() => [])
      : Promise.resolve([]);
    Promise.all([main, ex]).then(([r, exemplars]) => {
      setState({ loading: false, error: null, data: r.data, exemplars, range: { ...range, step }, tab: view.tab });
    }).catch((e) => {
      if (e.name === 'AbortError') return;
      setState({ loading: false, error: e, data: null, exemplars: [], range: null });
    });
    return () => ctl.abort();
  }, [view.query, view.from, view.to, view.tab, view.step, view.exemplars, runs]);
  return state;
}

const isQueryError = (e) => e && e.status >= 400 && e.status < 500;

export function MetricsPage({ loc }) {
  const view = readView(loc.query);
  const [draft, setDraft] = useState(view.query);
  const [runs, setRuns] = useState(0);
  const [browsing, setBrowsing] = useState(false);
  useEffect(() => setDraft(view.query), [view.query]); // back/forward reopen the query

  const result = useQueryResult(view, runs);
  const run = (text = draft) => {
    if (text === view.query) setRuns((n) => n + 1);
    else setQueryParams({ query: text }, { replace: false });
  };
  const insertMetric = (name) => {
    setDraft(draft.trim() ? draft + name : name);
    setBrowsing(false);
  };
  const editorError = isQueryError(result.error) && draft === view.query ? result.error : null;

  return html`<div class="page metrics-page">
    <div class="toolbar">
      <h1>Metrics</h1>
      <span class="spacer"></span>
      <button type="button" class=${`btn${browsing ? ' active' : ''}`} data-testid="metrics-browser-button"
        onClick=${() => setBrowsing(!browsing)}>Metrics browser</button>
      <${TimeRangePicker} from=${view.from} to=${view.to}
        onChange=${(from, to) => setQueryParams({ from, to }, { replace: false })} />
      <button type="button" class="btn primary" data-testid="run-query" onClick=${() => run()}>Run query</button>
    </div>
    <div class="panel metrics-query">
      <${QueryEditor} value=${draft} onChange=${setDraft} onRun=${run} error=${editorError} language="promql"
        completer=${promqlCompleter} placeholder="PromQL, e.g. sum by (status) (rate(shop_orders_total[5m])) — Enter runs, Ctrl+Space suggests" />
      <${QueryOptions} view=${view} />
    </div>
    ${browsing && html`<${MetricsBrowser} onPick=${insertMetric} />`}
    <div class="panel metrics-result">
      <div class="tabs">
        ${TABS.map(([key, label]) => html`<button type="button" class=${view.tab === key ? 'active' : ''} data-testid=${`tab-${key}`}
          onClick=${() => setQueryParams({ tab: key })}>${label}</button>`)}
        ${result.loading && html`<span class="muted metrics-loading">Loading…</span>`}
      </div>
      <${ResultView} view=${view} result=${result} />
    </div>
  </div>`;
}

// Step (resolution) and the exemplars switch, both kept in the URL.
function QueryOptions({ view }) {
  const [step, setStep] = useState(view.step);
  useEffect(() => setStep(view.step), [view.step]);
  let auto = '';
  try {
    const r = resolveRange(view.from, view.to);
    auto = `${autoStep(r.start, r.end)}s`;
  } catch { /* the result panel says what is wrong with the range */ }
  const bad = step.trim() && !stepSeconds(step);
  const commit = () => !bad && setQueryParams({ step: step.trim() });
  return html`<div class="metrics-options">
    <label>Step <input class=${`metrics-step${bad ? ' invalid' : ''}`} data-testid="step" size="8" value=${step}
      placeholder=${`auto (${auto})`} title="Resolution of the graph: seconds or a duration like 1m; empty = automatic"
      onInput=${(e) => setStep(e.target.value)} onBlur=${commit}
      onKeyDown=${(e) => e.key === 'Enter' && commit()} /></label>
    <label class="metrics-exemplars"><input type="checkbox" data-testid="exemplars-toggle" checked=${view.exemplars}
      onChange=${(e) => setQueryParams({ exemplars: e.target.checked ? '1' : null })} /> Exemplars</label>
  </div>`;
}

function ResultView({ view, result }) {
  const { error, data } = result;
  if (!view.query.trim()) return html`<p class="empty">Enter a PromQL query above and press Enter.</p>`;
  if (error && !isQueryError(error)) return html`<div class="error-box" data-testid="result-error">${error.message}</div>`;
  if (error) return html`<p class="empty">The query did not run: see the error under it.</p>`;
  if (!data) return html`<p class="empty">Loading…</p>`;
  const empty = Array.isArray(data.result) ? data.result.length === 0 : !data.result;
  if (empty) return html`<p class="empty" data-testid="no-data">No data</p>`;
  if (view.tab === 'table') return html`<${ResultTable} data=${data} />`;
  return html`<${Graph} data=${data} range=${result.range} exemplars=${view.exemplars ? result.exemplars : null} />`;
}

function Graph({ data, range, exemplars }) {
  const series = useMemo(() => (data.resultType === 'matrix' ? promMatrixToSeries(data.result) : []), [data]);
  if (data.resultType !== 'matrix') {
    return html`<p class="empty">A ${data.resultType} cannot be graphed: see the Table tab.</p>`;
  }
  const zoom = (startMs, endMs) => setQueryParams({ from: String(startMs), to: String(endMs) }, { replace: false });
  return html`<div>
    <${TimeSeriesChart} series=${series} start=${range.start} end=${range.end} height=${320} onZoom=${zoom} exemplars=${exemplars} />
    ${exemplars && html`<div class="muted metrics-note" data-testid="exemplar-count">${exemplars.length
      ? `${exemplars.length} exemplars: click a ◆ to open its trace` : 'No exemplars in this range'}</div>`}
    <div class="muted metrics-note">Step ${range.step}s · drag across the graph to zoom</div>
  </div>`;
}

// Metric names with their type and help from /api/v1/metadata; a click puts one in the query.
function MetricsBrowser({ onPick }) {
  const [state, setState] = useState({ metrics: null, error: null });
  const [filter, setFilter] = useState('');
  useEffect(() => {
    Promise.all([api('/api/v1/label/__name__/values'), api('/api/v1/metadata').catch(() => ({ data: {} }))])
      .then(([names, meta]) => setState({
        metrics: (names.data || []).map((name) => {
          const m = (meta.data[name] || meta.data[name.replace(/_(bucket|sum|count|total)$/, '')] || [])[0] || {};
          return { name, type: m.type || '', help: m.help || '' };
        }),
        error: null,
      }))
      .catch((e) => setState({ metrics: null, error: e.message }));
  }, []);
  if (state.error) return html`<div class="error-box">${state.error}</div>`;
  if (!state.metrics) return html`<div class="panel muted">Loading metric names…</div>`;
  const f = filter.toLowerCase();
  const shown = state.metrics.filter((m) => m.name.toLowerCase().includes(f));
  return html`<div class="panel metrics-browser" data-testid="metrics-browser">
    <input placeholder="Filter metrics" value=${filter} onInput=${(e) => setFilter(e.target.value)} autofocus />
    <div class="metrics-browser-list">
      ${shown.map((m) => html`<button type="button" class="metrics-browser-item" key=${m.name} data-testid="metric-name" onClick=${() => onPick(m.name)}>
        <span class="mono">${m.name}</span> ${m.type && html`<span class="badge">${m.type}</span>`} <span class="muted">${m.help}</span>
      </button>`)}
      ${!shown.length && html`<p class="empty">No metric matches.</p>`}
    </div>
  </div>`;
}
