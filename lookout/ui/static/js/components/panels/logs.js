// The logs panel: LogQL log queries as Lookout's log lines (newest first, virtualized,
// severity colours, trace ids linking to the trace).
import { html } from '../../preact.js';
import { LogLines, lokiStreamsToLines } from '../loglines.js';
import { eachTarget, rangeQuery, shapeError } from './queries.js';

const newestFirst = (a, b) => (a.ts.length - b.ts.length) || (a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : 0);

async function loadLines({ targets, panel, ...opts }) {
  const limit = panel.options?.limit || 100;
  const answers = await eachTarget(targets, (t) => rangeQuery(t, { ...opts, limit }));
  const lines = answers.flatMap(({ target, result }) => {
    if (result.resultType !== 'streams') throw shapeError(target, 'this is a metric query: a logs panel needs a log query such as {service_name="x"} |= "error"');
    return lokiStreamsToLines(result.result);
  });
  return answers.length > 1 ? lines.sort(newestFirst).slice(0, limit) : lines;
}

export const logsPanel = {
  label: 'Logs',
  needsQueries: true,
  languages: ['logql'],
  load: loadLines,
  isEmpty: (lines) => lines.length === 0,
  View({ data, height }) {
    return html`<${LogLines} lines=${data} height=${height} />`;
  },
};
