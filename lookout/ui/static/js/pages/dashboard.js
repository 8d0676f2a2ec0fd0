// One dashboard at /ui/d/:uid (and a new one at /ui/d/new): its variables, its panels on the
// 24-column grid, the time range and auto refresh (both in the URL, with var-<name>=... like
// Grafana, so a link reopens the same view), and edit mode — add, edit, move and delete
// panels, variables, settings, Save with Grafana's version check, Save as, Export JSON.
import { html, useEffect, useMemo, useRef, useState } from '../preact.js';
import { api } from '../lib/api.js';
import { Link, navigate, setQueryParams } from '../lib/router.js';
import { DEFAULT_FROM, DEFAULT_TO, parseDuration, resolveRange } from '../lib/time.js';
import { TimeRangePicker } from '../components/timerange.js';
import { bottom, compact, movePanel } from '../components/panels/layout.js';
import { PANEL_TYPES, Panel, panelBodyHeight } from '../components/panels/panel.js';
import { PanelEditor } from '../components/panels/editor.js';
import { DashboardSettings, JsonModel, REFRESH_CHOICES, VariablesEditor } from '../components/panels/settings.js';
import { VariablesBar } from '../components/panels/varbar.js';
import { ALL } from '../components/panels/interpolate.js';
import { resolveVariables } from '../components/panels/variables.js';

const NEW_UID = 'new';

function newDashboard() {
  return { uid: null, title: 'New dashboard', description: '', tags: [], tenant: null,
    time: { from: DEFAULT_FROM, to: DEFAULT_TO }, refresh: null, variables: [], panels: [], version: null };
}

function newPanel(panels) {
  const id = panels.reduce((m, p) => Math.max(m, p.id || 0), 0) + 1;
  return { id, title: 'New panel', type: 'timeseries', gridPos: { x: 0, y: bottom(panels), w: 12, h: 8 },
    targets: [{ refId: 'A', lang: 'promql', expr: '', legend: null }], unit: null, description: '', options: {} };
}

// The model as the server takes it: no empty queries, no queries on a text panel, and the
// variables' current selections as their saved defaults.
function toSaved(draft, variables) {
  const panels = draft.panels.map((p) => ({
    ...p,
    targets: PANEL_TYPES[p.type]?.needsQueries ? (p.targets || []).filter((t) => (t.expr || '').trim()) : [],
  }));
  const vars = draft.variables.map((v) => {
    const r = variables && variables[v.name];
    if (!r || v.type === 'constant') return v;
    const current = r.isAll ? ALL : (v.multi ? r.values : (r.values[0] ?? null));
    return { ...v, current };
  });
  return { ...draft, panels, variables: vars };
}

// {name: [values]} from the URL's var-<name>=... parameters.
function urlSelections(query) {
  const out = {};
  for (const [k, v] of query.entries()) {
    if (k.startsWith('var-')) (out[k.slice(4)] = out[k.slice(4)] || []).push(v);
  }
  return out;
}

function setVariableInUrl(name, values) {
  const qs = new URLSearchParams(window.location.search);
  qs.delete(`var-${name}`);
  values.forEach((v) => qs.append(`var-${name}`, v));
  navigate(`${window.location.pathname}?${qs}`);
}

function useTick(refresh) {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ms = refresh ? parseDuration(refresh) : null;
    if (!ms) return undefined;
    const id = setInterval(() => setTick((t) => t + 1), Math.max(ms, 5000));
    return () => clearInterval(id);
  }, [refresh]);
  return [tick, () => setTick((t) => t + 1)];
}

// Leaving with unsaved changes asks first: closing the tab, and in-app links.
function useLeaveGuard(dirty) {
  useEffect(() => {
    if (!dirty) return undefined;
    const onBeforeUnload = (e) => { e.preventDefault(); e.returnValue = ''; };
    const onClick = (e) => {
      const a = e.target.closest && e.target.closest('a[href]');
      if (!a || a.target === '_blank') return;
      const url = new URL(a.href, window.location.href);
      if (url.origin !== window.location.origin || url.pathname === window.location.pathname) return;
      if (!window.confirm('This dashboard has unsaved changes. Leave and discard them?')) {
        e.preventDefault();
        e.stopPropagation();
      }
    };
    window.addEventListener('beforeunload', onBeforeUnload);
    document.addEventListener('click', onClick, true);
    return () => {
      window.removeEventListener('beforeunload', onBeforeUnload);
      document.removeEventListener('click', onClick, true);
    };
  }, [dirty]);
}

function useDashboard(uid) {
  const [state, setState] = useState(uid === NEW_UID
    ? { loading: false, error: null, meta: { shipped: false, version: null } } : { loading: true, error: null, meta: null });
  const [draft, setDraft] = useState(uid === NEW_UID ? newDashboard() : null);
  const [savedJson, setSavedJson] = useState(uid === NEW_UID ? JSON.stringify(newDashboard()) : null);
  useEffect(() => {
    if (uid === NEW_UID) return;
    api(`/lookout/api/v1/dashboards/${encodeURIComponent(uid)}`)
      .then(({ dashboard, meta }) => {
        setDraft(dashboard);
        setSavedJson(JSON.stringify(dashboard));
        setState({ loading: false, error: null, meta });
      })
      .catch((error) => setState({ loading: false, error, meta: null }));
  }, [uid]);
  return { ...state, draft, setDraft, savedJson, setSavedJson, setMeta: (meta) => setState((s) => ({ ...s, meta })) };
}

function RefreshPicker({ value, onChange, onRefresh }) {
  return html`<span class="refresh-picker">
    <button type="button" class="btn" title="Refresh now" data-testid="refresh-now" onClick=${onRefresh}>↻</button>
    <select data-testid="refresh-picker" value=${value} onChange=${(e) => onChange(e.target.value)} title="Auto refresh">
      ${[...new Set([...REFRESH_CHOICES, value])].map((r) => html`<option value=${r}>${r ? `every ${r}` : 'auto refresh off'}</option>`)}
    </select>
  </span>`;
}

function PanelActions({ panel, onEdit, onMove, onRemove }) {
  const b = (action, label, title) => html`<button type="button" class="icon-btn" title=${title}
    data-testid=${`panel-${action}`} onClick=${() => onMove(action)}>${label}</button>`;
  return html`<span class="dash-panel-actions">
    <button type="button" class="icon-btn" title="Edit panel" data-testid="panel-edit" onClick=${() => onEdit(panel.id)}>✎</button>
    ${b('up', '↑', 'Move up')}${b('down', '↓', 'Move down')}${b('left', '←', 'Move left')}${b('right', '→', 'Move right')}
    ${b('narrower', '⇤', 'Narrower')}${b('wider', '⇥', 'Wider')}${b('shorter', '▴', 'Shorter')}${b('taller', '▾', 'Taller')}
    <button type="button" class="icon-btn danger" title="Remove panel" data-testid="panel-remove" onClick=${() => onRemove(panel.id)}>✕</button>
  </span>`;
}

function PanelGrid({ panels, editing, ctx, onEdit, onMove, onRemove }) {
  const laid = useMemo(() => compact(panels), [panels]);
  if (!laid.length) {
    return html`<div class="empty panel">This dashboard has no panels yet.${editing ? ' Use "Add panel" to make one.' : ''}</div>`;
  }
  return html`<div class="dash-grid" data-testid="dashboard-grid">
    ${laid.map((p) => {
      const g = p.gridPos;
      return html`<div class="dash-cell" key=${p.id} style=${`grid-column:${g.x + 1} / span ${g.w};grid-row:${g.y + 1} / span ${g.h}`}>
        <${Panel} panel=${p} range=${ctx.range} variables=${ctx.variables} tenant=${ctx.tenant} onZoom=${ctx.onZoom}
          height=${panelBodyHeight(g.h)}
          actions=${editing && html`<${PanelActions} panel=${p} onEdit=${onEdit} onMove=${(a) => onMove(p.id, a)} onRemove=${onRemove} />`} />
      </div>`;
    })}
  </div>`;
}

// Save, Save as and their answers: the version conflict offers to overwrite.
function SaveBar({ status, onOverwrite, onDismiss }) {
  if (!status) return null;
  if (status.busy) return html`<div class="muted save-status">Saving…</div>`;
  if (status.saved) return html`<div class="save-status ok" data-testid="save-status">Saved as version ${status.saved}.</div>`;
  return html`<div class="error-box save-error" data-testid="save-error">
    ${status.error.message}
    ${status.error.status === 412 && html` <button type="button" class="btn danger" data-testid="save-overwrite" onClick=${onOverwrite}>Overwrite</button>`}
    <button type="button" class="link" onClick=${onDismiss}>Dismiss</button>
  </div>`;
}

function SaveAsForm({ initialTitle, onSave, onCancel }) {
  const [title, setTitle] = useState(initialTitle);
  const submit = (e) => {
    e.preventDefault();
    if (title.trim()) onSave(title.trim());
  };
  return html`<form class="panel save-as" onSubmit=${submit} data-testid="save-as-form">
    <label class="field inline">Title of the new dashboard
      <input data-testid="save-as-title" value=${title} size="40" onInput=${(e) => setTitle(e.target.value)} /></label>
    <button type="submit" class="btn primary" data-testid="save-as-submit">Save</button>
    <button type="button" class="btn" onClick=${onCancel}>Cancel</button>
  </form>`;
}

export function DashboardPage({ loc, params }) {
  const uid = params.uid;
  const isNew = uid === NEW_UID;
  const dash = useDashboard(uid);
  const { draft, setDraft, meta } = dash;
  const [editing, setEditing] = useState(isNew);
  const [tab, setTab] = useState('panels');
  const [editPanelId, setEditPanelId] = useState(null);
  const [showJson, setShowJson] = useState(false);
  const [saveStatus, setSaveStatus] = useState(null);
  const [saveAsTitle, setSaveAsTitle] = useState(null);
  const [resolved, setResolved] = useState(null);
  const optionsCache = useRef(new Map());

  const from = loc.query.get('from') || draft?.time?.from || DEFAULT_FROM;
  const to = loc.query.get('to') || draft?.time?.to || DEFAULT_TO;
  const urlRefresh = loc.query.get('refresh');
  const refresh = urlRefresh === 'off' ? '' : (urlRefresh || draft?.refresh || '');
  const [tick, refreshNow] = useTick(refresh);
  const tenant = draft?.tenant || undefined;
  const rangeResult = useMemo(() => {
    try {
      return { range: resolveRange(from, to) };
    } catch (e) {
      return { error: e.message };
    }
  }, [from, to, tick]);

  const selections = urlSelections(loc.query);
  const selectionsKey = JSON.stringify(selections);
  const variablesKey = draft ? JSON.stringify(draft.variables) : '';
  // variables that list their options again on a time range change (and on every refresh)
  const timeKey = draft?.variables?.some((v) => v.type === 'query' && v.refresh === 'time') && rangeResult.range
    ? `${rangeResult.range.start}-${rangeResult.range.end}` : '';
  useEffect(() => {
    if (!draft || !rangeResult.range) return undefined;
    let alive = true;
    resolveVariables(draft.variables, selections, rangeResult.range, tenant, optionsCache.current)
      .then((r) => alive && setResolved(r));
    return () => { alive = false; };
  }, [variablesKey, selectionsKey, tenant, !!draft, timeKey]);

  const dirty = !!draft && editing && JSON.stringify(draft) !== dash.savedJson;
  useLeaveGuard(dirty);

  if (dash.loading) return html`<div class="page"><p class="muted">Loading dashboard…</p></div>`;
  if (dash.error) {
    return html`<div class="page"><div class="error-box" data-testid="dashboard-error">
      ${dash.error.status === 404 ? `There is no dashboard "${uid}".` : `Cannot load dashboard "${uid}": ${dash.error.message}`}
      <${Link} href="/ui/dashboards"> All dashboards<//></div></div>`;
  }

  const shipped = !!meta?.shipped;
  const ctx = {
    range: rangeResult.range,
    variables: resolved?.variables || {},
    tenant,
    onZoom: (s, e) => setQueryParams({ from: String(Math.round(s)), to: String(Math.round(e)) }, { replace: false }),
  };
  const setPanels = (panels) => setDraft({ ...draft, panels });

  const doSave = async ({ overwrite = false, title = null } = {}) => {
    setSaveStatus({ busy: true });
    const model = toSaved(draft, resolved?.variables);
    const asNew = title !== null || isNew;
    const body = { dashboard: asNew ? { ...model, uid: undefined, version: null, title: title || model.title } : model, overwrite };
    try {
      const res = await api('/lookout/api/v1/dashboards', { method: 'POST', body });
      setSaveAsTitle(null);
      if (asNew) {
        dash.setSavedJson(JSON.stringify(draft));
        navigate(`/ui/d/${encodeURIComponent(res.uid)}`);
        return;
      }
      const next = { ...model, version: res.version };
      setDraft(next);
      dash.setSavedJson(JSON.stringify(next));
      dash.setMeta({ ...meta, version: res.version });
      setSaveStatus({ saved: res.version });
    } catch (error) {
      setSaveStatus({ error });
    }
  };
  const save = () => (isNew ? setSaveAsTitle(draft.title) : doSave());
  const discard = () => {
    if (dirty && !window.confirm('Discard the unsaved changes?')) return;
    setDraft(JSON.parse(dash.savedJson));
    setEditing(isNew);
    setEditPanelId(null);
    setSaveStatus(null);
    if (isNew) navigate('/ui/dashboards');
  };
  const addPanel = () => {
    const p = newPanel(draft.panels);
    setPanels([...draft.panels, p]);
    setTab('panels');
    setEditPanelId(p.id);
  };
  const editedPanel = editPanelId !== null ? draft.panels.find((p) => p.id === editPanelId) : null;

  return html`<div class="page dashboard-page" data-testid="dashboard-page">
    <div class="toolbar dash-toolbar">
      <${Link} href="/ui/dashboards" class="muted">Dashboards /<//>
      <h1 data-testid="dashboard-title">${draft.title}</h1>
      ${shipped && html`<span class="badge" data-testid="shipped-badge" title="Shipped with Lookout: save a copy to change it">shipped · read-only</span>`}
      ${(draft.tags || []).map((t) => html`<span class="badge tag">${t}</span>`)}
      ${dirty && html`<span class="badge warn" data-testid="unsaved">unsaved changes</span>`}
      <span class="spacer"></span>
      <${TimeRangePicker} from=${from} to=${to} onChange=${(f, t) => setQueryParams({ from: f, to: t }, { replace: false })} />
      <${RefreshPicker} value=${refresh} onRefresh=${refreshNow}
        onChange=${(r) => setQueryParams({ refresh: r || (draft.refresh ? 'off' : '') })} />
      ${editing ? html`
        <button type="button" class="btn" data-testid="add-panel" onClick=${addPanel}>+ Add panel</button>
        ${shipped ? html`<button type="button" class="btn primary" data-testid="save-copy" onClick=${() => setSaveAsTitle(`${draft.title} (copy)`)}>Save as copy</button>`
          : html`<button type="button" class="btn primary" data-testid="save" onClick=${save}>Save</button>
            ${!isNew && html`<button type="button" class="btn" data-testid="save-as" onClick=${() => setSaveAsTitle(`${draft.title} (copy)`)}>Save as…</button>`}`}
        <button type="button" class="btn" data-testid="discard" onClick=${discard}>${dirty ? 'Discard' : 'Exit edit'}</button>`
      : html`
        <button type="button" class="btn" data-testid="edit" onClick=${() => setEditing(true)}>Edit</button>
        ${shipped && html`<button type="button" class="btn" data-testid="save-copy" onClick=${() => setSaveAsTitle(`${draft.title} (copy)`)}>Save as copy</button>`}
        <button type="button" class="btn" data-testid="export-json" onClick=${() => setShowJson(!showJson)}>${showJson ? 'Hide JSON' : 'Export JSON'}</button>`}
    </div>
    ${draft.description && !editing && html`<p class="muted dash-description">${draft.description}</p>`}
    ${saveAsTitle !== null && html`<${SaveAsForm} initialTitle=${saveAsTitle} onSave=${(title) => doSave({ title })} onCancel=${() => setSaveAsTitle(null)} />`}
    <${SaveBar} status=${saveStatus} onOverwrite=${() => doSave({ overwrite: true })} onDismiss=${() => setSaveStatus(null)} />
    ${showJson && !editing && html`<${JsonModel} dashboard=${draft} />`}
    ${editing && html`<div class="tabs" data-testid="edit-tabs">
      ${[['panels', 'Panels'], ['variables', 'Variables'], ['settings', 'Settings'], ['json', 'JSON model']].map(([k, label]) => html`
        <button type="button" class=${tab === k ? 'active' : ''} data-testid=${`tab-${k}`} onClick=${() => { setTab(k); setEditPanelId(null); }}>${label}</button>`)}
    </div>`}
    ${editing && tab === 'settings' && html`<${DashboardSettings} dashboard=${draft} onChange=${setDraft} />`}
    ${editing && tab === 'variables' && html`<${VariablesEditor} variables=${draft.variables} onChange=${(variables) => setDraft({ ...draft, variables })} />`}
    ${editing && tab === 'json' && html`<${JsonModel} dashboard=${toSaved(draft, resolved?.variables)} />`}
    ${(!editing || tab === 'panels') && html`
      ${resolved && html`<${VariablesBar} variables=${resolved.variables} errors=${resolved.errors} onChange=${(name, values) => setVariableInUrl(name, values)} />`}
      ${rangeResult.error ? html`<div class="error-box">${rangeResult.error}</div>`
        : !resolved ? html`<p class="muted">Resolving variables…</p>`
        : editedPanel ? html`<${PanelEditor} panel=${editedPanel} range=${ctx.range} variables=${ctx.variables} tenant=${tenant}
            onZoom=${ctx.onZoom} onClose=${() => setEditPanelId(null)}
            onChange=${(p) => setPanels(draft.panels.map((x) => (x.id === p.id ? p : x)))} />`
        : html`<${PanelGrid} panels=${draft.panels} editing=${editing} ctx=${ctx} onEdit=${setEditPanelId}
            onMove=${(id, action) => setPanels(movePanel(draft.panels, id, action))}
            onRemove=${(id) => setPanels(draft.panels.filter((p) => p.id !== id))} />`}`}
  </div>`;
}
