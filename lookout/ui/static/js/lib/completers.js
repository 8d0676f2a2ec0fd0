// Autocomplete for the three query languages, for QueryEditor's `completer` prop:
// async (text, cursor) => ({from, to, items: [{label, detail?, insert?}]}). Each one reads
// where the cursor is (inside a selector's braces, a quoted value, a range, a pipeline...) and
// offers what fits there, from the server's label/tag APIs (cached per tenant for a minute)
// or the language's own words.
import { api, getTenant } from './api.js';

const CACHE_MS = 60_000;
const cache = new Map();

// GET through a one-minute cache keyed by tenant + URL, so typing does not flood the server.
function cached(path, params = {}) {
  const key = `${getTenant()}|${path}|${JSON.stringify(params)}`;
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.promise;
  const promise = api(path, { params });
  cache.set(key, { at: Date.now(), promise });
  promise.catch(() => cache.delete(key));
  return promise;
}

// ---- reading the text before the cursor ---------------------------------------------------

// Open brackets (innermost last) and the open string, if any, of the text before the cursor.
function scan(before) {
  const stack = [];
  let str = null;
  for (let i = 0; i < before.length; i++) {
    const c = before[i];
    if (str) {
      if (c === '\\' && str.quote !== '`') i++;
      else if (c === str.quote) str = null;
    } else if (c === '"' || c === "'" || c === '`') str = { quote: c, at: i };
    else if (c === '{' || c === '(' || c === '[') stack.push({ ch: c, at: i });
    else if ((c === '}' || c === ')' || c === ']') && stack.length) stack.pop();
  }
  return { open: stack[stack.length - 1] || null, str };
}

const wordAfter = (text, cursor, re = /^[\w:.]*/) => re.exec(text.slice(cursor))[0].length;

// Items starting with the prefix first, then those containing it; case-insensitive.
function rank(items, prefix) {
  if (!prefix) return items;
  const p = prefix.toLowerCase();
  const starts = [];
  const contains = [];
  for (const it of items) {
    const l = it.label.toLowerCase();
    if (l.startsWith(p)) starts.push(it);
    else if (l.includes(p)) contains.push(it);
  }
  return [...starts, ...contains];
}

function answer(text, cursor, prefix, items, wordRe) {
  const from = cursor - prefix.length;
  return { from, to: cursor + wordAfter(text, cursor, wordRe), items: rank(items, prefix) };
}

// Values inside quotes: replace what is typed so far, and close the quote if it is not.
function quotedValues(text, cursor, strAt, values, detail) {
  const closed = text[cursor + wordAfter(text, cursor, /^[^"]*/)] === '"';
  const items = values.map((v) => ({ label: v, detail, insert: closed ? v : `${v}"` }));
  const prefix = text.slice(strAt + 1, cursor);
  return { from: strAt + 1, to: cursor + wordAfter(text, cursor, /^[^"]*/), items: rank(items, prefix) };
}

const MATCHER_BEFORE = /([a-zA-Z_][\w.]*)\s*(=~|!~|!=|=)\s*$/;
const COMPLETE_MATCHER = /([a-zA-Z_][\w.]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|`[^`]*`)/g;

// The finished matchers typed before the one being completed, as a selector ('' when none):
// label values are then those of the streams they select, as Grafana's Loki editor offers them.
function selectorBefore(matchersText, except) {
  const out = [];
  for (const m of matchersText.matchAll(COMPLETE_MATCHER)) if (m[1] !== except) out.push(`${m[1]}${m[2]}${m[3]}`);
  return out.length ? `{${out.join(', ')}}` : '';
}
const DURATIONS = ['1m', '5m', '10m', '15m', '30m', '1h', '6h', '12h', '1d'].map((d) => ({ label: d, detail: 'range' }));

// ---- PromQL --------------------------------------------------------------------------------

const fn = (label, detail, insert = `${label}($0)`) => ({ label, detail, insert });
const PROMQL_FUNCTIONS = [
  fn('rate', 'per-second rate of a counter over a range'), fn('irate', 'rate from the last two samples'),
  fn('increase', 'increase of a counter over a range'), fn('delta', 'change of a gauge over a range'),
  fn('idelta', 'change between the last two samples'), fn('deriv', 'per-second derivative of a gauge'),
  fn('predict_linear', 'value predicted t seconds ahead'), fn('histogram_quantile', 'φ-quantile from histogram buckets'),
  fn('histogram_fraction', 'fraction of observations between two bounds'),
  fn('avg_over_time', 'average over a range'), fn('min_over_time', 'minimum over a range'),
  fn('max_over_time', 'maximum over a range'), fn('sum_over_time', 'sum over a range'),
  fn('count_over_time', 'number of samples in a range'), fn('last_over_time', 'last sample in a range'),
  fn('quantile_over_time', 'φ-quantile over a range'), fn('stddev_over_time', 'standard deviation over a range'),
  fn('present_over_time', '1 for series with samples in the range'), fn('changes', 'times the value changed'),
  fn('resets', 'counter resets in a range'), fn('absent', '1 when the vector is empty'),
  fn('absent_over_time', '1 when the range has no samples'), fn('abs', 'absolute value'), fn('ceil', 'round up'),
  fn('floor', 'round down'), fn('round', 'round to the nearest'), fn('sqrt', 'square root'), fn('exp', 'exponential'),
  fn('ln', 'natural logarithm'), fn('log2', 'binary logarithm'), fn('log10', 'decimal logarithm'),
  fn('clamp', 'limit to [min, max]'), fn('clamp_min', 'limit below'), fn('clamp_max', 'limit above'),
  fn('label_replace', 'set a label from a regex of another'), fn('label_join', 'join labels into one'),
  fn('sort', 'ascending by value'), fn('sort_desc', 'descending by value'), fn('timestamp', 'timestamp of each sample'),
  fn('time', 'evaluation time (seconds)', 'time()'), fn('vector', 'scalar as a vector'), fn('scalar', 'one-element vector as a scalar'),
  fn('hour', 'hour of the day (UTC)'), fn('day_of_week', 'day of the week (UTC)'), fn('minute', 'minute of the hour (UTC)'),
];
const PROMQL_AGGREGATIONS = [
  fn('sum', 'sum over dimensions'), fn('avg', 'average over dimensions'), fn('min', 'minimum over dimensions'),
  fn('max', 'maximum over dimensions'), fn('count', 'number of series'), fn('group', '1 per group'),
  fn('stddev', 'standard deviation'), fn('stdvar', 'standard variance'), fn('topk', 'largest k by value'),
  fn('bottomk', 'smallest k by value'), fn('quantile', 'φ-quantile over dimensions'), fn('count_values', 'count series per value'),
].map((it) => ({ ...it, detail: `aggregation: ${it.detail}` }));
const PROMQL_KEYWORDS = ['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless']
  .map((k) => ({ label: k, detail: 'keyword' }));

async function promMetricItems() {
  const [names, meta] = await Promise.all([
    cached('/api/v1/label/__name__/values').then((r) => r.data || []),
    cached('/api/v1/metadata').then((r) => r.data || {}).catch(() => ({})),
  ]);
  return names.map((name) => {
    const base = name.replace(/_(bucket|sum|count|total)$/, '');
    const m = (meta[name] || meta[base] || [])[0];
    return { label: name, detail: m ? m.type : 'metric' };
  });
}

async function promLabelNames(metrics) {
  const r = await cached('/api/v1/labels', metrics && metrics.length ? { 'match[]': metrics } : {});
  return (r.data || []).filter((n) => n !== '__name__').map((n) => ({ label: n, detail: 'label' }));
}

async function promLabelValues(label, metric) {
  const r = await cached(`/api/v1/label/${encodeURIComponent(label)}/values`, metric ? { 'match[]': metric } : {});
  return r.data || [];
}

// The metric names a query mentions, so `by (` offers the labels those metrics have.
async function metricsIn(text) {
  const known = new Set((await cached('/api/v1/label/__name__/values')).data || []);
  return [...new Set(text.match(/[a-zA-Z_:][\w:]*/g) || [])].filter((w) => known.has(w));
}

const metricBefore = (text) => (/([a-zA-Z_:][\w:]*)\s*$/.exec(text) || [])[1] || '';
const GROUPING_BEFORE = /\b(by|without|on|ignoring|group_left|group_right)\s*$/;

export async function promqlCompleter(text, cursor) {
  const before = text.slice(0, cursor);
  const { open, str } = scan(before);
  if (open && open.ch === '{') {
    const metric = metricBefore(before.slice(0, open.at));
    const m = MATCHER_BEFORE.exec(before.slice(0, str ? str.at : cursor));
    if (str && m) return quotedValues(text, cursor, str.at, await promLabelValues(m[1], metric), m[1]);
    if (str) return null;
    if (m) {
      const values = await promLabelValues(m[1], metric);
      return answer(text, cursor, '', values.map((v) => ({ label: v, detail: m[1], insert: JSON.stringify(v) })));
    }
    const prefix = /[a-zA-Z_]\w*$/.exec(before)?.[0] || '';
    return answer(text, cursor, prefix, await promLabelNames(metric ? [metric] : []), /^\w*/);
  }
  if (str) return null;
  if (open && open.ch === '[') return answer(text, cursor, /\w*$/.exec(before)[0], DURATIONS, /^\w*/);
  if (open && open.ch === '(' && GROUPING_BEFORE.test(before.slice(0, open.at))) {
    const prefix = /\w*$/.exec(before)[0];
    return answer(text, cursor, prefix, await promLabelNames(await metricsIn(text)), /^\w*/);
  }
  const prefix = /[a-zA-Z_:][\w:]*$/.exec(before)?.[0] || '';
  const metrics = await promMetricItems();
  return answer(text, cursor, prefix, [...metrics, ...PROMQL_AGGREGATIONS, ...PROMQL_FUNCTIONS, ...PROMQL_KEYWORDS], /^[\w:]*/);
}

// ---- LogQL ---------------------------------------------------------------------------------

const stage = (label, detail, insert) => ({ label, detail, insert });
const LOGQL_STAGES = [
  stage('json', 'parser: extract JSON fields as labels'), stage('logfmt', 'parser: extract key=value pairs'),
  stage('regexp', 'parser: named groups of a regex', 'regexp "$0"'), stage('pattern', 'parser: <name> placeholders', 'pattern "$0"'),
  stage('unpack', 'parser: unpack packed labels'), stage('line_format', 'rewrite the line from a template', 'line_format "$0"'),
  stage('label_format', 'rename or template labels', 'label_format $0'), stage('unwrap', 'use a label as the sample value', 'unwrap $0'),
  stage('drop', 'drop labels', 'drop $0'), stage('keep', 'keep only these labels', 'keep $0'),
  stage('decolorize', 'strip ANSI colours'),
];
const LOGQL_FUNCTIONS = [
  fn('rate', 'log lines per second'), fn('count_over_time', 'log lines in a range'),
  fn('bytes_rate', 'bytes per second'), fn('bytes_over_time', 'bytes in a range'),
  fn('sum_over_time', 'sum of unwrapped values'), fn('avg_over_time', 'average of unwrapped values'),
  fn('max_over_time', 'maximum of unwrapped values'), fn('min_over_time', 'minimum of unwrapped values'),
  fn('quantile_over_time', 'φ-quantile of unwrapped values'), fn('first_over_time', 'first unwrapped value'),
  fn('last_over_time', 'last unwrapped value'), fn('absent_over_time', '1 when the range has no lines'),
  ...PROMQL_AGGREGATIONS.filter((a) => ['sum', 'avg', 'min', 'max', 'count', 'topk', 'bottomk', 'stddev', 'stdvar'].includes(a.label)),
  { label: 'by', detail: 'keyword' }, { label: 'without', detail: 'keyword' },
];

async function lokiLabelNames() {
  const r = await cached('/loki/api/v1/labels');
  return (r.data || []).map((n) => ({ label: n, detail: 'label' }));
}

async function lokiLabelValues(label, query = '') {
  const r = await cached(`/loki/api/v1/label/${encodeURIComponent(label)}/values`, query ? { query } : {});
  return r.data || [];
}

export async function logqlCompleter(text, cursor) {
  const before = text.slice(0, cursor);
  const { open, str } = scan(before);
  if (open && open.ch === '{') {
    const upto = before.slice(0, str ? str.at : cursor);
    const m = MATCHER_BEFORE.exec(upto);
    const narrow = m ? selectorBefore(upto.slice(open.at + 1, m.index), m[1]) : '';
    if (str && m) return quotedValues(text, cursor, str.at, await lokiLabelValues(m[1], narrow), m[1]);
    if (str) return null;
    if (m) {
      const values = await lokiLabelValues(m[1], narrow);
      return answer(text, cursor, '', values.map((v) => ({ label: v, detail: m[1], insert: JSON.stringify(v) })));
    }
    return answer(text, cursor, /\w*$/.exec(before)[0], await lokiLabelNames(), /^\w*/);
  }
  if (str) return null;
  if (open && open.ch === '[') return answer(text, cursor, /\w*$/.exec(before)[0], DURATIONS, /^\w*/);
  const pipe = /\|\s*(\w*)$/.exec(before);
  if (pipe) return answer(text, cursor, pipe[1], LOGQL_STAGES, /^\w*/);
  if (open && open.ch === '(' && GROUPING_BEFORE.test(before.slice(0, open.at))) {
    return answer(text, cursor, /\w*$/.exec(before)[0], await lokiLabelNames(), /^\w*/);
  }
  const prefix = /\w*$/.exec(before)[0];
  if (!prefix && before.trim() === '') return { from: cursor, to: cursor, items: [{ label: '{', detail: 'stream selector', insert: '{$0}' }] };
  return answer(text, cursor, prefix, LOGQL_FUNCTIONS, /^\w*/);
}

// ---- TraceQL -------------------------------------------------------------------------------

const INTRINSICS = [
  ['name', 'span name'], ['status', 'ok | error | unset'], ['statusMessage', 'span status message'],
  ['duration', 'span duration, e.g. > 100ms'], ['kind', 'server | client | producer | consumer | internal'],
  ['rootName', 'name of the root span'], ['rootServiceName', 'service of the root span'],
  ['traceDuration', 'whole trace duration'], ['span:name', 'span name'], ['span:status', 'span status'],
  ['span:duration', 'span duration'], ['span:kind', 'span kind'], ['span:id', 'span id'],
  ['trace:rootName', 'root span name'], ['trace:rootService', 'root service'], ['trace:duration', 'trace duration'],
  ['trace:id', 'trace id'], ['event:name', 'span event name'],
].map(([label, detail]) => ({ label, detail: `intrinsic: ${detail}` }));
const TRACEQL_OUTSIDE = [
  { label: '{ }', detail: 'span set', insert: '{ $0 }' }, fn('count', 'spans per span set', 'count() > $0'),
  fn('avg', 'average of an attribute'), fn('max', 'maximum of an attribute'), fn('min', 'minimum of an attribute'),
  fn('sum', 'sum of an attribute'), fn('select', 'also return these attributes'), fn('by', 'group span sets'),
  fn('rate', 'spans per second (metrics)', 'rate()'), fn('count_over_time', 'spans per interval (metrics)', 'count_over_time()'),
  fn('quantile_over_time', 'φ-quantile per interval (metrics)'),
];
// The API names a few intrinsics differently from the query language.
const TAG_FOR_API = { 'span:name': 'name', 'span:status': 'status', 'span:kind': 'kind', 'trace:rootName': 'rootName',
  'trace:rootService': 'rootServiceName', 'span:statusMessage': 'statusMessage' };

async function tempoAttributeItems() {
  const r = await cached('/api/v2/search/tags');
  const items = [];
  for (const scope of r.scopes || []) {
    if (scope.name === 'intrinsic') continue;
    for (const tag of scope.tags || []) items.push({ label: `${scope.name}.${tag}`, detail: `${scope.name} attribute` });
  }
  return items;
}

async function tempoValues(tag, q = '') {
  const r = await cached(`/api/v2/search/tag/${encodeURIComponent(TAG_FOR_API[tag] || tag)}/values`, q ? { q } : {});
  return r.tagValues || [];
}

// Tempo's q for the values of the condition being typed: the conditions before it in the same
// span set when they are all joined by && (with || the other branch may match other spans).
function spansetBefore(conditionsText) {
  const head = conditionsText.replace(/&&\s*$/, '').trim();
  return head && !head.includes('||') ? `{ ${head} }` : '';
}

export async function traceqlCompleter(text, cursor) {
  const before = text.slice(0, cursor);
  const { open, str } = scan(before);
  if (!open || open.ch !== '{') {
    if (str) return null;
    return answer(text, cursor, /\w*$/.exec(before)[0], TRACEQL_OUTSIDE, /^\w*/);
  }
  const upto = before.slice(0, str ? str.at : cursor);
  const m = /([a-zA-Z_.:][\w.:-]*)\s*(=~|!~|!=|>=|<=|=|>|<)\s*\w*$/.exec(upto);
  if (m) {
    const values = await tempoValues(m[1], spansetBefore(upto.slice(open.at + 1, m.index)));
    if (str) return quotedValues(text, cursor, str.at, values.map((v) => v.value), m[1]);
    const items = values.map((v) => ({ label: v.value, detail: m[1], insert: v.type === 'string' ? JSON.stringify(v.value) : v.value }));
    return answer(text, cursor, /\w*$/.exec(before)[0], items, /^\w*/);
  }
  if (str) return null;
  const prefix = /[\w.:]*$/.exec(before)[0];
  return answer(text, cursor, prefix, [...INTRINSICS, ...(await tempoAttributeItems())], /^[\w.:]*/);
}
