// Dashboard variables in query text, the way Grafana writes them: $var, ${var}, ${var:format}
// and the old [[var]]; a multi-value or "All" selection becomes a regex alternation (a|b) for
// =~ matchers; built-ins $__interval, $__rate_interval, $__range, $__range_s, $__from, $__to.
// Pure functions only, so the panel code and the variables bar share one set of rules.

export const ALL = '$__all';
const SCRAPE_INTERVAL_S = 15;
const VARIABLE_RE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}/g;

// Regex metacharacters escaped for a regex inside a PromQL/LogQL double-quoted string
// (Grafana's prometheusSpecialRegexEscape): "a.b" -> a\\.b.
export function escapeRegexValue(value) {
  return String(value).replace(/\\/g, '\\\\\\\\').replace(/[$^*+?.()|{}[\]]/g, '\\\\$&');
}

// Seconds -> "15s", "1m", "2h" (the largest unit that divides it exactly).
export function secondsToDuration(seconds) {
  const s = Math.max(1, Math.round(seconds));
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]]) if (s % size === 0) return `${s / size}${unit}`;
  return `${s}s`;
}

// The built-in variables for one query: range {start, end} epoch ms, stepSeconds.
export function builtinVariables(range, stepSeconds) {
  const rangeS = Math.max(1, Math.round((range.end - range.start) / 1000));
  return {
    __interval: secondsToDuration(stepSeconds),
    __interval_ms: String(Math.round(stepSeconds * 1000)),
    __rate_interval: secondsToDuration(Math.max(4 * SCRAPE_INTERVAL_S, stepSeconds)),
    __range: `${rangeS}s`,
    __range_s: String(rangeS),
    __range_ms: String(rangeS * 1000),
    __from: String(Math.round(range.start)),
    __to: String(Math.round(range.end)),
  };
}

// The values a variable stands for: its selection, or every option when "All" is chosen.
function selectedValues(variable) {
  return variable.isAll ? variable.options : variable.values;
}

function formatValues(variable, format) {
  const values = selectedValues(variable);
  switch (format) {
    case 'raw': case 'text': case 'csv': return values.join(',');
    case 'pipe': return values.join('|');
    case 'json': return JSON.stringify(values);
    case 'glob': return values.length > 1 ? `{${values.join(',')}}` : (values[0] ?? '');
    case 'regex': return regexJoin(values);
    default: break;
  }
  if (!variable.multi && !variable.includeAll) return values[0] ?? '';
  if (variable.isAll && values.length === 0) return '.*';
  return regexJoin(values);
}

function regexJoin(values) {
  const escaped = values.map(escapeRegexValue);
  return escaped.length === 1 ? escaped[0] : `(${escaped.join('|')})`;
}

// Replace every known variable in text. variables: {name: {values, options, multi,
// includeAll, isAll}}; builtins: {name: string} from builtinVariables. Unknown
// names are left as written, so a typo shows up in the query error.
export function interpolate(text, variables = {}, builtins = {}) {
  if (!text) return text ?? '';
  return String(text).replace(VARIABLE_RE, (match, plain, bracket, bracketFmt, braced, bracedFmt) => {
    const name = plain || bracket || braced;
    const format = bracketFmt || bracedFmt;
    if (name in builtins) return builtins[name];
    const variable = variables[name];
    return variable ? formatValues(variable, format) : match;
  });
}
