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

// Grafana's variable regex: "/pattern/flags", or a bare pattern that must match the whole value.
export function toRegex(text) {
  const m = /^\/(.*)\/([dgimsuy]*)$/s.exec(text);
  return m ? new RegExp(m[1], m[2]) : new RegExp(`^${text}$`);
}

// Filter and extract options as Grafana does: values the regex does not match are dropped; a
// named group "value" (or "text") is the option, else the first capture group, else the value;
// with the g flag every match's first group is an option of its own.
export function applyRegex(values, regexText) {
  if (!regexText) return values;
  const re = toRegex(regexText);
  const out = [];
  for (const value of values) {
    const matches = [];
    if (re.global) {
      re.lastIndex = 0;
      for (let m = re.exec(value); m; m = re.exec(value)) {
        matches.push(m);
        if (m[0] === '') re.lastIndex++;
      }
    } else {
      const m = re.exec(value);
      if (m) matches.push(m);
    }
    if (!matches.length) continue;
    const named = matches.find((m) => m.groups && (m.groups.value !== undefined || m.groups.text !== undefined));
    const grouped = matches.filter((m) => m.length > 1);
    if (named) out.push(named.groups.value ?? named.groups.text);
    else if (grouped.length > 1) out.push(...grouped.map((m) => m[1]));
    else out.push(grouped.length ? grouped[0][1] : value);
  }
  return [...new Set(out.filter((v) => v !== undefined))];
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
// cache: a Map reused between calls (same query + tenant -> no new request; a query variable
// with refresh "time" asks again when the time range is another one).
// Returns {variables: {name: resolved}, errors: {name: message}}.
export async function resolveVariables(defs, urlSelections, range, tenant, cache) {
  const variables = {};
  const errors = {};
  for (const def of defs || []) {
    if (!def || !def.name) continue;
    const query = def.type === 'query' ? interpolate(def.query || '', variables) : '';
    const byTime = def.type === 'query' && def.refresh === 'time';
    const key = JSON.stringify([tenant, def.type, def.lang, query, def.options, def.type === 'query' ? '' : def.query,
      byTime]);
    const at = byTime ? `${range.start}-${range.end}` : '';
    let options = [];
    try {
      if (cache.get(key)?.at !== at) cache.set(key, { at, options: variableOptions(def, query, range, tenant) });
      options = await cache.get(key).options;
    } catch (e) {
      cache.delete(key);
      errors[def.name] = e.message;
    }
    if (def.type === 'query' && def.regex && !errors[def.name]) {
      try {
        options = applyRegex(options, def.regex).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
      } catch (e) {
        errors[def.name] = `regex ${def.regex}: ${e.message}`;
        options = [];
      }
    }
    const sel = chooseSelection(def, options, urlSelections[def.name] || []);
    variables[def.name] = {
      name: def.name, label: def.label || def.name, type: def.type, multi: !!def.multi,
      includeAll: !!def.includeAll, options, ...sel,
    };
  }
  return { variables, errors };
}
