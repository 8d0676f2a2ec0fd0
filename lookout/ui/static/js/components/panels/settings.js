// Dashboard settings in edit mode: title, description, tags, tenant, default time range and
// refresh; the variables (name, type, query, options, multi, All); and the JSON model.
import { html, useState } from '../../preact.js';

export const REFRESH_CHOICES = ['', '10s', '30s', '1m', '5m'];
const VARIABLE_TYPES = ['query', 'custom', 'constant', 'textbox', 'interval'];

export function DashboardSettings({ dashboard, onChange }) {
  const set = (patch) => onChange({ ...dashboard, ...patch });
  const time = dashboard.time || { from: 'now-1h', to: 'now' };
  return html`<div class="panel dash-settings" data-testid="dashboard-settings">
    <label class="field">Title <input data-testid="settings-title" value=${dashboard.title || ''} onInput=${(e) => set({ title: e.target.value })} /></label>
    <label class="field">Description <input value=${dashboard.description || ''} onInput=${(e) => set({ description: e.target.value })} /></label>
    <label class="field">Tags (comma separated) <input data-testid="settings-tags" value=${(dashboard.tags || []).join(', ')}
      onChange=${(e) => set({ tags: e.target.value.split(',').map((t) => t.trim()).filter(Boolean) })} /></label>
    <label class="field">Tenant <input data-testid="settings-tenant" value=${dashboard.tenant || ''}
      placeholder="empty = the viewer's tenant" onInput=${(e) => set({ tenant: e.target.value.trim() || null })} /></label>
    <div class="field-row">
      <label class="field">Default from <input value=${time.from} onInput=${(e) => set({ time: { ...time, from: e.target.value } })} /></label>
      <label class="field">Default to <input value=${time.to} onInput=${(e) => set({ time: { ...time, to: e.target.value } })} /></label>
      <label class="field">Auto refresh <select value=${dashboard.refresh || ''} onChange=${(e) => set({ refresh: e.target.value || null })}>
        ${REFRESH_CHOICES.map((r) => html`<option value=${r}>${r || 'off'}</option>`)}</select></label>
    </div>
  </div>`;
}

function VariableRow({ variable, onChange, onRemove, onMove }) {
  const set = (patch) => onChange({ ...variable, ...patch });
  const hasOptions = variable.type === 'custom' || variable.type === 'interval';
  return html`<div class="panel var-edit" data-testid="variable-editor">
    <div class="field-row">
      <label class="field">Name <input data-testid="variable-name" value=${variable.name} onInput=${(e) => set({ name: e.target.value.replace(/\W/g, '') })} /></label>
      <label class="field">Label <input value=${variable.label || ''} onInput=${(e) => set({ label: e.target.value })} /></label>
      <label class="field">Type <select data-testid="variable-type" value=${variable.type} onChange=${(e) => set({ type: e.target.value })}>
        ${VARIABLE_TYPES.map((t) => html`<option value=${t}>${t}</option>`)}</select></label>
      ${variable.type === 'query' && html`<label class="field">Language <select value=${variable.lang || 'promql'} onChange=${(e) => set({ lang: e.target.value })}>
        <option value="promql">PromQL</option><option value="logql">LogQL</option></select></label>`}
      <span class="spacer"></span>
      <button type="button" class="link" onClick=${() => onMove(-1)} title="Move up">↑</button>
      <button type="button" class="link" onClick=${() => onMove(1)} title="Move down">↓</button>
      <button type="button" class="link danger" onClick=${onRemove}>Remove</button>
    </div>
    ${hasOptions ? html`<label class="field">Values (comma separated) <input data-testid="variable-options"
        value=${(variable.options || []).join(', ')}
        onChange=${(e) => set({ options: e.target.value.split(',').map((v) => v.trim()).filter(Boolean) })} /></label>`
      : html`<label class="field">${variable.type === 'query' ? 'Query: label_values(metric, label), label_values(label), metrics(regex), query_result(expr)' : 'Value'}
        <input class="mono" data-testid="variable-query" value=${variable.query || ''} onInput=${(e) => set({ query: e.target.value })} /></label>`}
    ${variable.type === 'query' && html`<div class="field-row">
      <label class="field">Regex <input class="mono" data-testid="variable-regex" placeholder="/(.*)/ keeps the first group"
        value=${variable.regex || ''} onInput=${(e) => set({ regex: e.target.value })} /></label>
      <label class="field">Refresh <select data-testid="variable-refresh" value=${variable.refresh || 'load'} onChange=${(e) => set({ refresh: e.target.value })}>
        <option value="load">On dashboard load</option><option value="time">On time range change</option></select></label>
    </div>`}
    ${(variable.type === 'query' || variable.type === 'custom') && html`<div class="field-row">
      <label class="check"><input type="checkbox" checked=${!!variable.multi} onChange=${(e) => set({ multi: e.target.checked })} /> Multi-value</label>
      <label class="check"><input type="checkbox" checked=${!!variable.includeAll} onChange=${(e) => set({ includeAll: e.target.checked })} /> Include All</label>
    </div>`}
  </div>`;
}

export function VariablesEditor({ variables, onChange }) {
  const list = variables || [];
  const replace = (i, v) => onChange(list.map((x, j) => (j === i ? v : x)));
  const move = (i, d) => {
    const j = i + d;
    if (j < 0 || j >= list.length) return;
    const next = [...list];
    [next[i], next[j]] = [next[j], next[i]];
    onChange(next);
  };
  const add = () => onChange([...list, { name: `var${list.length + 1}`, label: '', type: 'query', lang: 'promql', query: '', options: [], multi: false, includeAll: false, current: null, regex: '', refresh: 'load' }]);
  return html`<div data-testid="variables-editor">
    ${list.length === 0 && html`<p class="empty">No variables. A variable ($name in queries) becomes a picker above the panels.</p>`}
    ${list.map((v, i) => html`<${VariableRow} key=${i} variable=${v} onChange=${(nv) => replace(i, nv)}
      onRemove=${() => onChange(list.filter((_, j) => j !== i))} onMove=${(d) => move(i, d)} />`)}
    <button type="button" class="btn" data-testid="add-variable" onClick=${add}>+ Variable</button>
  </div>`;
}

export function JsonModel({ dashboard }) {
  const text = JSON.stringify(dashboard, null, 2);
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };
  return html`<div class="panel">
    <div class="toolbar"><span class="muted">The dashboard's JSON model (what Save stores).</span><span class="spacer"></span>
      <button type="button" class="btn" onClick=${copy}>${copied ? 'Copied' : 'Copy'}</button></div>
    <pre class="dash-json" data-testid="dashboard-json">${text}</pre>
  </div>`;
}
