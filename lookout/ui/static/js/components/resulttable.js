// The table view of a Prometheus query result, as Prometheus' own console shows it: one row
// per series (labels, value), sortable by either column. A vector, scalar or string has one
// value per row; a matrix shows its samples ("value @ time"). Many rows are virtualized.
//
// <${ResultTable} data=${{resultType, result}} unit height />
import { html, useMemo, useState } from '../preact.js';
import { VirtualList } from './vlist.js';
import { formatValue, seriesName } from './chart.js';
import { formatTime } from '../lib/time.js';

const ROW_HEIGHT = 30;
const VIRTUAL_FROM = 100; // rows; fewer render as plain rows

function toRows({ resultType, result }) {
  if (resultType === 'scalar' || resultType === 'string') {
    return [{ name: resultType, value: String(result[1]), num: Number(result[1]), time: result[0] }];
  }
  if (resultType === 'matrix') {
    return (result || []).map((r) => {
      const last = r.values[r.values.length - 1];
      return { name: seriesName(r.metric), value: r.values.map(([t, v]) => `${v} @${t}`).join('  '),
        num: last ? Number(last[1]) : NaN, time: last ? last[0] : null };
    });
  }
  return (result || []).map((r) => ({ name: seriesName(r.metric), value: r.value[1], num: Number(r.value[1]), time: r.value[0] }));
}

function compare(key) {
  if (key === 'name') return (a, b) => a.name.localeCompare(b.name);
  return (a, b) => (Number.isNaN(a.num) ? -Infinity : a.num) - (Number.isNaN(b.num) ? -Infinity : b.num);
}

export function ResultTable({ data, unit, height = 480 }) {
  const [sort, setSort] = useState({ key: null, desc: false });
  const rows = useMemo(() => {
    const r = toRows(data);
    if (!sort.key) return r;
    const sorted = [...r].sort(compare(sort.key));
    return sort.desc ? sorted.reverse() : sorted;
  }, [data, sort]);

  const header = (key, label) => {
    const active = sort.key === key;
    const click = () => setSort({ key, desc: active ? !sort.desc : key === 'value' });
    return html`<button type="button" class=${`rt-sort${active ? ' active' : ''}`} data-testid=${`sort-${key}`} onClick=${click}>
      ${label}${active ? (sort.desc ? ' ▼' : ' ▲') : ''}</button>`;
  };

  const renderRow = (i) => {
    const r = rows[i];
    const shown = unit && unit !== 'short' && data.resultType !== 'matrix' ? formatValue(r.num, unit) : r.value;
    return html`<div class="rt-row" data-testid="result-row">
      <span class="rt-series mono" data-testid="result-series" title=${r.name}>${r.name}</span>
      <span class="rt-value mono" data-testid="result-value" title=${r.time ? formatTime(r.time * 1000) : ''}>${shown}</span>
    </div>`;
  };

  return html`<div class="result-table" data-testid="result-table">
    <div class="rt-row rt-head">${header('name', 'Series')}${header('value', 'Value')}</div>
    ${rows.length > VIRTUAL_FROM
      ? html`<${VirtualList} count=${rows.length} rowHeight=${ROW_HEIGHT} height=${height} renderRow=${renderRow} testid="result-rows" />`
      : html`<div class="rt-body" data-testid="result-rows">${rows.map((_, i) => renderRow(i))}</div>`}
    <div class="muted rt-count">${rows.length} ${rows.length === 1 ? 'row' : 'rows'}</div>
  </div>`;
}
