// The logs explorer (Grafana's Explore for Loki): a LogQL editor with a label browser, the log
// volume over the range by level (drag on it to zoom), and the lines themselves; a metric query
// (rate(...), count_over_time(...)) draws a chart instead; "Live" tails the query over Loki's
// WebSocket. Query, time range, line limit and direction live in the URL.
import { html, useEffect, useRef, useState } from '../preact.js';
import { api, ApiError, getTenant } from '../lib/api.js';
import { setQueryParams } from '../lib/router.js';
import { autoStep, DEFAULT_FROM, DEFAULT_TO, msToNs, resolveRange } from '../lib/time.js';
import { logqlCompleter } from '../lib/completers.js';
import { QueryEditor } from '../components/queryeditor.js';
import { TimeRangePicker } from '../components/timerange.js';
import { TimeSeriesChart, promMatrixToSeries } from '../components/chart.js';
import { LogLines, lokiStreamsToLines, normalizeLevel } from '../components/loglines.js';

const LIMITS = [100, 500, 1000, 5000, 10000];
const DEFAULT_LIMIT = 1000;
const LIVE_BUFFER = 10000; // lines kept while tailing, newest first
const LEVEL_LABELS = ['detected_level', 'level', 'severity_text', 'severity'];

const isLogQuery = (q) => /^\s*\{/.test(q);
const plural = (n, what) => `${n.toLocaleString('en-US')} ${what}${n === 1 ? '' : 's'}`;

// ---- label browser --------------------------------------------------------------------------

const quote = (s) => JSON.stringify(s);
const escapeRegex = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// {name: Set(values)} -> {a="x", b=~"y|z"}
export function buildSelector(chosen) {
  const parts = Object.entries(chosen).filter(([, vals]) => vals.size).map(([name, vals]) => {
    const list = [...vals];
    return list.length === 1 ? `${name}=${quote(list[0])}` : `${name}=~${quote(list.map(escapeRegex).join('|'))}`;
  });
  return parts.length ? `{${parts.join(', ')}}` : '';
}

function LabelBrowser({ range, onRun }) {
  const [names, setNames] = useState(null);
  const [values, setValues] = useState({}); // name -> [values] once fetched
  const [open, setOpen] = useState(null); // the label whose values are shown
  const [chosen, setChosen] = useState({});
  const [error, setError] = useState(null);
  const params = range && { start: msToNs(range.start), end: msToNs(range.end) };

  useEffect(() => {
    api('/loki/api/v1/labels', { params }).then((r) => setNames(r.data || []), (e) => setError(e.message));
  }, []);

  const showValues = (name) => {
    setOpen(name);
    if (values[name]) return;
    api(`/loki/api/v1/label/${encodeURIComponent(name)}/values`, { params })
      .then((r) => setValues((v) => ({ ...v, [name]: r.data || [] })), (e) => setError(e.message));
  };
  const toggle = (name, value) => setChosen((c) => {
    const vals = new Set(c[name] || []);
    if (vals.has(value)) vals.delete(value); else vals.add(value);
    return { ...c, [name]: vals };
  });
  const selector = buildSelector(chosen);

  return html`<div class="panel label-browser" data-testid="label-browser">
    ${error && html`<div class="error-box">Cannot load labels: ${error}</div>`}
    <div class="label-browser-section">
      <span class="muted">1. Pick labels</span>
      ${names === null ? html`<span class="muted">loading…</span>` : names.length === 0
        ? html`<span class="muted">No labels in this time range.</span>`
        : names.map((n) => html`<button type="button" key=${n} data-testid="label-name"
            class=${`chip${open === n ? ' active' : ''}${chosen[n]?.size ? ' chosen' : ''}`} onClick=${() => showValues(n)}>${n}</button>`)}
    </div>
    ${open && html`<div class="label-browser-section">
      <span class="muted">2. Values of <b>${open}</b></span>
      ${!values[open] ? html`<span class="muted">loading…</span>` : values[open].map((v) => html`<button type="button" key=${v}
          data-testid="label-value" class=${`chip${chosen[open]?.has(v) ? ' chosen' : ''}`} onClick=${() => toggle(open, v)}>${v}</button>`)}
    </div>`}
    <div class="label-browser-section">
      <span class="muted">3. Selector</span>
      <code data-testid="label-selector">${selector || 'pick a value above'}</code>
      <button type="button" class="btn primary" disabled=${!selector} data-testid="label-browser-run"
        onClick=${() => onRun(selector)}>Show logs</button>
      <button type="button" class="btn" disabled=${!selector} onClick=${() => setChosen({})}>Clear</button>
    </div>
  </div>`;
}

// ---- log volume -----------------------------------------------------------------------------

// The bars take the severity colours of the lines (the .sev-* classes in lookout.css).
const LEVEL_COLORS = { fatal: '#a40e26', error: '#cf222e', warn: '#bf8700', info: '#0969da', debug: '#8250df',
  trace: '#6e7781', unknown: '#8c959f' };

// A Loki matrix of counts by whatever level label the lines carry -> one series per level.
function volumeSeries(result) {
  const byLevel = new Map();
  for (const s of result) {
    const raw = LEVEL_LABELS.map((k) => s.metric[k]).find((v) => v !== undefined);
    const level = normalizeLevel(raw);
    const points = byLevel.get(level) || new Map();
    for (const [t, v] of s.values) points.set(t, (points.get(t) || 0) + Number(v));
    byLevel.set(level, points);
  }
  return [...byLevel.entries()].sort().map(([level, points]) => ({
    name: level, labels: { level }, color: LEVEL_COLORS[level], points: [...points.entries()].sort((a, b) => a[0] - b[0]),
  }));
}

async function fetchVolume(query, range, signal) {
  const step = autoStep(range.start, range.end, 120);
  const q = `sum by (${LEVEL_LABELS.join(', ')}) (count_over_time(${query} [${step}s]))`;
  const r = await api('/loki/api/v1/query_range', {
    params: { query: q, start: msToNs(range.start), end: msToNs(range.end), step }, signal,
  });
  return volumeSeries(r.data.result || []);
}

function LogVolume({ volume, range, onZoom }) {
  if (!volume) return null;
  if (volume.error) return html`<div class="muted log-volume-note">Log volume unavailable: ${volume.error}</div>`;
  const totals = volume.series.map((s) => [s.name, s.points.reduce((a, p) => a + p[1], 0)]);
  return html`<div class="panel log-volume" data-testid="log-volume">
    <div class="panel-title">Log volume
      ${totals.map(([level, n]) => html`<span class=${`log-level sev-${level}`} key=${level}>${level} ${n.toLocaleString('en-US')}</span>`)}
      <span class="muted">drag to zoom</span>
    </div>
    <${TimeSeriesChart} series=${volume.series} start=${range.start} end=${range.end} height=${120}
      bars=${true} stacked=${true} unit="short" onZoom=${onZoom} />
  </div>`;
}

// ---- live tail ------------------------------------------------------------------------------

function tailUrl(query) {
  const url = new URL('/loki/api/v1/tail', window.location.href);
  url.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('query', query);
  url.searchParams.set('limit', '100');
  // Browsers cannot send headers on a WebSocket: Lookout reads the tenant from the query string.
  const tenant = getTenant();
  if (tenant) url.searchParams.set('X-Scope-OrgID', tenant);
  return url.toString();
}

function closeReason(ev, opened) {
  if (ev.code === 1008) return `the server refused the live tail: ${ev.reason || 'bad request'}`;
  if (!opened) return 'could not connect the live tail (is it a log query like {app="x"}? is Lookout reachable?)';
  return `the live tail connection was lost (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`;
}

// While `running`, the lines of `query` as they arrive (newest first, at most LIVE_BUFFER);
// while `paused`, new lines wait in a buffer and appear on resume.
function useLiveTail(query, running, paused, indexLabels) {
  const [lines, setLines] = useState([]);
  const [status, setStatus] = useState({ state: 'idle', error: null });
  const pending = useRef([]);
  const pausedRef = useRef(paused);
  const flush = () => {
    const fresh = pending.current;
    if (!fresh.length) return;
    pending.current = [];
    setLines((prev) => fresh.concat(prev).slice(0, LIVE_BUFFER));
  };
  useEffect(() => {
    pausedRef.current = paused;
    if (!paused) flush();
  }, [paused]);
  useEffect(() => {
    if (!running) return undefined;
    setLines([]);
    pending.current = [];
    setStatus({ state: 'connecting', error: null });
    let opened = false;
    let stopped = false;
    const ws = new WebSocket(tailUrl(query));
    ws.onopen = () => {
      opened = true;
      setStatus({ state: 'connected', error: null });
    };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      const fresh = lokiStreamsToLines(msg.streams, { indexLabels: indexLabels.current });
      pending.current = fresh.concat(pending.current).slice(0, LIVE_BUFFER);
      if (!pausedRef.current) flush();
    };
    ws.onclose = (ev) => {
      if (!stopped) setStatus({ state: 'closed', error: closeReason(ev, opened) });
    };
    return () => {
      stopped = true;
      ws.close();
      setStatus({ state: 'idle', error: null });
    };
  }, [running, query]);
  return { lines, status };
}

// ---- the query ------------------------------------------------------------------------------

async function indexLabelNames(range, signal) {
  try {
    const r = await api('/loki/api/v1/labels', { params: { start: msToNs(range.start), end: msToNs(range.end) }, signal });
    return new Set(r.data || []);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    return null; // lines still show, with all their labels together
  }
}

async function runQuery({ query, range, limit, direction }, signal) {
  const step = autoStep(range.start, range.end, 250);
  const [r, indexLabels] = await Promise.all([
    api('/loki/api/v1/query_range', {
      params: { query, start: msToNs(range.start), end: msToNs(range.end), limit, direction, step }, signal,
    }),
    indexLabelNames(range, signal),
  ]);
  const data = r.data;
  if (data.resultType !== 'streams') return { kind: 'metric', series: promMatrixToSeries(data.result), indexLabels };
  const lines = lokiStreamsToLines(data.result, { indexLabels });
  if (direction === 'forward') lines.reverse();
  return { kind: 'logs', lines, indexLabels };
}

function linesHeight() {
  return Math.max(360, window.innerHeight - 400);
}

function Results({ result, limit, range, live }) {
  if (live) {
    return html`<div class="panel">
      <div class="panel-title"><span data-testid="log-count">${plural(live.lines.length, 'line')}</span>
        <span class="muted">live, newest first${live.lines.length >= LIVE_BUFFER ? `, keeping the newest ${plural(LIVE_BUFFER, 'line')}` : ''}</span></div>
      ${live.lines.length ? html`<${LogLines} lines=${live.lines} height=${linesHeight()} />`
        : html`<div class="empty" data-testid="live-waiting">Waiting for new lines…</div>`}
    </div>`;
  }
  if (result.kind === 'metric') {
    return html`<div class="panel" data-testid="logs-metric">
      ${result.series.length ? html`<${TimeSeriesChart} series=${result.series} start=${range.start} end=${range.end} height=${320} />`
        : html`<div class="empty">No data</div>`}
    </div>`;
  }
  if (!result.lines.length) {
    return html`<div class="panel empty" data-testid="logs-empty">No logs match this query in the selected time range.</div>`;
  }
  const n = result.lines.length;
  return html`<div class="panel">
    <div class="panel-title"><span data-testid="log-count">${plural(n, 'line')}</span>
      ${n >= limit && html`<span class="muted">(the line limit: raise it or narrow the query to see more)</span>`}</div>
    <${LogLines} lines=${result.lines} height=${linesHeight()} />
  </div>`;
}

export function LogsPage({ loc }) {
  const q = loc.query;
  const query = q.get('query') || '';
  const from = q.get('from') || DEFAULT_FROM;
  const to = q.get('to') || DEFAULT_TO;
  const limit = Number(q.get('limit')) || DEFAULT_LIMIT;
  const direction = q.get('direction') === 'forward' ? 'forward' : 'backward';

  const [draft, setDraft] = useState(query);
  const [nonce, setNonce] = useState(0);
  const [state, setState] = useState({ loading: false, error: null, result: null, range: null });
  const [volume, setVolume] = useState(null);
  const [browser, setBrowser] = useState(!query);
  const [live, setLive] = useState(false);
  const [paused, setPaused] = useState(false);
  const indexLabels = useRef(null);
  const tail = useLiveTail(query, live, paused, indexLabels);

  let rangeError = null;
  let range = null;
  try { range = resolveRange(from, to); } catch (e) { rangeError = e.message; }

  useEffect(() => setDraft(query), [query]);
  useEffect(() => {
    if (!query.trim() || !range) return undefined;
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    setVolume(null);
    runQuery({ query, range, limit, direction }, ctl.signal).then((result) => {
      indexLabels.current = result.indexLabels;
      setState({ loading: false, error: null, result, range });
    }, (error) => {
      if (error.name !== 'AbortError') setState({ loading: false, error, result: null, range });
    });
    if (isLogQuery(query)) {
      fetchVolume(query, range, ctl.signal).then((series) => setVolume({ series }), (e) => {
        if (e.name !== 'AbortError') setVolume({ error: e.message });
      });
    }
    return () => ctl.abort();
  }, [query, from, to, limit, direction, nonce]);

  const run = (text = draft) => {
    setLive(false);
    setQueryParams({ query: text.trim() });
    setNonce((n) => n + 1);
  };
  const runSelector = (selector) => {
    setDraft(selector);
    run(selector);
  };
  const toggleLive = () => {
    if (!live) setQueryParams({ query: draft.trim() });
    setPaused(false);
    setLive(!live);
  };
  const zoom = (startMs, endMs) => setQueryParams({ from: String(Math.round(startMs)), to: String(Math.round(endMs)) },
    { replace: false });

  const queryError = state.error instanceof ApiError && state.error.status === 400 ? state.error : null;
  const otherError = state.error && !queryError ? state.error.message : rangeError;
  return html`<div class="page logs-page">
    <div class="toolbar logs-toolbar">
      <button type="button" class=${`btn${browser ? ' active' : ''}`} data-testid="label-browser-toggle"
        onClick=${() => setBrowser(!browser)}>Label browser</button>
      <${QueryEditor} value=${draft} onChange=${setDraft} onRun=${run} error=${queryError} language="logql"
        completer=${logqlCompleter} placeholder='{service_name="payments"} |= "error"   (Enter runs it)' />
      <button type="button" class="btn primary" data-testid="run-query" onClick=${() => run()}>Run</button>
      <button type="button" class=${`btn live-button${live ? ' on' : ''}`} data-testid="live" disabled=${!draft.trim()}
        onClick=${toggleLive}>${live ? '■ Stop' : '▶ Live'}</button>
      ${live && html`<button type="button" class="btn" data-testid="live-pause" onClick=${() => setPaused(!paused)}>${paused ? 'Resume' : 'Pause'}</button>`}
      <label>Limit <select data-testid="limit" value=${String(limit)}
        onChange=${(e) => setQueryParams({ limit: e.target.value === String(DEFAULT_LIMIT) ? '' : e.target.value })}>
        ${LIMITS.map((n) => html`<option value=${String(n)}>${n.toLocaleString('en-US')}</option>`)}
      </select></label>
      <select data-testid="direction" value=${direction} title="Order of the lines"
        onChange=${(e) => setQueryParams({ direction: e.target.value === 'forward' ? 'forward' : '' })}>
        <option value="backward">Newest first</option>
        <option value="forward">Oldest first</option>
      </select>
      <${TimeRangePicker} from=${from} to=${to} onChange=${(f, t) => setQueryParams({ from: f, to: t }, { replace: false })} />
    </div>
    ${browser && html`<${LabelBrowser} range=${range} onRun=${runSelector} />`}
    ${otherError && html`<div class="error-box" data-testid="logs-error">${otherError}</div>`}
    ${live && html`<div class=${`live-status ${tail.status.error ? 'error-box' : 'muted'}`} data-testid="live-status">
      ${tail.status.error || (paused ? 'Live tail paused: new lines wait until you resume.' : `Live tail ${tail.status.state}.`)}
    </div>`}
    ${!live && state.loading && html`<div class="muted" data-testid="logs-loading">Loading…</div>`}
    ${!live && state.result?.kind === 'logs' && html`<${LogVolume} volume=${volume} range=${state.range} onZoom=${zoom} />`}
    ${(live || (state.result && !state.error)) && html`<${Results} result=${state.result} limit=${limit} range=${state.range}
      live=${live ? tail : null} />`}
    ${!query && !live && html`<p class="empty">Write a LogQL query, e.g. <code>{service_name="payments"} |= "error"</code>,
      or pick labels in the label browser.</p>`}
  </div>`;
}
