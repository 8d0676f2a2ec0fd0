// The panel editor: a live preview of the panel over its settings — title, type, unit,
// queries (with the language's autocomplete), legend, reduce, limit, text, and its place
// on the 24-column grid.
import { html, useEffect, useState } from '../../preact.js';
import { logqlCompleter, promqlCompleter, traceqlCompleter } from '../../lib/completers.js';
import { QueryEditor } from '../queryeditor.js';
import { PANEL_TYPES, Panel, panelBodyHeight } from './panel.js';
import { REDUCERS } from './stat.js';

const COMPLETERS = { promql: promqlCompleter, logql: logqlCompleter, traceql: traceqlCompleter };
const UNITS = [['', 'none'], ['short', 'short'], ['s', 'seconds (s)'], ['ms', 'milliseconds (ms)'],
  ['bytes', 'bytes'], ['percent', 'percent (0-100)'], ['percentunit', 'percent (0-1)'], ['reqps', 'requests/sec']];

// value, settled for ms; flush() takes the latest at once (Enter in a query).
function useDebounced(value, ms) {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value]);
  return [v, () => setV(value)];
}

function nextRefId(targets) {
  const used = new Set(targets.map((t) => t.refId));
  for (let i = 0; i < 26; i++) {
    const id = String.fromCharCode(65 + i);
    if (!used.has(id)) return id;
  }
  return `Q${targets.length + 1}`;
}

function TargetEditor({ target, languages, onChange, onRemove, onRun }) {
  const set = (patch) => onChange({ ...target, ...patch });
  const lang = languages.includes(target.lang) ? target.lang : languages[0];
  return html`<div class="target-editor" data-testid="target-editor">
    <div class="target-head">
      <strong>${target.refId}</strong>
      ${languages.length > 1 ? html`<select data-testid="target-lang" value=${lang} onChange=${(e) => set({ lang: e.target.value })}>
        ${languages.map((l) => html`<option value=${l}>${l === 'promql' ? 'PromQL' : l === 'logql' ? 'LogQL' : 'TraceQL'}</option>`)}
      </select>` : html`<span class="muted">${lang === 'logql' ? 'LogQL' : lang === 'traceql' ? 'TraceQL' : 'PromQL'}</span>`}
      <span class="spacer"></span>
      <button type="button" class="link" onClick=${onRemove} title="Remove this query">Remove</button>
    </div>
    <${QueryEditor} value=${target.expr || ''} language=${lang} completer=${COMPLETERS[lang]} rows=${2}
      onChange=${(expr) => set({ expr })} onRun=${onRun} />
    ${lang !== 'traceql' && html`<label class="field inline">Legend <input data-testid="target-legend" value=${target.legend || ''}
      placeholder="{{label}}" onInput=${(e) => set({ legend: e.target.value })} /></label>`}
  </div>`;
}

function GridFields({ gridPos, onChange }) {
  const field = (k, min, max) => html`<label class="field inline">${k}
    <input type="number" data-testid=${`grid-${k}`} min=${min} max=${max} value=${gridPos[k]}
      onInput=${(e) => { const n = parseInt(e.target.value, 10); if (!Number.isNaN(n)) onChange({ ...gridPos, [k]: Math.max(min, Math.min(max, n)) }); }} /></label>`;
  return html`<div class="grid-fields">${field('x', 0, 23)}${field('y', 0, 999)}${field('w', 1, 24)}${field('h', 2, 40)}</div>`;
}

// Props: panel, onChange(panel), onClose(), range, variables, tenant, onZoom.
export function PanelEditor({ panel, onChange, onClose, range, variables, tenant, onZoom }) {
  const [preview, flushPreview] = useDebounced(panel, 500);
  const kind = PANEL_TYPES[panel.type] || PANEL_TYPES.timeseries;
  const languages = kind.languages || [];
  const set = (patch) => onChange({ ...panel, ...patch });
  const setOption = (patch) => set({ options: { ...(panel.options || {}), ...patch } });
  const targets = panel.targets || [];
  const setTarget = (i, t) => set({ targets: targets.map((x, j) => (j === i ? t : x)) });
  const changeType = (type) => {
    const langs = PANEL_TYPES[type].languages || [];
    const fixed = langs.length ? targets.map((t) => (langs.includes(t.lang) ? t : { ...t, lang: langs[0] })) : targets;
    set({ type, targets: fixed });
  };
  const addTarget = () => set({ targets: [...targets, { refId: nextRefId(targets), lang: languages[0] || 'promql', expr: '', legend: '' }] });
  return html`<div class="panel-editor" data-testid="panel-editor">
    <div class="toolbar">
      <h2>Edit panel</h2><span class="spacer"></span>
      <button type="button" class="btn primary" data-testid="panel-editor-close" onClick=${onClose}>Back to dashboard</button>
    </div>
    <div class="panel-editor-preview">
      <${Panel} panel=${preview} range=${range} variables=${variables} tenant=${tenant}
        onZoom=${onZoom} height=${panelBodyHeight(Math.min(panel.gridPos?.h || 8, 12))} testid="panel-preview" />
    </div>
    <div class="panel-editor-form">
      <div class="panel-editor-queries">
        ${kind.needsQueries ? html`
          ${targets.map((t, i) => html`<${TargetEditor} key=${t.refId} target=${t} languages=${languages}
            onChange=${(nt) => setTarget(i, nt)} onRemove=${() => set({ targets: targets.filter((_, j) => j !== i) })}
            onRun=${flushPreview} />`)}
          <button type="button" class="btn" data-testid="add-query" onClick=${addTarget}>+ Query</button>`
        : html`<label class="field">Text (Markdown)
            <textarea data-testid="panel-content" rows="12" value=${panel.options?.content || ''}
              onInput=${(e) => setOption({ content: e.target.value })}></textarea></label>`}
      </div>
      <div class="panel-editor-options">
        <label class="field">Title <input data-testid="panel-title-input" value=${panel.title || ''} onInput=${(e) => set({ title: e.target.value })} /></label>
        <label class="field">Type <select data-testid="panel-type" value=${panel.type} onChange=${(e) => changeType(e.target.value)}>
          ${Object.entries(PANEL_TYPES).map(([k, v]) => html`<option value=${k}>${v.label}</option>`)}
        </select></label>
        <label class="field">Description <input value=${panel.description || ''} onInput=${(e) => set({ description: e.target.value })} /></label>
        ${['timeseries', 'stat', 'table'].includes(panel.type) && html`<label class="field">Unit
          <select data-testid="panel-unit" value=${panel.unit || ''} onChange=${(e) => set({ unit: e.target.value || undefined })}>
            ${UNITS.map(([v, l]) => html`<option value=${v}>${l}</option>`)}</select></label>`}
        ${panel.type === 'stat' && html`<label class="field">Reduce
          <select data-testid="panel-reduce" value=${panel.options?.reduce || 'last'} onChange=${(e) => setOption({ reduce: e.target.value })}>
            ${Object.keys(REDUCERS).map((r) => html`<option value=${r}>${r}</option>`)}</select></label>`}
        ${(panel.type === 'logs' || panel.type === 'traces') && html`<label class="field">Limit
          <input type="number" min="1" max="5000" value=${panel.options?.limit || (panel.type === 'logs' ? 100 : 20)}
            onInput=${(e) => setOption({ limit: parseInt(e.target.value, 10) || undefined })} /></label>`}
        <div class="field">Position and size (24 columns wide)
          <${GridFields} gridPos=${panel.gridPos} onChange=${(gridPos) => set({ gridPos })} /></div>
      </div>
    </div>
  </div>`;
}
