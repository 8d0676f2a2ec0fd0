// Running a panel's targets against Lookout's query APIs: Prometheus for PromQL, Loki for
// LogQL, Tempo search for TraceQL. Every failure is re-thrown with the query it came from, so
// the panel can point a caret at the right place in the right query.
import { api } from '../../lib/api.js';
import { msToNs } from '../../lib/time.js';

function tagged(error, target) {
  error.query = target.expr;
  error.refId = target.refId;
  return error;
}

// Run fn(target) for every target with an expression, in parallel.
export async function eachTarget(targets, fn) {
  const active = targets.filter((t) => t.expr && t.expr.trim());
  return Promise.all(active.map(async (t) => {
    try {
      return { target: t, result: await fn(t) };
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw tagged(e, t);
    }
  }));
}

// A range query -> {resultType, result} (matrix for PromQL and LogQL metric queries,
// streams for LogQL log queries).
export async function rangeQuery(target, { range, step, tenant, signal, limit }) {
  if (target.lang === 'logql') {
    const params = { query: target.expr, start: msToNs(range.start), end: msToNs(range.end), step: `${step}s`, limit, direction: 'backward' };
    return (await api('/loki/api/v1/query_range', { params, tenant, signal })).data;
  }
  const params = { query: target.expr, start: range.start / 1000, end: range.end / 1000, step };
  return (await api('/api/v1/query_range', { params, tenant, signal })).data;
}

// An instant query at the end of the range -> {resultType, result}.
export async function instantQuery(target, { range, tenant, signal }) {
  if (target.lang === 'logql') {
    const params = { query: target.expr, time: msToNs(range.end) };
    return (await api('/loki/api/v1/query', { params, tenant, signal })).data;
  }
  return (await api('/api/v1/query', { params: { query: target.expr, time: range.end / 1000 }, tenant, signal })).data;
}

// A TraceQL search -> the Tempo "traces" array.
export async function traceSearch(target, { range, tenant, signal, limit }) {
  const params = { q: target.expr, start: Math.floor(range.start / 1000), end: Math.ceil(range.end / 1000), limit };
  return (await api('/api/search', { params, tenant, signal })).traces || [];
}

// Thrown when a query answers with a shape the panel cannot draw.
export function shapeError(target, message) {
  return tagged(new Error(message), target);
}
