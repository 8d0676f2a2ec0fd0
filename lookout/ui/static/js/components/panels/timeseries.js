// The time series panel: every PromQL (or LogQL metric) target as lines on one chart, named
// by its legend format; a drag-select zooms the whole dashboard.
import { html } from '../../preact.js';
import { TimeSeriesChart, promMatrixToSeries } from '../chart.js';
import { eachTarget, rangeQuery, shapeError } from './queries.js';

// Range-query every target and turn the matrices into chart series.
export async function loadSeries(targets, opts) {
  const answers = await eachTarget(targets, (t) => rangeQuery(t, opts));
  return answers.flatMap(({ target, result }) => {
    if (result.resultType === 'streams') {
      throw shapeError(target, 'this is a log query: a time series needs a metric query such as sum(count_over_time({...}[$__interval]))');
    }
    if (result.resultType !== 'matrix') throw shapeError(target, `expected a range result, got "${result.resultType}"`);
    return promMatrixToSeries(result.result, target.legend || undefined);
  });
}

export const timeseriesPanel = {
  label: 'Time series',
  needsQueries: true,
  languages: ['promql', 'logql'],
  load: ({ targets, ...opts }) => loadSeries(targets, opts),
  isEmpty: (series) => series.length === 0,
  View({ panel, data, height, range, onZoom }) {
    // the legend goes below the plot: leave it one or two rows (dashboards.css caps it)
    const legend = data.length > 3 ? 52 : 28;
    return html`<${TimeSeriesChart} series=${data} start=${range.start} end=${range.end} height=${Math.max(60, height - legend)}
      unit=${panel.unit || undefined} onZoom=${onZoom} stacked=${!!panel.options?.stacked} />`;
  },
};
