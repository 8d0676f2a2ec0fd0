// The landing page at /ui/: where to go next — the explorers, the dashboards (shipped
// first) and how many alerts are firing right now.
import { html } from '../preact.js';
import { api } from '../lib/api.js';
import { useAsync } from '../lib/useasync.js';
import { Link } from '../lib/router.js';
import { sortDashboards } from './dashboards.js';

const EXPLORERS = [
  ['/ui/metrics', 'Metrics', 'Query and chart metrics with PromQL.'],
  ['/ui/logs', 'Logs', 'Search and tail logs with LogQL.'],
  ['/ui/traces', 'Traces', 'Find traces with TraceQL and follow one request.'],
  ['/ui/services', 'Service map', 'Who calls whom, how often, how slowly, how badly.'],
  ['/ui/dashboards', 'Dashboards', 'Panels of metrics, logs and traces together.'],
  ['/ui/alerts', 'Alerts', 'Rules, firing alerts and silences.'],
];

function AlertsCard() {
  const a = useAsync((signal) => api('/api/v1/alerts', { signal }).then((r) => {
    const alerts = r.data?.alerts || [];
    return { firing: alerts.filter((x) => x.state === 'firing').length,
      pending: alerts.filter((x) => x.state === 'pending').length };
  }), []);
  let body;
  if (a.loading) body = html`<span class="muted">…</span>`;
  else if (a.error) body = html`<span class="error">Cannot read alerts: ${a.error.message}</span>`;
  else {
    const { firing, pending } = a.data;
    body = html`<span class=${`home-alert-count ${firing ? 'firing' : 'ok'}`} data-testid="firing-count">${firing}</span>
      <span>${firing === 1 ? 'alert firing' : 'alerts firing'}${pending ? `, ${pending} pending` : ''}</span>`;
  }
  return html`<${Link} href="/ui/alerts" class="home-card home-alerts" data-testid="home-alerts">
    <div class="home-card-title">Alerts</div><div class="home-alerts-body">${body}</div><//>`;
}

function DashboardsCard() {
  const list = useAsync((signal) => api('/lookout/api/v1/dashboards', { signal })
    .then((r) => sortDashboards(r.dashboards || [])), []);
  const state = { ...list, dashboards: list.data || [] };
  return html`<section class="panel home-dashboards" data-testid="home-dashboards">
    <div class="panel-title">Dashboards<span class="spacer"></span><${Link} href="/ui/d/new">New dashboard<//></div>
    ${state.error ? html`<div class="error-box">Cannot list dashboards: ${state.error.message}</div>`
      : state.loading ? html`<p class="muted">Loading…</p>`
      : state.dashboards.length === 0 ? html`<p class="empty">No dashboards yet.</p>`
      : html`<ul class="home-dashboard-list">${state.dashboards.slice(0, 20).map((d) => html`<li>
          <${Link} href=${`/ui/d/${encodeURIComponent(d.uid)}`} data-testid="home-dashboard-link">${d.title}<//>
          ${d.shipped && html` <span class="badge">shipped</span>`}
          ${(d.tags || []).map((t) => html` <span class="badge tag">${t}</span>`)}</li>`)}</ul>
        ${state.dashboards.length > 20 && html`<${Link} href="/ui/dashboards">All ${state.dashboards.length} dashboards<//>`}`}
  </section>`;
}

export function HomePage() {
  return html`<div class="page home-page" data-testid="home-page">
    <h1>Lookout</h1>
    <div class="home-cards">
      <${AlertsCard} />
      ${EXPLORERS.map(([href, title, text]) => html`<${Link} href=${href} class="home-card" data-testid="home-card">
        <div class="home-card-title">${title}</div><div class="muted">${text}</div><//>`)}
    </div>
    <${DashboardsCard} />
  </div>`;
}
