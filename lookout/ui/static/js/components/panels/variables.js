// Resolving dashboard variables: the options of each variable (query variables ask the
// Prometheus or Loki label APIs, like Grafana's label_values()), and which values are
// selected (the URL's var-<name>=... first, then the dashboard's saved "current").
import { api } from '../../lib/api.js';
import { msToNs } from '../../lib/time.js';
import { ALL, interpolate } from './interpolate.js';

const LABEL_VALUES_RE = /^\s*label_values\s*\(\s*(?:(.+?)\s*,\s*)?([\w.]+)\s*\)\s*$/s;
const METRICS_RE = /^\s*metrics\s*\(\s*(.*?)\s*\)\s*$/s;
const QUERY_RESULT_RE = /^\s*query_result\s*\(\s*(.+)\s*\)\s*$/s;

const asString = (o) => (o !== null && typeof o === 'object' ? String(o.value ?? o.text ?? '') : String(o));

function listFromText(text) {
  return String(text || '').split(',').map((s) => s.trim()).filter(Boolean);
}

function timeParams(range) {
  return { start: Math.floor(range.start / 1000), end: Math.ceil(range.end / 1000) };
}

async function promOptions(query, range, tenant) {
  const time = timeParams(range);
  let m = LABEL_VALUES_RE.exec(query);
  if (m) {
    const params = { ...time, 'match[]': m[1] || undefined };
    return (await api(`/api/v1/label/${encodeURIComponent(m[2])}/values`, { params, tenant })).data || [];
  }
  m = METRICS_RE.exec(query);
  if (m) {
    const names = (await api('/api/v1/label/__name__/values', { params: time, tenant })).data || [];
    const re = m[1] ? new RegExp(m[1]) : null;
    return re ? names.filter((n) => re.test(n)) : names;
  }
  m = QUERY_RESULT_RE.exec(query);
  if (m) {
    const res = await api('/api/v1/query', { params: { query: m[1], time: time.end }, tenant });
    return (res.data?.result || []).map((r) => {
      const { __name__: name = '', ...labels } = r.metric || {};
      const body = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(', ');
      return `${name}{${body}} ${r.value ? r.value[1] : ''}`.trim();
    });
  }
  // A bare series selector: the names of the matching series.
  const res = await api('/api/v1/series', { params: { ...time, 'match[]': query }, tenant });
  return [...new Set((res.data || []).map((s) => s.__name__).filter(Boolean))];
}

async function lokiOptions(query, range, tenant) {
  const m = LABEL_VALUES_RE.exec(query);
  if (!m) throw new Error(`a LogQL variable query must be label_values(label) or label_values({selector}, label): ${query}`);
  const params = { start: msToNs(range.start), end: msToNs(range.end), query: m[1] || undefined };
  return (await api(`/loki/api/v1/label/${encodeURIComponent(m[2])}/values`, { params, tenant })).data || [];
}

// The option list of one variable definition (query text already interpolated).
export async function variableOptions(def, query, range, tenant) {
  switch (def.type) {
    case 'query': {
      if (!query.trim()) return [];
      const values = def.lang === 'logql' ? await lokiOptions(query, range, tenant) : await promOptions(query, range, tenant);
      return [...new Set(values.map(String))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    }
    case 'custom':
    case 'interval':
      return def.options && def.options.length ? def.options.map(asString) : listFromText(def.query);
    default:
      return [];
  }
}

function savedCurrent(def) {
  const c = def.current;
  if (c === undefined || c === null || c === '') return [];
  return (Array.isArray(c) ? c : [c]).map(asString);
}

// Which values are selected: urlValues (from var-<name>, may be empty) or the saved current,
// kept only when they are still options; otherwise All (when offered) or the first option.
export function chooseSelection(def, options, urlValues) {
  if (def.type === 'constant') return { values: [def.query ?? ''], isAll: false };
  const wanted = urlValues.length ? urlValues : savedCurrent(def);
  if (def.type === 'textbox') return { values: [wanted[0] ?? def.query ?? ''], isAll: false };
  if (wanted.includes(ALL) && def.includeAll) return { values: [], isAll: true };
  const valid = wanted.filter((v) => options.includes(v));
  if (valid.length) return { values: def.multi ? valid : valid.slice(0, 1), isAll: false };
  if (def.includeAll && (def.type === 'query' || wanted.length === 0)) return { values: [], isAll: true };
  return { values: options.length ? [options[0]] : [], isAll: false };
}

// Resolve every variable in order, so one variable's query may use the ones before it.
// cache: a Map reused between calls (same query + tenant -> no new request).
// Returns {variables: {name: resolved}, errors: {name: message}}.
export async function resolveVariables(defs, urlSelections, range, tenant, cache) {
  const variables = {};
  const errors = {};
  for (const def of defs || []) {
    if (!def || !def.name) continue;
    const query = def.type === 'query' ? interpolate(def.query || '', variables) : '';
    const key = JSON.stringify([tenant, def.type, def.lang, query, def.options, def.type === 'query' ? '' : def.query]);
    let options = [];
    try {
      if (!cache.has(key)) cache.set(key, variableOptions(def, query, range, tenant));
      options = await cache.get(key);
    } catch (e) {
      cache.delete(key);
      errors[def.name] = e.message;
    }
    const sel = chooseSelection(def, options, urlSelections[def.name] || []);
    variables[def.name] = {
      name: def.name, label: def.label || def.name, type: def.type, multi: !!def.multi,
      includeAll: !!def.includeAll, options, ...sel,
    };
  }
  return { variables, errors };
}
