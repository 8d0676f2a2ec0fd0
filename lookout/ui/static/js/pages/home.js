// The landing page at /ui/: where to go next — the explorers, the dashboards (shipped
// first) and how many alerts are firing right now.
import { html, useEffect, useState } from '../preact.js';
import { api } from '../lib/api.js';
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

function useAlertsSummary() {
  const [state, setState] = useState({ loading: true, error: null, firing: 0, pending: 0 });
  useEffect(() => {
    api('/api/v1/alerts')
      .then((r) => {
        const alerts = r.data?.alerts || [];
        setState({ loading: false, error: null, firing: alerts.filter((a) => a.state === 'firing').length,
          pending: alerts.filter((a) => a.state === 'pending').length });
      })
      .catch((error) => setState({ loading: false, error, firing: 0, pending: 0 }));
  }, []);
  return state;
}

function AlertsCard() {
  const a = useAlertsSummary();
  let body;
  if (a.loading) body = html`<span class="muted">…</span>`;
  else if (a.error) body = html`<span class="error">Cannot read alerts: ${a.error.message}</span>`;
  else {
    body = html`<span class=${`home-alert-count ${a.firing ? 'firing' : 'ok'}`} data-testid="firing-count">${a.firing}</span>
      <span>${a.firing === 1 ? 'alert firing' : 'alerts firing'}${a.pending ? `, ${a.pending} pending` : ''}</span>`;
  }
  return html`<${Link} href="/ui/alerts" class="home-card home-alerts" data-testid="home-alerts">
    <div class="home-card-title">Alerts</div><div class="home-alerts-body">${body}</div><//>`;
}

function DashboardsCard() {
  const [state, setState] = useState({ loading: true, error: null, dashboards: [] });
  useEffect(() => {
    api('/lookout/api/v1/dashboards')
      .then((r) => setState({ loading: false, error: null, dashboards: sortDashboards(r.dashboards || []) }))
      .catch((error) => setState({ loading: false, error, dashboards: [] }));
  }, []);
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
