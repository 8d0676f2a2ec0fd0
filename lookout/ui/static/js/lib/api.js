// Fetching from Lookout's own APIs (Prometheus, Loki, Tempo, Alertmanager, dashboards).
// Every request carries the tenant chosen in the header bar (X-Scope-OrgID); every failure
// becomes an ApiError whose message is the server's words and, for a query that did not
// parse, the position it points at.

const TENANT_KEY = 'lookout.tenant';

export function getTenant() {
  return localStorage.getItem(TENANT_KEY) || '';
}

export function setTenant(tenant) {
  if (tenant) localStorage.setItem(TENANT_KEY, tenant);
  else localStorage.removeItem(TENANT_KEY);
}

export class ApiError extends Error {
  constructor(status, message, position = null) {
    super(message);
    this.status = status;
    this.position = position; // {line, column} (1-based) when the server named one
  }
}

// "1:5: parse error: ..." (PromQL), "parse error at line 1, col 5: ..." (LogQL, TraceQL),
// "at line 1, column 5".
export function errorPosition(message) {
  // Prometheus prefixes it: 'invalid parameter "query": 1:4: parse error: ...'
  let m = /(?:^|\s)(\d+):(\d+): parse error/.exec(message) || /^(\d+):(\d+):/.exec(message);
  if (m) return { line: +m[1], column: +m[2] };
  m = /line (\d+),? col(?:umn)? (\d+)/i.exec(message);
  if (m) return { line: +m[1], column: +m[2] };
  m = /at char(?:acter)? (\d+)/i.exec(message);
  if (m) return { line: 1, column: +m[1] };
  return null;
}

function buildUrl(path, params) {
  const url = new URL(path, window.location.origin);
  if (params) {
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === '') continue;
      if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, x));
      else url.searchParams.set(k, String(v));
    }
  }
  return url;
}

// api('/api/v1/query', {params: {query: 'up'}}) -> parsed JSON (or text for non-JSON answers).
// options: params, method, body (object -> JSON), tenant (overrides the header bar's),
// headers, signal (AbortSignal).
export async function api(path, options = {}) {
  const { params, method = 'GET', body, tenant, headers = {}, signal } = options;
  const h = { Accept: 'application/json', ...headers };
  const t = tenant ?? getTenant();
  if (t) h['X-Scope-OrgID'] = t;
  let payload;
  if (body !== undefined) {
    if (typeof body === 'string' || body instanceof Blob || body instanceof URLSearchParams) payload = body;
    else {
      payload = JSON.stringify(body);
      h['Content-Type'] = 'application/json';
    }
  }
  let resp;
  try {
    resp = await fetch(buildUrl(path, params), { method, headers: h, body: payload, signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `cannot reach Lookout: ${e.message}`);
  }
  const text = await resp.text();
  let data = null;
  if ((resp.headers.get('content-type') || '').includes('json') && text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok || (data && data.status === 'error')) {
    // Prometheus/Loki: {error}; dashboards: {message}; Alertmanager v2: a bare JSON string.
    let message = (typeof data === 'string' && data) || (data && (data.error || data.message))
      || text.trim() || `${resp.status} ${resp.statusText}`;
    if (typeof message !== 'string') message = JSON.stringify(message);
    throw new ApiError(resp.status, message, errorPosition(message));
  }
  return data ?? text;
}
