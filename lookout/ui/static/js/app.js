// The app shell: header (navigation, tenant), and the router that picks a page by URL.
// Pages are modules under pages/, each exporting one component that receives
// {loc, params}: the current location and the named parts of its route.
import { html, render, useState } from './preact.js';
import { getTenant, setTenant } from './lib/api.js';
import { Link, useLocation } from './lib/router.js';
import { HomePage } from './pages/home.js';
import { MetricsPage } from './pages/metrics.js';
import { LogsPage } from './pages/logs.js';
import { TracesPage } from './pages/traces.js';
import { TracePage } from './pages/trace.js';
import { ServiceMapPage } from './pages/servicemap.js';
import { ServicePage } from './pages/service.js';
import { DashboardsPage } from './pages/dashboards.js';
import { DashboardPage } from './pages/dashboard.js';
import { AlertsPage } from './pages/alerts.js';

// [pattern, component, nav section]; ":name" captures one path segment.
const ROUTES = [
  ['/ui/', HomePage, 'home'],
  ['/ui/metrics', MetricsPage, 'metrics'],
  ['/ui/logs', LogsPage, 'logs'],
  ['/ui/traces', TracesPage, 'traces'],
  ['/ui/traces/:traceId', TracePage, 'traces'],
  ['/ui/services', ServiceMapPage, 'services'],
  ['/ui/services/:service', ServicePage, 'services'],
  ['/ui/dashboards', DashboardsPage, 'dashboards'],
  ['/ui/d/:uid', DashboardPage, 'dashboards'],
  ['/ui/alerts', AlertsPage, 'alerts'],
];

const NAV = [
  ['metrics', '/ui/metrics', 'Metrics'],
  ['logs', '/ui/logs', 'Logs'],
  ['traces', '/ui/traces', 'Traces'],
  ['services', '/ui/services', 'Service map'],
  ['dashboards', '/ui/dashboards', 'Dashboards'],
  ['alerts', '/ui/alerts', 'Alerts'],
];

export function matchRoute(path) {
  const parts = path.replace(/\/+$/, '').split('/');
  for (const [pattern, component, section] of ROUTES) {
    const pp = pattern.replace(/\/+$/, '').split('/');
    if (pp.length !== parts.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < pp.length; i++) {
      if (pp[i].startsWith(':')) params[pp[i].slice(1)] = decodeURIComponent(parts[i]);
      else if (pp[i] !== parts[i]) ok = false;
    }
    if (ok) return { component, section, params };
  }
  return null;
}

function TenantField() {
  const [value, setValue] = useState(getTenant());
  const commit = (e) => {
    e.preventDefault();
    const v = value.trim();
    if (v === getTenant()) return;
    setTenant(v);
    window.location.reload(); // every page re-reads with the new tenant
  };
  return html`<form class="tenant" onSubmit=${commit} title="Tenant (X-Scope-OrgID); empty = the default tenant">
    <label>Tenant <input data-testid="tenant" value=${value} placeholder="default" size="10"
      onInput=${(e) => setValue(e.target.value)} onBlur=${commit} /></label>
  </form>`;
}

function NotFound({ loc }) {
  return html`<div class="page"><h1>Not found</h1><p class="empty">There is no page at ${loc.path}.
    <${Link} href="/ui/">Go home</${Link}></p></div>`;
}

function App() {
  const loc = useLocation();
  const route = matchRoute(loc.path);
  const Page = route ? route.component : NotFound;
  return html`<div class="app">
    <header class="app-header">
      <${Link} href="/ui/" class="brand">◉ Lookout<//>
      <nav>${NAV.map(([section, href, label]) => html`<${Link} href=${href}
        class=${route && route.section === section ? 'active' : ''}>${label}<//>`)}</nav>
      <${TenantField} />
    </header>
    <main><${Page} key=${loc.path} loc=${loc} params=${route ? route.params : {}} /></main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app'));
