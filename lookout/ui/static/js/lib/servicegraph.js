// The service map's model, apart from drawing: the PromQL that reads the service-graph and
// span metrics over a time range, the graph built from those results (services, databases
// and uninstrumented peers as nodes; client -> server calls as edges with their rate, error
// rate and p95), and a layered left-to-right layout of it (longest-path layers, cycles
// broken, a barycenter pass to uncross edges). No DOM: loadServiceGraph fetches, the rest is pure.

import { api } from './api.js';
import { formatDuration, resolveRange } from './time.js';

export const REQUEST_TOTAL = 'traces_service_graph_request_total';
export const REQUEST_FAILED = 'traces_service_graph_request_failed_total';
export const SERVER_BUCKET = 'traces_service_graph_request_server_seconds_bucket';
export const CALLS_TOTAL = 'traces_spanmetrics_calls_total';
export const LATENCY_BUCKET = 'traces_spanmetrics_latency_bucket';
export const ENTRY_KINDS = 'span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"';
export const ERROR_STATUS = 'status_code="STATUS_CODE_ERROR"';

// How much a counter grew over the window ending at the evaluation time. A series born inside
// the window counts with its whole value (exact; increase() would extrapolate past its birth,
// and data written before generated counters got their leading 0 has no increase at all).
export function windowIncrease(selector, range) {
  return `((increase(${selector}[${range}]) and ${selector} offset ${range}) or ${selector})`;
}

// The per-second rate over a trailing window, with the same care for series born in it
// (for range queries: each step sees the window before it).
export function windowRate(selector, range, seconds) {
  return `((rate(${selector}[${range}]) and ${selector} offset ${range}) or ${selector} / ${seconds})`;
}

// `{a="b", c=~"d"}` matchers -> `metric{a="b",c=~"d"}`; extra is raw matcher text.
export function selector(metric, labels = {}, extra = '') {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  if (extra) parts.push(extra);
  return parts.length ? `${metric}{${parts.join(',')}}` : metric;
}

// Instant queries (evaluated at the end of the range) for the whole map.
export function serviceGraphQueries(range) {
  const by = 'client, server, connection_type';
  return {
    requests: `sum by (${by}) (${windowIncrease(REQUEST_TOTAL, range)})`,
    failed: `sum by (${by}) (${windowIncrease(REQUEST_FAILED, range)})`,
    p95: `histogram_quantile(0.95, sum by (${by}, le) (${windowIncrease(SERVER_BUCKET, range)}))`,
    nodeRequests: `sum by (service) (${windowIncrease(selector(CALLS_TOTAL, {}, ENTRY_KINDS), range)})`,
    nodeErrors: `sum by (service) (${windowIncrease(selector(CALLS_TOTAL, {}, `${ENTRY_KINDS},${ERROR_STATUS}`), range)})`,
  };
}

const num = (sample) => {
  const v = parseFloat(sample.value[1]);
  return Number.isFinite(v) ? v : null;
};

export const edgeKey = (client, server, connectionType = '') => `${client}\u0000${server}\u0000${connectionType}`;

function kindOf(name, edges, instrumented) {
  if (instrumented.has(name)) return 'service';
  let kind = 'service';
  for (const e of edges) {
    if (e.client === name && e.connectionType === 'virtual_node') return 'user';
    if (e.server === name && e.connectionType === 'database') kind = 'database';
    else if (e.server === name && e.connectionType === 'virtual_node' && kind === 'service') kind = 'external';
  }
  return kind;
}

// Query results (Prometheus vectors) -> {nodes, edges}; seconds = the window's length, for rates.
// Edges without a request in the window are left out; services seen only in span metrics
// (no calls to or from others) are nodes of their own.
export function buildGraph({ requests = [], failed = [], p95 = [], nodeRequests = [], nodeErrors = [] }, seconds) {
  const edgeMap = new Map();
  for (const s of requests) {
    const m = s.metric;
    const n = num(s);
    if (!n || n <= 0) continue;
    const ct = m.connection_type || '';
    edgeMap.set(edgeKey(m.client, m.server, ct), {
      id: edgeKey(m.client, m.server, ct), client: m.client, server: m.server, connectionType: ct,
      requests: n, failed: 0, p95: null,
    });
  }
  for (const s of failed) {
    const e = edgeMap.get(edgeKey(s.metric.client, s.metric.server, s.metric.connection_type || ''));
    if (e) e.failed = Math.min(e.requests, num(s) || 0);
  }
  for (const s of p95) {
    const e = edgeMap.get(edgeKey(s.metric.client, s.metric.server, s.metric.connection_type || ''));
    if (e) e.p95 = num(s);
  }
  const edges = [...edgeMap.values()].sort((a, b) => a.id.localeCompare(b.id));
  for (const e of edges) {
    e.rate = e.requests / seconds;
    e.errorRate = e.failed / e.requests;
  }

  const served = new Map(nodeRequests.map((s) => [s.metric.service, num(s) || 0]));
  const erred = new Map(nodeErrors.map((s) => [s.metric.service, num(s) || 0]));
  const names = new Set();
  edges.forEach((e) => { names.add(e.client); names.add(e.server); });
  served.forEach((n, name) => { if (n > 0 && name) names.add(name); });
  const nodes = [...names].sort().map((name) => {
    const kind = kindOf(name, edges, served);
    let requests;
    let errors;
    if (served.has(name)) {
      requests = served.get(name);
      errors = erred.get(name) || 0;
    } else {
      // not instrumented: what its callers saw (the virtual user: what it sent)
      const side = kind === 'user' ? edges.filter((e) => e.client === name) : edges.filter((e) => e.server === name);
      requests = side.reduce((a, e) => a + e.requests, 0);
      errors = side.reduce((a, e) => a + e.failed, 0);
    }
    return { id: name, name, kind, requests, errors, rate: requests / seconds, errorRate: requests ? errors / requests : 0 };
  });
  return { nodes, edges };
}

// ---- layout ------------------------------------------------------------------------------------

// Edges to reverse so the graph is acyclic: back edges of a depth-first search that starts
// from the sources (then any node left), in name order so the result is stable.
export function backEdges(nodeIds, edges) {
  const out = new Map(nodeIds.map((id) => [id, []]));
  const indeg = new Map(nodeIds.map((id) => [id, 0]));
  for (const e of edges) {
    if (e.client === e.server) continue;
    out.get(e.client).push(e);
    indeg.set(e.server, indeg.get(e.server) + 1);
  }
  const state = new Map(); // 1 = on the stack, 2 = done
  const reversed = new Set();
  const visit = (id) => {
    state.set(id, 1);
    for (const e of out.get(id)) {
      const s = state.get(e.server);
      if (s === 1) reversed.add(e.id);
      else if (!s) visit(e.server);
    }
    state.set(id, 2);
  };
  const roots = [...nodeIds].sort((a, b) => (indeg.get(a) === 0) === (indeg.get(b) === 0) ? a.localeCompare(b)
    : indeg.get(a) === 0 ? -1 : 1);
  roots.forEach((id) => { if (!state.get(id)) visit(id); });
  return reversed;
}

// Longest-path layering of the DAG (edges in `reversed` count backwards): a node sits one
// layer right of its deepest caller.
export function assignLayers(nodeIds, edges, reversed) {
  const succ = new Map(nodeIds.map((id) => [id, []]));
  const indeg = new Map(nodeIds.map((id) => [id, 0]));
  for (const e of edges) {
    if (e.client === e.server) continue;
    const [a, b] = reversed.has(e.id) ? [e.server, e.client] : [e.client, e.server];
    succ.get(a).push(b);
    indeg.set(b, indeg.get(b) + 1);
  }
  const layer = new Map(nodeIds.map((id) => [id, 0]));
  const queue = nodeIds.filter((id) => indeg.get(id) === 0);
  while (queue.length) {
    const id = queue.shift();
    for (const b of succ.get(id)) {
      layer.set(b, Math.max(layer.get(b), layer.get(id) + 1));
      indeg.set(b, indeg.get(b) - 1);
      if (indeg.get(b) === 0) queue.push(b);
    }
  }
  return layer;
}

// Pairs of edges that cross between adjacent layers (long edges are judged by their ends).
export function countCrossings(layers, links, layerOf) {
  const pos = new Map();
  layers.forEach((ids) => ids.forEach((id, i) => pos.set(id, i)));
  const spans = links.map(([a, b]) => (layerOf.get(a) <= layerOf.get(b) ? [a, b] : [b, a]))
    .filter(([a, b]) => layerOf.get(a) !== layerOf.get(b));
  let n = 0;
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length; j++) {
      const [a1, b1] = spans[i];
      const [a2, b2] = spans[j];
      if (layerOf.get(a1) !== layerOf.get(a2)) continue;
      const d1 = pos.get(a1) - pos.get(a2);
      const d2 = pos.get(b1) - pos.get(b2);
      if (d1 * d2 < 0) n++;
    }
  }
  return n;
}

// Reorder each layer by the mean position of its neighbours in the layers already placed
// (down, then up), `passes` times; the ordering with the fewest crossings wins.
export function orderLayers(layers, links, layerOf, passes = 2) {
  const neighbours = new Map();
  for (const [a, b] of links) {
    if (a === b) continue;
    if (!neighbours.has(a)) neighbours.set(a, []);
    if (!neighbours.has(b)) neighbours.set(b, []);
    neighbours.get(a).push(b);
    neighbours.get(b).push(a);
  }
  let current = layers.map((l) => [...l]);
  let best = current.map((l) => [...l]);
  let bestCrossings = countCrossings(best, links, layerOf);
  const sweep = (order, down) => {
    const pos = new Map();
    current.forEach((ids) => ids.forEach((id, i) => pos.set(id, i)));
    for (const li of order) {
      const from = down ? li - 1 : li + 1;
      const bary = new Map(current[li].map((id, i) => {
        const ns = (neighbours.get(id) || []).filter((n) => layerOf.get(n) === from ||
          (down ? layerOf.get(n) < li : layerOf.get(n) > li));
        return [id, ns.length ? ns.reduce((s, n) => s + pos.get(n), 0) / ns.length : i];
      }));
      current[li].sort((a, b) => bary.get(a) - bary.get(b));
      current[li].forEach((id, i) => pos.set(id, i));
    }
  };
  const idx = current.map((_, i) => i);
  for (let p = 0; p < passes; p++) {
    sweep(idx.slice(1), true);
    sweep(idx.slice(0, -1).reverse(), false);
    const c = countCrossings(current, links, layerOf);
    if (c < bestCrossings) {
      bestCrossings = c;
      best = current.map((l) => [...l]);
    }
  }
  return best;
}

// {nodes, edges} -> {positions: Map id -> {x, y, layer}, reversed: Set of edge ids, width, height}.
// Layers run left to right; each is centred vertically. x/y are the node box's top-left.
export function layoutGraph(nodes, edges, { nodeWidth = 210, nodeHeight = 58, gapX = 170, gapY = 70, margin = 40 } = {}) {
  const ids = nodes.map((n) => n.id);
  const reversed = backEdges(ids, edges);
  const layerOf = assignLayers(ids, edges, reversed);
  const count = ids.length ? Math.max(...layerOf.values()) + 1 : 0;
  const layers = Array.from({ length: count }, () => []);
  ids.forEach((id) => layers[layerOf.get(id)].push(id));
  const ordered = orderLayers(layers, edges.map((e) => [e.client, e.server]), layerOf);
  const tallest = Math.max(0, ...ordered.map((l) => l.length));
  const rowH = nodeHeight + gapY;
  const positions = new Map();
  ordered.forEach((column, li) => {
    const top = margin + ((tallest - column.length) * rowH) / 2;
    column.forEach((id, i) => positions.set(id, { x: margin + li * (nodeWidth + gapX), y: top + i * rowH, layer: li }));
  });
  return {
    positions, reversed, nodeWidth, nodeHeight,
    width: 2 * margin + Math.max(0, count * (nodeWidth + gapX) - gapX),
    height: 2 * margin + Math.max(0, tallest * rowH - gapY),
  };
}

// The SVG path of an edge between two laid-out boxes and the point to put its label at.
// Forward edges leave the client's right side for the server's left; others (back edges,
// same layer, self calls) loop below the boxes.
export function edgePath(from, to, w, h) {
  if (to.x > from.x) {
    const [x1, y1, x2, y2] = [from.x + w, from.y + h / 2, to.x, to.y + h / 2];
    const dx = (x2 - x1) / 2;
    return { d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`, labelX: (x1 + x2) / 2, labelY: (y1 + y2) / 2 };
  }
  const [x1, y1, x2, y2] = [from.x + w / 2 + 12, from.y + h, to.x + w / 2 - 12, to.y + h];
  const dip = Math.max(y1, y2) + 50 + Math.abs(x1 - x2) / 6;
  return { d: `M${x1},${y1} C${x1},${dip} ${x2},${dip} ${x2},${y2}`, labelX: (x1 + x2) / 2, labelY: 0.75 * dip + 0.125 * (y1 + y2) };
}

// ---- formatting and loading (shared by the map and the service pages) --------------------

export function formatRate(r) {
  if (!r) return '0 req/s';
  return `${r >= 100 ? Math.round(r) : +r.toPrecision(3)} req/s`;
}

export function formatPercent(ratio) {
  if (!ratio) return '0%';
  return `${+(ratio * 100).toPrecision(3)}%`;
}

export function formatLatency(seconds) {
  return seconds === null || seconds === undefined ? '' : formatDuration(seconds * 1000);
}

// Runs the map's instant queries at the end of the range over the whole range.
export async function loadServiceGraph(from, to, signal) {
  const { start, end } = resolveRange(from, to);
  const seconds = Math.max(1, Math.round((end - start) / 1000));
  const queries = serviceGraphQueries(`${seconds}s`);
  const names = Object.keys(queries);
  const results = await Promise.all(names.map((k) => api('/api/v1/query', {
    params: { query: queries[k], time: end / 1000 }, signal,
  })));
  const byName = Object.fromEntries(names.map((k, i) => [k, results[i].data.result]));
  return buildGraph(byName, seconds);
}
