// A trace as the waterfall needs it: Tempo answers /api/traces/{id} with OTLP JSON
// ({batches: [resourceSpans]}); parseTrace flattens it into one record per span, links the
// spans into a tree (a span whose parent is missing becomes a root of its own) and lays them
// out in display order. criticalPath finds the spans the trace's end waited for.
// Pure functions, no DOM, so they can be reasoned about (and tested) on their own.
//
// Times: OTLP timestamps are nanoseconds since the epoch as strings, more digits than a JS
// Number holds exactly. The trace start is kept as a BigInt (trace.startNs); every span time is
// a Number of nanoseconds relative to it, exact for traces shorter than ~104 days.

const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];
const STATUSES = ['unset', 'ok', 'error'];

// Tempo writes ids as hex; OTLP/JSON proper (and some proxies) as base64. -> lower-case hex.
export function idToHex(id) {
  if (!id) return '';
  const s = String(id);
  if ((s.length === 32 || s.length === 16) && /^[0-9a-fA-F]+$/.test(s)) return s.toLowerCase();
  try {
    const bin = atob(s);
    let hex = '';
    for (let i = 0; i < bin.length; i++) hex += bin.charCodeAt(i).toString(16).padStart(2, '0');
    return hex;
  } catch {
    return s.toLowerCase();
  }
}

const isZeroId = (hex) => !hex || /^0+$/.test(hex);

// 2 | "SPAN_KIND_SERVER" -> "server"
export function normalizeKind(kind) {
  if (typeof kind === 'number') return KINDS[kind] || 'unspecified';
  const s = String(kind || '').toLowerCase().replace(/^span_kind_/, '');
  return KINDS.includes(s) ? s : 'unspecified';
}

// {code: 2} | {code: "STATUS_CODE_ERROR"} -> "error"
export function normalizeStatus(status) {
  const code = status && status.code;
  if (typeof code === 'number') return STATUSES[code] || 'unset';
  const s = String(code || '').toLowerCase().replace(/^status_code_/, '');
  return STATUSES.includes(s) ? s : 'unset';
}

// An OTLP AnyValue -> a plain JS value (int64 stays a string when it does not fit a Number).
export function anyValue(v) {
  if (!v || typeof v !== 'object') return v ?? null;
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('intValue' in v) {
    const n = Number(v.intValue);
    return Number.isSafeInteger(n) ? n : String(v.intValue);
  }
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('arrayValue' in v) return ((v.arrayValue && v.arrayValue.values) || []).map(anyValue);
  if ('kvlistValue' in v) return attributesToObject((v.kvlistValue && v.kvlistValue.values) || []);
  if ('bytesValue' in v) return v.bytesValue;
  return null;
}

export function attributesToObject(attrs) {
  const out = {};
  for (const a of attrs || []) out[a.key] = anyValue(a.value);
  return out;
}

// A value as a person reads it in an attribute table.
export function formatAttrValue(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function toBig(nanos) {
  try {
    return BigInt(nanos || 0);
  } catch {
    return 0n;
  }
}

// {batches|resourceSpans|trace.resourceSpans} -> raw span records with absolute BigInt times.
function collectSpans(data) {
  const batches = (data && (data.batches || data.resourceSpans || (data.trace && data.trace.resourceSpans))) || [];
  const out = [];
  for (const batch of batches) {
    const resourceAttrs = attributesToObject(batch.resource && batch.resource.attributes);
    const service = resourceAttrs['service.name'] != null ? String(resourceAttrs['service.name']) : 'unknown';
    for (const scope of batch.scopeSpans || batch.instrumentationLibrarySpans || []) {
      for (const s of scope.spans || []) {
        out.push({ raw: s, resourceAttrs, service, scope: scope.scope || null,
          startBig: toBig(s.startTimeUnixNano), endBig: toBig(s.endTimeUnixNano) });
      }
    }
  }
  return out;
}

// OTLP JSON -> {traceId, startNs (BigInt), duration (ns), spans (display order), byId, roots,
// services [{name, count}], errorCount}. Each span: {spanId, parentSpanId, traceId, name,
// service, kind, start, duration, end (ns relative to the trace start), startNs (BigInt),
// status, statusMessage, attrs, resourceAttrs, scope, events [{name, time (rel ns), attrs}],
// links [{traceId, spanId, attrs}], depth, children, parent, index (display position),
// descendants (count)}.
export function parseTrace(data) {
  const collected = collectSpans(data);
  let startNs = null;
  let endNs = null;
  for (const { startBig, endBig } of collected) {
    if (startNs === null || startBig < startNs) startNs = startBig;
    if (endNs === null || endBig > endNs) endNs = endBig;
  }
  if (startNs === null) startNs = endNs = 0n;
  const rel = (big) => Number(big - startNs);

  const byId = new Map();
  const spans = collected.map(({ raw, resourceAttrs, service, scope, startBig, endBig }) => {
    const start = rel(startBig);
    const end = Math.max(start, rel(endBig));
    const parent = idToHex(raw.parentSpanId);
    const span = {
      spanId: idToHex(raw.spanId),
      parentSpanId: isZeroId(parent) ? null : parent,
      traceId: idToHex(raw.traceId),
      name: raw.name || '',
      service,
      kind: normalizeKind(raw.kind),
      start,
      end,
      duration: end - start,
      startNs: startBig,
      status: normalizeStatus(raw.status),
      statusMessage: (raw.status && raw.status.message) || '',
      attrs: attributesToObject(raw.attributes),
      resourceAttrs,
      scope,
      events: (raw.events || []).map((ev) => ({ name: ev.name || '', time: rel(toBig(ev.timeUnixNano)), attrs: attributesToObject(ev.attributes) })),
      links: (raw.links || []).map((l) => ({ traceId: idToHex(l.traceId), spanId: idToHex(l.spanId), attrs: attributesToObject(l.attributes) })),
      depth: 0,
      children: [],
      parent: null,
      index: 0,
      descendants: 0,
    };
    if (!byId.has(span.spanId)) byId.set(span.spanId, span);
    return span;
  });

  const roots = linkTree(spans, byId);
  const ordered = layout(roots, spans);
  const counts = new Map();
  let errorCount = 0;
  for (const s of ordered) {
    counts.set(s.service, (counts.get(s.service) || 0) + 1);
    if (s.status === 'error') errorCount++;
  }
  return {
    traceId: ordered.length ? ordered[0].traceId : '',
    startNs,
    duration: Number(endNs - startNs),
    spans: ordered,
    byId,
    roots,
    services: [...counts].map(([name, count]) => ({ name, count })),
    errorCount,
  };
}

const byStart = (a, b) => a.start - b.start || a.end - b.end;

// Parent/children links; a span whose parent is not in the trace (or itself) is a root.
function linkTree(spans, byId) {
  const roots = [];
  for (const s of spans) {
    if (byId.get(s.spanId) !== s) continue; // a duplicate id: keep the first
    const p = s.parentSpanId && byId.get(s.parentSpanId);
    if (p && p !== s) {
      s.parent = p;
      p.children.push(s);
    } else roots.push(s);
  }
  for (const s of spans) if (s.children.length > 1) s.children.sort(byStart);
  roots.sort(byStart);
  return roots;
}

// Depth-first display order (iterative: a 10,000-deep chain must not overflow the stack).
// Spans on a parent cycle are never reached from a root: each such cycle is cut and shown as a root.
function layout(roots, spans) {
  const ordered = [];
  const seen = new Set();
  const walk = (root) => {
    const stack = [[root, 0]];
    while (stack.length) {
      const [s, depth] = stack.pop();
      if (seen.has(s)) continue;
      seen.add(s);
      s.depth = depth;
      s.index = ordered.length;
      ordered.push(s);
      for (let i = s.children.length - 1; i >= 0; i--) stack.push([s.children[i], depth + 1]);
    }
  };
  roots.forEach(walk);
  for (const s of spans) {
    if (seen.has(s) || s.parent === null) continue;
    s.parent.children = s.parent.children.filter((c) => c !== s);
    s.parent = null;
    roots.push(s);
    walk(s);
  }
  // Pre-order: a span's subtree is the `descendants` spans right after it.
  for (let i = ordered.length - 1; i >= 0; i--) {
    const s = ordered[i];
    s.descendants = s.children.reduce((n, c) => n + 1 + c.descendants, 0);
  }
  return ordered;
}

// The spans to show when the spans in `collapsed` (a Set of span ids) hide their subtrees.
export function visibleSpans(spans, collapsed) {
  if (!collapsed || collapsed.size === 0) return spans;
  const out = [];
  for (let i = 0; i < spans.length; i++) {
    const s = spans[i];
    out.push(s);
    if (collapsed.has(s.spanId)) i += s.descendants;
  }
  return out;
}

// The critical path, as Jaeger computes it: the segments of spans the trace's end was waiting on.
//
// Rule implemented: each child's time is first clipped to its parent's (a child outliving its
// parent cannot delay it; a child wholly outside its parent is ignored with its subtree). Start
// at the root that ends last, at its end. At a span, with the cursor at time t (the span's end,
// or the start of the child just walked): take the child that ends last strictly before t (any
// child ending latest when t is the span's own end). If there is one, the span's own time between
// that child's end and t is critical, and the walk descends into that child from its end. If there
// is none, the span's time from its start to t is critical, and the walk returns to the parent
// with t = this span's start, so earlier, non-overlapping siblings (sequential work) are visited
// in turn. It stops when it returns past the root.
//
// -> Map spanId -> [[start, end], ...] (ns relative to the trace start, latest first).
export function criticalPath(trace) {
  const path = new Map();
  if (!trace.roots.length) return path;
  const win = new Map(); // span -> [start, end] clipped to its parent's window (absent: ignored)
  for (const s of trace.spans) {
    const pw = s.parent ? win.get(s.parent) : [s.start, s.end];
    if (!pw) continue;
    const start = Math.max(s.start, pw[0]);
    const end = Math.min(s.end, pw[1]);
    if (end >= start) win.set(s, [start, end]);
  }
  const endOf = (s) => win.get(s)[1];
  // Per span: its children latest-ending first, and how many of them the walk has passed
  // (t only decreases at a given span, so the search resumes where it stopped).
  const cursors = new Map();
  const lastChildBefore = (s, t) => {
    let c = cursors.get(s);
    if (!c) {
      c = { list: s.children.filter((x) => win.has(x)).sort((a, b) => endOf(b) - endOf(a)), i: 0 };
      cursors.set(s, c);
    }
    if (t !== null) while (c.i < c.list.length && endOf(c.list[c.i]) >= t) c.i++;
    return c.list[c.i] || null;
  };
  const add = (s, from, to) => {
    if (to <= from) return;
    if (!path.has(s.spanId)) path.set(s.spanId, []);
    path.get(s.spanId).push([from, to]);
  };

  const root = trace.roots.reduce((a, b) => (endOf(b) > endOf(a) ? b : a));
  let span = root;
  let t = null; // null: the span's own end
  for (;;) {
    const limit = t === null ? endOf(span) : t;
    const child = lastChildBefore(span, t);
    if (child) {
      add(span, endOf(child), limit);
      span = child;
      t = null;
    } else {
      add(span, win.get(span)[0], limit);
      if (span === root) break;
      t = win.get(span)[0];
      span = span.parent;
    }
  }
  return path;
}

// A service keeps one colour wherever a trace is shown (list, waterfall, summary): one of a
// palette of distinguishable colours (none red: red means error), picked by a hash of its name.
const PALETTE = ['#d4a017', '#e8871e', '#7a8f1f', '#8e5bc9', '#1aa3a3', '#c2559a', '#2e9e5b', '#9c6b3f',
  '#5663d8', '#3b82c4', '#4aa3df', '#6b7c8f'];

export function serviceColor(name) {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return PALETTE[(h >>> 0) % PALETTE.length];
}

// Nanoseconds -> "1.24ms", "3.5s", "870µs".
export function formatNanos(ns) {
  if (ns < 1000) return `${Math.round(ns)}ns`;
  const ms = ns / 1e6;
  if (ms < 1) return `${+(ns / 1000).toFixed(ns < 10000 ? 1 : 0)}µs`;
  if (ms < 1000) return `${+ms.toFixed(ms < 10 ? 2 : 1)}ms`;
  if (ms < 60e3) return `${+(ms / 1000).toFixed(2)}s`;
  const m = Math.floor(ms / 60e3);
  return m < 60 ? `${m}m${Math.round((ms % 60e3) / 1000)}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}
