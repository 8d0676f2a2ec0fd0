// The stat panel: each series reduced to one number (last, mean, max, min or sum), shown big
// with its unit, over a small sparkline of the range.
import { html } from '../../preact.js';
import { formatValue } from '../chart.js';
import { loadSeries } from './timeseries.js';

export const REDUCERS = {
  last: (vs) => vs[vs.length - 1],
  mean: (vs) => vs.reduce((a, b) => a + b, 0) / vs.length,
  max: (vs) => Math.max(...vs),
  min: (vs) => Math.min(...vs),
  sum: (vs) => vs.reduce((a, b) => a + b, 0),
};

// The numbers of a series (nulls and NaN left out) reduced with the named reducer; null when empty.
export function reduceSeries(points, reducer = 'last') {
  const values = points.map((p) => p[1]).filter((v) => v !== null && v !== undefined && !Number.isNaN(+v)).map(Number);
  if (!values.length) return null;
  return (REDUCERS[reducer] || REDUCERS.last)(values);
}

function Sparkline({ points }) {
  const values = points.filter((p) => p[1] !== null && !Number.isNaN(+p[1]));
  if (values.length < 2) return null;
  const t0 = values[0][0];
  const t1 = values[values.length - 1][0];
  const vs = values.map((p) => +p[1]);
  const lo = Math.min(...vs);
  const hi = Math.max(...vs);
  const xy = values.map(([t, v]) => `${(((t - t0) / (t1 - t0 || 1)) * 100).toFixed(2)},${(30 - ((v - lo) / (hi - lo || 1)) * 28 - 1).toFixed(2)}`);
  return html`<svg class="stat-spark" viewBox="0 0 100 30" preserveAspectRatio="none" aria-hidden="true">
    <polyline points=${xy.join(' ')} vector-effect="non-scaling-stroke" />
  </svg>`;
}

export const statPanel = {
  label: 'Stat',
  needsQueries: true,
  languages: ['promql', 'logql'],
  load: ({ targets, ...opts }) => loadSeries(targets, opts),
  isEmpty: (series) => series.every((s) => reduceSeries(s.points) === null),
  View({ panel, data, height }) {
    const reducer = panel.options?.reduce || 'last';
    const shown = data.slice(0, 12);
    const size = Math.max(16, Math.min(56, height / (shown.length > 1 ? 3 : 2.2)));
    return html`<div class="stat-grid" style=${`height:${height}px`}>
      ${shown.map((s) => {
        const value = reduceSeries(s.points, reducer);
        return html`<div class="stat-item" data-testid="stat-value" title=${`${s.name}: ${reducer}`}>
          ${shown.length > 1 && html`<div class="stat-name">${s.name}</div>`}
          <div class="stat-number" style=${`font-size:${size}px`}>${value === null ? '–' : formatValue(value, panel.unit)}</div>
          <${Sparkline} points=${s.points} />
        </div>`;
      })}
    </div>`;
  },
};
