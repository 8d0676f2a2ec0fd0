// The traces panel: a TraceQL search listed like the trace explorer (each row opens the trace).
import { html } from '../../preact.js';
import { TraceList } from '../tracelist.js';
import { eachTarget, traceSearch } from './queries.js';

async function loadTraces({ targets, panel, ...opts }) {
  const limit = panel.options?.limit || 20;
  const answers = await eachTarget(targets, (t) => traceSearch(t, { ...opts, limit }));
  const seen = new Set();
  return answers.flatMap((a) => a.result).filter((t) => !seen.has(t.traceID) && seen.add(t.traceID));
}

export const tracesPanel = {
  label: 'Traces',
  needsQueries: true,
  languages: ['traceql'],
  load: loadTraces,
  isEmpty: (traces) => traces.length === 0,
  View({ data, height }) {
    return html`<div class="panel-traces" style=${`max-height:${height}px`}><${TraceList} traces=${data} /></div>`;
  },
};
