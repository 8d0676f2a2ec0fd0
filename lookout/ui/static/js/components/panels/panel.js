// One dashboard panel: its frame (title, description, loading state, error in words, "No
// data") around the view of its type. Each panel runs its own queries, with the dashboard's
// variables interpolated, so panels load in parallel and one bad query fails only its panel.
import { html, useEffect, useMemo, useState } from '../../preact.js';
import { autoStep } from '../../lib/time.js';
import { QueryError } from '../queryeditor.js';
import { builtinVariables, interpolate } from './interpolate.js';
import { logsPanel } from './logs.js';
import { statPanel } from './stat.js';
import { tablePanel } from './table.js';
import { textPanel } from './text.js';
import { timeseriesPanel } from './timeseries.js';
import { tracesPanel } from './traces.js';

export const PANEL_TYPES = {
  timeseries: timeseriesPanel,
  stat: statPanel,
  table: tablePanel,
  logs: logsPanel,
  traces: tracesPanel,
  text: textPanel,
};

// Grid geometry shared with dashboards.css: 24 columns, rows of ROW_PX with GAP_PX between.
export const ROW_PX = 30;
export const GAP_PX = 8;
const FRAME_PX = 44; // panel header + padding

export function panelBodyHeight(h) {
  const rows = Math.max(1, h || 8);
  return Math.max(40, rows * ROW_PX + (rows - 1) * GAP_PX - FRAME_PX);
}

// The targets with variables and built-ins replaced, plus the step they were planned for.
export function interpolatedTargets(panel, range, variables) {
  const step = autoStep(range.start, range.end, 300);
  const builtins = builtinVariables(range, step);
  const targets = (panel.targets || []).map((t) => ({ ...t, lang: t.lang || 'promql', expr: interpolate(t.expr || '', variables, builtins) }));
  return { targets, step };
}

function usePanelData(panel, kind, range, variables, tenant) {
  const [state, setState] = useState({ loading: kind.needsQueries, data: null, error: null });
  const { targets, step } = useMemo(() => interpolatedTargets(panel, range, variables), [panel, range, variables]);
  const key = JSON.stringify([panel.type, panel.options?.limit, targets, range, tenant]);
  useEffect(() => {
    if (!kind.needsQueries) return undefined;
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    kind.load({ targets, panel, range, step, tenant, signal: ctl.signal })
      .then((data) => setState({ loading: false, data, error: null }))
      .catch((error) => { if (error.name !== 'AbortError') setState({ loading: false, data: null, error }); });
    return () => ctl.abort();
  }, [key]);
  return { ...state, targets };
}

function PanelBody({ panel, kind, state, height, range, onZoom }) {
  if (!kind) return html`<div class="error-box">Unknown panel type "${panel.type}".</div>`;
  if (!kind.needsQueries) return html`<${kind.View} panel=${panel} height=${height} />`;
  if (!(panel.targets || []).some((t) => (t.expr || '').trim())) return html`<div class="empty">No query yet: edit the panel to add one.</div>`;
  if (state.error) {
    const { error } = state;
    return html`<div class="panel-error" data-testid="panel-error">
      ${error.refId && (panel.targets || []).length > 1 && html`<div class="muted">Query ${error.refId}:</div>`}
      <${QueryError} error=${error} query=${error.query} />
    </div>`;
  }
  if (state.data === null) return html`<div class="panel-loading" data-testid="panel-loading">Loading…</div>`;
  if (kind.isEmpty(state.data)) return html`<div class="empty panel-nodata" data-testid="panel-nodata">No data</div>`;
  return html`<${kind.View} panel=${panel} data=${state.data} height=${height} range=${range} onZoom=${onZoom} />`;
}

// Props: panel (model), range {start, end} ms, variables (resolved), tenant, onZoom(startMs,
// endMs), height (body px), actions (header buttons in edit mode), testid.
export function Panel({ panel, range, variables, tenant, onZoom, height, actions, testid = 'panel' }) {
  const kind = PANEL_TYPES[panel.type];
  // an unknown type runs no queries (as a text panel would) and says so in its body
  const state = usePanelData(panel, kind || textPanel, range, variables, tenant);
  return html`<section class=${`dash-panel panel-type-${panel.type}`} data-testid=${testid} data-panel-id=${panel.id}
      data-state=${state.error ? 'error' : state.loading ? 'loading' : 'done'}>
    <header class="dash-panel-header">
      <span class="dash-panel-title" data-testid="panel-title">${panel.title || ''}</span>
      ${panel.description && html`<span class="dash-panel-info" title=${panel.description}>i</span>`}
      ${state.loading && state.data !== null && html`<span class="dash-panel-spinner" title="Refreshing">⟳</span>`}
      <span class="spacer"></span>
      ${actions}
    </header>
    <div class="dash-panel-body">
      <${PanelBody} panel=${panel} kind=${kind} state=${state} height=${height} range=${range} onZoom=${onZoom} />
    </div>
  </section>`;
}
