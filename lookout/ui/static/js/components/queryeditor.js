// The query editor shared by the PromQL, LogQL and TraceQL explorers and the dashboard panel
// editor. Enter runs the query (Shift+Enter for a new line); an error from the server is shown
// under the editor in its own words, with a caret under the position it points at.
//
// Props: value, onChange(text), onRun(text), error (ApiError | {message, position} | string),
// language ('promql' | 'logql' | 'traceql'), placeholder, rows, completer (optional:
// async (text, cursor) => ({from, to, items: [{label, detail?, insert?}]}) for autocomplete).
import { html, useRef } from '../preact.js';

export function QueryError({ error, query }) {
  if (!error) return null;
  const message = typeof error === 'string' ? error : error.message;
  const pos = typeof error === 'object' ? error.position : null;
  let pointer = null;
  if (pos && query !== undefined) {
    const line = String(query).split('\n')[pos.line - 1] ?? '';
    const col = Math.max(1, Math.min(pos.column, line.length + 1));
    pointer = html`<pre class="query-error-pointer" data-testid="query-error-pointer">${line}\n${' '.repeat(col - 1)}^</pre>`;
  }
  return html`<div class="query-error" role="alert" data-testid="query-error">
    <div>${message}</div>${pointer}
  </div>`;
}

export function QueryEditor({ value, onChange, onRun, error, language = 'promql', placeholder, rows = 2, completer }) {
  const ref = useRef(null);
  const onKeyDown = (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      onRun && onRun(e.target.value);
    }
  };
  return html`<div class="query-editor" data-language=${language}>
    <textarea ref=${ref} class="query-input" data-testid="query-input" spellcheck="false" rows=${rows}
      placeholder=${placeholder || 'Enter a query (Enter runs it, Shift+Enter for a new line)'}
      value=${value} onInput=${(e) => onChange && onChange(e.target.value)} onKeyDown=${onKeyDown}></textarea>
    <${QueryError} error=${error} query=${value} />
  </div>`;
}
