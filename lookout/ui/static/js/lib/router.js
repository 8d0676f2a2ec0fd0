// A small History-API router: every view has a real URL under /ui/ (the server answers
// index.html for all of them), and state that matters (query, time range) lives in the query
// string so a copied link reopens the same view.
import { html, useEffect, useState } from '../preact.js';

const listeners = new Set();

export function currentLocation() {
  return { path: window.location.pathname, query: new URLSearchParams(window.location.search) };
}

function notify() {
  const loc = currentLocation();
  listeners.forEach((fn) => fn(loc));
}

window.addEventListener('popstate', notify);

// navigate('/ui/traces/abc') or navigate('/ui/metrics', {query: 'up', from: 'now-1h'}).
// replace=true rewrites the current history entry (for state changes that are not "pages").
export function navigate(path, params = null, { replace = false } = {}) {
  let url = path;
  if (params) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') qs.set(k, v);
    const s = qs.toString();
    if (s) url += `?${s}`;
  }
  if (url === window.location.pathname + window.location.search) return;
  if (replace) window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
  notify();
}

// Merge params into the current query string (replace by default: typing is not navigation).
export function setQueryParams(params, { replace = true } = {}) {
  const qs = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') qs.delete(k);
    else qs.set(k, v);
  }
  const s = qs.toString();
  navigate(window.location.pathname + (s ? `?${s}` : ''), null, { replace });
}

export function useLocation() {
  const [loc, setLoc] = useState(currentLocation());
  useEffect(() => {
    listeners.add(setLoc);
    return () => listeners.delete(setLoc);
  }, []);
  return loc;
}

// <${Link} href="/ui/logs?query=...">logs<//>: a plain link that the router handles in place
// (ctrl/middle click still opens a new tab).
export function Link({ href, children, class: cls, title, ...rest }) {
  const onClick = (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return html`<a href=${href} class=${cls} title=${title} onClick=${onClick} ...${rest}>${children}</a>`;
}
