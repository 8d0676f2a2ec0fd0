// The table panel: an instant query at the end of the range, one row per series, a column per
// label and the value (a "Value #A" column per query when there are several).
import { html } from '../../preact.js';
import { formatValue } from '../chart.js';
import { eachTarget, instantQuery } from './queries.js';

function samples(result) {
  switch (result.resultType) {
    case 'vector': return result.result.map((r) => ({ labels: r.metric || {}, value: r.value?.[1] }));
    case 'matrix': return result.result.map((r) => ({ labels: r.metric || {}, value: r.values?.[r.values.length - 1]?.[1] }));
    case 'scalar': case 'string': return [{ labels: {}, value: result.result?.[1] }];
    default: return [];
  }
}

// -> {columns: [label names], valueColumns: [refIds], rows: [{labels, values: {refId: value}}]}
async function loadTable({ targets, ...opts }) {
  const answers = await eachTarget(targets, (t) => instantQuery(t, opts));
  const rows = new Map();
  const columns = new Set();
  for (const { target, result } of answers) {
    for (const { labels, value } of samples(result)) {
      Object.keys(labels).forEach((k) => columns.add(k));
      const key = JSON.stringify(Object.entries(labels).sort());
      if (!rows.has(key)) rows.set(key, { labels, values: {} });
      rows.get(key).values[target.refId] = value;
    }
  }
  return { columns: [...columns].sort(), valueColumns: answers.map((a) => a.target.refId), rows: [...rows.values()] };
}

export const tablePanel = {
  label: 'Table',
  needsQueries: true,
  languages: ['promql', 'logql'],
  load: loadTable,
  isEmpty: (data) => data.rows.length === 0,
  View({ panel, data, height }) {
    const many = data.valueColumns.length > 1;
    return html`<div class="panel-table" style=${`max-height:${height}px`}>
      <table class="data" data-testid="panel-table">
        <thead><tr>${data.columns.map((c) => html`<th>${c}</th>`)}
          ${data.valueColumns.map((r) => html`<th class="num">${many ? `Value #${r}` : 'Value'}</th>`)}</tr></thead>
        <tbody>${data.rows.map((row) => html`<tr>
          ${data.columns.map((c) => html`<td>${row.labels[c] ?? ''}</td>`)}
          ${data.valueColumns.map((r) => html`<td class="num">${row.values[r] === undefined ? '' : formatValue(+row.values[r], panel.unit)}</td>`)}
        </tr>`)}</tbody>
      </table>
    </div>`;
  },
};
