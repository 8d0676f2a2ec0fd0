// Finding traces, as in Grafana's Tempo explorer: a "Search" form (service, operation, status,
// trace duration, attribute tags) that writes the TraceQL for you and shows it, so people
// learn the language, and a "TraceQL" tab to write it directly. Both run /api/search over the
// picked time range and list the traces found. Everything that defines the view (tab, form,
// query, range) lives in the URL.
import { html, useEffect, useState } from '../preact.js';
import { api } from '../lib/api.js';
import { navigate, setQueryParams } from '../lib/router.js';
import { DEFAULT_FROM, DEFAULT_TO, resolveRange } from '../lib/time.js';
import { QueryEditor, QueryError } from '../components/queryeditor.js';
import { TimeRangePicker } from '../components/timerange.js';
import { TraceList } from '../components/tracelist.js';
import { traceqlCompleter } from '../lib/completers.js';

const FORM_KEYS = ['service', 'span', 'status', 'minDuration', 'maxDuration', 'tags'];
const LIMITS = ['20', '50', '100', '500'];
const TRACEQL_DURATION = /^\d+(\.\d+)?(ns|us|µs|ms|s|m|h)$/;

const quote = (s) => `"${String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

// `http.route=/checkout region="eu west"` -> [[key, value], ...]; throws on a part without "=".
export function parseLogfmt(text) {
  const out = [];
  const re = /\s*([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)\s*/y;
  let rest = text.trim();
  while (rest) {
    re.lastIndex = 0;
    const m = re.exec(rest);
    if (!m) throw new Error(`tags: expected key=value, got "${rest.split(/\s+/)[0]}"`);
    const v = m[2].startsWith('"') ? m[2].slice(1, -1).replace(/\\(.)/g, '$1') : m[2];
    out.push([m[1], v]);
    rest = rest.slice(m[0].length);
  }
  return out;
}

// A tag key as a TraceQL attribute: scoped names stay, others become unscoped (".key").
const attrRef = (key) => (/^(span|resource|event|link)\./.test(key) || key.startsWith('.') ? key : `.${key}`);
// Numbers and booleans are typed in TraceQL; anything else is a string.
const literal = (v) => (/^-?\d+(\.\d+)?$/.test(v) || v === 'true' || v === 'false' ? v : quote(v));

// The search form's fields -> the TraceQL it stands for; throws an Error naming a bad field.
export function buildTraceQL(form) {
  const conds = [];
  if (form.service) conds.push(`resource.service.name = ${quote(form.service)}`);
  if (form.span) conds.push(`name = ${quote(form.span)}`);
  if (form.status === 'error') conds.push('status = error');
  if (form.status === 'ok') conds.push('status != error');
  for (const [field, op] of [['minDuration', '>='], ['maxDuration', '<=']]) {
    const d = (form[field] || '').trim();
    if (!d) continue;
    if (!TRACEQL_DURATION.test(d)) throw new Error(`${field === 'minDuration' ? 'min' : 'max'} duration "${d}": expected a duration like 100ms, 1.5s or 2m`);
    conds.push(`traceDuration ${op} ${d}`);
  }
  for (const [k, v] of parseLogfmt(form.tags || '')) conds.push(`${attrRef(k)} = ${literal(v)}`);
  return conds.length ? `{ ${conds.join(' && ')} }` : '{}';
}

const formFromQuery = (query) => Object.fromEntries(FORM_KEYS.map((k) => [k, query.get(k) || '']));

// The committed search form's query ('' while a field is invalid: the form shows why).
function searchQuery(query) {
  try {
    return buildTraceQL(formFromQuery(query));
  } catch {
    return '';
  }
}

function useTagValues(tag, q) {
  const [values, setValues] = useState([]);
  useEffect(() => {
    const ctl = new AbortController();
    api(`/api/v2/search/tag/${tag}/values`, { params: { q }, signal: ctl.signal })
      .then((r) => setValues((r.tagValues || []).map((v) => (typeof v === 'object' ? v.value : v)).sort()))
      .catch(() => setValues([])); // the form still works: the select just offers fewer names
    return () => ctl.abort();
  }, [tag, q]);
  return values;
}

function Select({ label, value, options, onChange, testid, any = 'any' }) {
  const opts = value && !options.includes(value) ? [value, ...options] : options;
  return html`<label class="ts-field">${label}
    <select data-testid=${testid} value=${value} onChange=${(e) => onChange(e.target.value)}>
      <option value="">${any}</option>
      ${opts.map((o) => html`<option value=${o}>${o}</option>`)}
    </select></label>`;
}

function SearchForm({ query, onRun }) {
  const [form, setForm] = useState(() => formFromQuery(query));
  let built = '{}';
  let buildError = null;
  try {
    built = buildTraceQL(form); // shown while typing: the form teaches the query it stands for
  } catch (e) {
    buildError = e.message;
  }
  const services = useTagValues('resource.service.name', '');
  const names = useTagValues('name', form.service ? `{ resource.service.name = ${quote(form.service)} }` : '');
  const set = (k, v, commit) => {
    const next = { ...form, [k]: v };
    if (k === 'service') next.span = '';
    setForm(next);
    if (commit) setQueryParams(next);
  };
  const submit = (e) => {
    e.preventDefault();
    setQueryParams(form);
    onRun();
  };
  const text = (k, placeholder, size) => html`<input data-testid=${`search-${k}`} value=${form[k]} size=${size}
    placeholder=${placeholder} onInput=${(e) => set(k, e.target.value, false)} />`;
  return html`<form class="panel trace-search" onSubmit=${submit} data-testid="trace-search-form">
    <div class="ts-row">
      <${Select} label="Service" testid="search-service" value=${form.service} options=${services} onChange=${(v) => set('service', v, true)} />
      <${Select} label="Span name" testid="search-span" value=${form.span} options=${names} onChange=${(v) => set('span', v, true)} />
      <${Select} label="Status" testid="search-status" value=${form.status} options=${['error', 'ok']} onChange=${(v) => set('status', v, true)} />
      <label class="ts-field">Min trace duration ${text('minDuration', 'e.g. 100ms', 8)}</label>
      <label class="ts-field">Max trace duration ${text('maxDuration', 'e.g. 5s', 8)}</label>
      <label class="ts-field ts-tags">Tags ${text('tags', 'http.route=/checkout db.system=postgresql', 30)}</label>
      <button class="btn primary" type="submit" data-testid="search-run">Search</button>
    </div>
    <div class="ts-built">
      <span class="muted">TraceQL:</span> <code data-testid="built-traceql">${built}</code>
      <button type="button" class="link" data-testid="edit-in-traceql"
        onClick=${() => setQueryParams({ mode: 'traceql', q: built }, { replace: false })}>Edit in TraceQL</button>
    </div>
    ${buildError && html`<div class="error-box">${buildError}</div>`}
  </form>`;
}

function TraceQLForm({ query, error, q, onRun }) {
  const [text, setText] = useState(query.get('q') || '');
  const run = (t) => {
    setQueryParams({ q: t.trim() });
    onRun();
  };
  return html`<div class="panel trace-traceql">
    <div class="toolbar">
      <${QueryEditor} value=${text} onChange=${setText} onRun=${run} language="traceql" completer=${traceqlCompleter}
        error=${error && q === text.trim() ? error : null} placeholder='{ resource.service.name = "checkout" && status = error }' />
      <button type="button" class="btn primary" data-testid="traceql-run" onClick=${() => run(text)}>Run query</button>
    </div>
    ${error && q !== text.trim() && html`<${QueryError} error=${error} query=${q} />`}
  </div>`;
}

function GoToTrace() {
  const [id, setId] = useState('');
  const go = (e) => {
    e.preventDefault();
    const t = id.trim();
    if (t) navigate(`/ui/traces/${encodeURIComponent(t)}`);
  };
  return html`<form class="goto-trace" onSubmit=${go}>
    <input data-testid="goto-trace-id" placeholder="Go to trace id" size="34" value=${id} onInput=${(e) => setId(e.target.value)} />
    <button class="btn" type="submit">Open</button>
  </form>`;
}

// Runs the search; `errors` are the found traces that hold a span with status error (asked
// with the same query && { status = error }: the newest `limit` of those cover every error
// trace among the newest `limit` found).
function useSearch(q, from, to, limit, run) {
  const [state, setState] = useState({ traces: null, errors: new Set(), error: null, loading: false });
  useEffect(() => {
    if (!q) {
      setState({ traces: null, errors: new Set(), error: null, loading: false });
      return undefined;
    }
    const ctl = new AbortController();
    let range;
    try {
      range = resolveRange(from, to);
    } catch (e) {
      setState({ traces: null, errors: new Set(), error: e, loading: false });
      return undefined;
    }
    const params = { start: Math.floor(range.start / 1000), end: Math.ceil(range.end / 1000), limit };
    setState((s) => ({ ...s, loading: true }));
    const search = (query) => api('/api/search', { params: { ...params, q: query }, signal: ctl.signal });
    search(q).then(async (r) => {
      const traces = r.traces || [];
      let errors = new Set();
      if (traces.length) {
        try {
          const er = await search(`(${q}) && { status = error }`);
          errors = new Set((er.traces || []).map((t) => t.traceID));
        } catch (e) {
          if (e.name === 'AbortError') throw e; // a query that cannot be combined: rows stay unmarked
        }
      }
      setState({ traces, errors, error: null, loading: false });
    }).catch((e) => e.name !== 'AbortError' && setState({ traces: null, errors: new Set(), error: e, loading: false }));
    return () => ctl.abort();
  }, [q, from, to, limit, run]);
  return state;
}

export function TracesPage({ loc }) {
  const query = loc.query;
  const mode = query.get('mode') === 'traceql' ? 'traceql' : 'search';
  const from = query.get('from') || DEFAULT_FROM;
  const to = query.get('to') || DEFAULT_TO;
  const limit = LIMITS.includes(query.get('limit')) ? query.get('limit') : LIMITS[0];
  const q = mode === 'search' ? searchQuery(query) : (query.get('q') || '').trim();
  const [runs, setRuns] = useState(0); // "Search" / Enter runs again even when nothing changed
  const rerun = () => setRuns((n) => n + 1);
  const { traces, errors, error, loading } = useSearch(q, from, to, limit, runs);
  const tab = (m, label) => html`<button type="button" class=${mode === m ? 'active' : ''} data-testid=${`tab-${m}`}
    onClick=${() => setQueryParams({ mode: m }, { replace: false })}>${label}</button>`;

  return html`<div class="page traces-page">
    <div class="toolbar">
      <h1 class="inline">Traces</h1>
      <span class="spacer"></span>
      <${GoToTrace} />
      <label class="ts-field-inline">Limit <select data-testid="search-limit" value=${limit}
        onChange=${(e) => setQueryParams({ limit: e.target.value })}>${LIMITS.map((l) => html`<option value=${l}>${l}</option>`)}</select></label>
      <${TimeRangePicker} from=${from} to=${to} onChange=${(f, t) => setQueryParams({ from: f, to: t }, { replace: false })} />
    </div>
    <div class="tabs">${tab('search', 'Search')}${tab('traceql', 'TraceQL')}</div>
    ${mode === 'search'
      ? html`<${SearchForm} key="search" query=${query} onRun=${rerun} />`
      : html`<${TraceQLForm} key="traceql" query=${query} error=${error} q=${q} onRun=${rerun} />`}
    ${mode === 'search' && error && html`<${QueryError} error=${error} query=${q} />`}
    ${!error && loading && html`<p class="muted">Searching…</p>`}
    ${!error && traces && html`<div class="trace-results" data-testid="trace-results">
      <div class="muted">${traces.length} trace${traces.length === 1 ? '' : 's'}${traces.length >= Number(limit) ? ` (the newest ${limit}; raise the limit for more)` : ''}</div>
      <${TraceList} traces=${traces} errors=${errors} />
    </div>`}
    ${mode === 'traceql' && !q && html`<p class="empty">Write a TraceQL query, e.g. <code>{ status = error }</code>, and press Enter.</p>`}
  </div>`;
}
