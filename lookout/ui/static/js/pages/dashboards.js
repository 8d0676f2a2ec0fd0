// The dashboards list at /ui/dashboards: search by title, filter by tag (both in the URL),
// shipped dashboards marked, "New dashboard", delete (asks first), and Import of a Grafana
// dashboard JSON (pasted or from a .json file) that reports what could not be carried over.
import { html, useEffect, useState } from '../preact.js';
import { api } from '../lib/api.js';
import { useAsync } from '../lib/useasync.js';
import { Link, navigate, setQueryParams } from '../lib/router.js';

// Shipped first, then by title: the ones everybody has lead.
export function sortDashboards(list) {
  return [...list].sort((a, b) => (b.shipped - a.shipped) || a.title.localeCompare(b.title));
}

function ImportForm({ onClose, onImported }) {
  const [text, setText] = useState('');
  const [overwrite, setOverwrite] = useState(false);
  const [state, setState] = useState({ busy: false, error: null, result: null });
  const readFile = (e) => {
    const file = e.target.files && e.target.files[0];
    if (file) file.text().then(setText);
  };
  const submit = async (e) => {
    e.preventDefault();
    let dashboard;
    try {
      dashboard = JSON.parse(text);
    } catch (err) {
      setState({ busy: false, error: { message: `This is not valid JSON: ${err.message}` }, result: null });
      return;
    }
    setState({ busy: true, error: null, result: null });
    try {
      const result = await api('/lookout/api/v1/dashboards/import', { method: 'POST', body: { dashboard, overwrite } });
      if (!(result.warnings || []).length) {
        navigate(`/ui/d/${encodeURIComponent(result.uid)}`);
        return;
      }
      setState({ busy: false, error: null, result });
      onImported();
    } catch (error) {
      setState({ busy: false, error, result: null });
    }
  };
  const { result } = state;
  return html`<form class="panel import-form" onSubmit=${submit} data-testid="import-form">
    <div class="panel-title">Import a Grafana dashboard<span class="spacer"></span>
      <button type="button" class="link" onClick=${onClose}>Close</button></div>
    <p class="muted">Paste the dashboard JSON exported from Grafana (Share → Export), or choose the file.
      Panels and variables Lookout cannot show are listed after the import.</p>
    <input type="file" accept=".json,application/json" data-testid="import-file" onChange=${readFile} />
    <textarea class="import-json mono" data-testid="import-json" rows="10" placeholder='{"title": "...", "panels": [...]}'
      value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
    <div class="toolbar">
      <label class="check"><input type="checkbox" checked=${overwrite} onChange=${(e) => setOverwrite(e.target.checked)} />
        Overwrite a dashboard with the same uid or title</label>
      <span class="spacer"></span>
      <button type="submit" class="btn primary" data-testid="import-submit" disabled=${state.busy || !text.trim()}>${state.busy ? 'Importing…' : 'Import'}</button>
    </div>
    ${state.error && html`<div class="error-box" data-testid="import-error">${state.error.message}</div>`}
    ${result && html`<div class="import-result" data-testid="import-result">
      <p>Imported as <strong>${result.uid}</strong>. Some things could not be carried over:</p>
      <ul class="import-warnings" data-testid="import-warnings">${result.warnings.map((w) => html`<li>${w}</li>`)}</ul>
      <${Link} href=${`/ui/d/${encodeURIComponent(result.uid)}`} class="btn primary" data-testid="import-open">Open the dashboard<//>
    </div>`}
  </form>`;
}

function DashboardRow({ d, onDeleted }) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState(null);
  const remove = async () => {
    try {
      await api(`/lookout/api/v1/dashboards/${encodeURIComponent(d.uid)}`, { method: 'DELETE' });
      onDeleted();
    } catch (e) {
      setError(e.message);
      setConfirming(false);
    }
  };
  return html`<tr data-testid="dashboard-row" data-uid=${d.uid}>
    <td><${Link} href=${`/ui/d/${encodeURIComponent(d.uid)}`} data-testid="dashboard-link">${d.title}<//>
      ${d.shipped && html` <span class="badge" data-testid="shipped-badge">shipped</span>`}</td>
    <td>${(d.tags || []).map((t) => html`<button type="button" class="badge tag" title="Show dashboards tagged ${t}"
      onClick=${() => setQueryParams({ tag: t })}>${t}</button> `)}</td>
    <td class="muted">${d.updated ? d.updated.replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC') : ''}</td>
    <td class="muted num">v${d.version}</td>
    <td class="row-actions">
      ${error && html`<span class="error">${error}</span>`}
      ${!d.shipped && (confirming ? html`<span>Delete “${d.title}”?
          <button type="button" class="btn danger" data-testid="confirm-delete" onClick=${remove}>Delete</button>
          <button type="button" class="btn" onClick=${() => setConfirming(false)}>Cancel</button></span>`
        : html`<button type="button" class="link danger" data-testid="delete-dashboard" onClick=${() => setConfirming(true)}>Delete</button>`)}
    </td>
  </tr>`;
}

export function DashboardsPage({ loc }) {
  const query = loc.query.get('query') || '';
  const tag = loc.query.get('tag') || '';
  const [search, setSearch] = useState(query);
  const [importing, setImporting] = useState(loc.query.get('import') === '1');
  const { loading, error, data, reload } = useAsync(
    (signal) => api('/lookout/api/v1/dashboards', { params: { query, tag }, signal }).then((r) => r.dashboards || []),
    [query, tag]);
  const dashboards = data || [];
  useEffect(() => {
    const t = setTimeout(() => setQueryParams({ query: search.trim() }), 250);
    return () => clearTimeout(t);
  }, [search]);
  const tags = [...new Set(dashboards.flatMap((d) => d.tags || []))].sort();
  return html`<div class="page dashboards-page">
    <div class="toolbar">
      <h1>Dashboards</h1><span class="spacer"></span>
      <button type="button" class="btn" data-testid="import-dashboard" onClick=${() => setImporting(!importing)}>Import</button>
      <${Link} href="/ui/d/new" class="btn primary" data-testid="new-dashboard">New dashboard<//>
    </div>
    ${importing && html`<${ImportForm} onClose=${() => setImporting(false)} onImported=${reload} />`}
    <div class="toolbar">
      <input type="search" data-testid="dashboard-search" placeholder="Search dashboards by title" size="40"
        value=${search} onInput=${(e) => setSearch(e.target.value)} />
      <label>Tag <select data-testid="dashboard-tag" value=${tag} onChange=${(e) => setQueryParams({ tag: e.target.value })}>
        <option value="">any</option>
        ${[...new Set([...tags, ...(tag ? [tag] : [])])].map((t) => html`<option value=${t}>${t}</option>`)}
      </select></label>
    </div>
    ${error ? html`<div class="error-box">Cannot list dashboards: ${error.message}</div>`
      : loading ? html`<p class="muted">Loading…</p>`
      : dashboards.length === 0 ? html`<p class="empty" data-testid="no-dashboards">${query || tag ? 'No dashboard matches.' : 'No dashboards yet.'}</p>`
      : html`<table class="data dashboards-table" data-testid="dashboards-table">
          <thead><tr><th>Title</th><th>Tags</th><th>Updated</th><th>Version</th><th></th></tr></thead>
          <tbody>${sortDashboards(dashboards).map((d) => html`<${DashboardRow} key=${d.uid} d=${d} onDeleted=${reload} />`)}</tbody>
        </table>`}
  </div>`;
}
