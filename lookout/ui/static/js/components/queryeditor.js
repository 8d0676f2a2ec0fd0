// The query editor shared by the PromQL, LogQL and TraceQL explorers and the dashboard panel
// editor. Enter runs the query (Shift+Enter for a new line); an error from the server is shown
// under the editor in its own words, with a caret under the position it points at.
// With a `completer`, suggestions open while typing (and on Ctrl+Space): arrows pick, Enter or
// Tab accepts, Escape closes; Enter only runs the query when no suggestion list is open.
//
// Props: value, onChange(text), onRun(text), error (ApiError | {message, position} | string),
// language ('promql' | 'logql' | 'traceql'), placeholder, rows, completer (optional:
// async (text, cursor) => ({from, to, items: [{label, detail?, insert?}]}) for autocomplete;
// an insert may hold "$0" where the cursor goes, e.g. "rate($0)").
import { html, useEffect, useRef, useState } from '../preact.js';

const DEBOUNCE_MS = 120;
const MAX_ITEMS = 200;

// The server's "1:4: parse error: ..." may come after a prefix ('invalid parameter "query": 1:4: ...').
function positionIn(message) {
  const m = /(?:^|[\s"'(])(\d+):(\d+): /.exec(message || '');
  return m ? { line: +m[1], column: +m[2] } : null;
}

export function QueryError({ error, query }) {
  if (!error) return null;
  const message = typeof error === 'string' ? error : error.message;
  const pos = (typeof error === 'object' && error.position) || positionIn(message);
  let pointer = null;
  if (pos && query !== undefined) {
    const line = String(query).split('\n')[pos.line - 1] ?? '';
    const col = Math.max(1, Math.min(pos.column, line.length + 1));
    const text = `${line}\n${' '.repeat(col - 1)}^`; // one string: htm drops bare newlines
    pointer = html`<pre class="query-error-pointer" data-testid="query-error-pointer">${text}</pre>`;
  }
  return html`<div class="query-error" role="alert" data-testid="query-error">
    <div>${message}</div>${pointer}
  </div>`;
}

// Where the caret is, in pixels inside the textarea (monospace: column x character width).
function caretOffset(el, cursor) {
  const before = el.value.slice(0, cursor).split('\n');
  const style = getComputedStyle(el);
  const ctx = caretOffset.ctx || (caretOffset.ctx = document.createElement('canvas').getContext('2d'));
  ctx.font = `${style.fontSize} ${style.fontFamily}`;
  const lineHeight = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.4;
  const left = parseFloat(style.paddingLeft) + ctx.measureText(before[before.length - 1]).width - el.scrollLeft;
  const top = parseFloat(style.paddingTop) + before.length * lineHeight - el.scrollTop + 4;
  return { left: Math.max(0, Math.min(left, el.clientWidth - 40)), top: Math.min(top, el.clientHeight + 4) };
}

// Typing a space or closing a bracket is not a moment to suggest anything.
const quietBefore = (text, cursor) => cursor === 0 || /[\s)\]}]/.test(text[cursor - 1]);

export function QueryEditor({ value, onChange, onRun, error, language = 'promql', placeholder, rows = 2, completer }) {
  const ref = useRef(null);
  const [menu, setMenu] = useState(null); // {from, to, items, active, left, top}
  const seq = useRef(0);
  const timer = useRef(null);
  useEffect(() => () => clearTimeout(timer.current), []);

  const close = () => {
    seq.current++;
    clearTimeout(timer.current);
    setMenu(null);
  };

  const suggest = async () => {
    const el = ref.current;
    if (!completer || !el) return;
    const mine = ++seq.current;
    const text = el.value;
    const cursor = el.selectionStart;
    let answer;
    try {
      answer = await completer(text, cursor);
    } catch {
      answer = null; // suggestions are a help, never an error
    }
    if (mine !== seq.current || document.activeElement !== el) return;
    if (!answer || !answer.items || !answer.items.length) return setMenu(null);
    setMenu({ ...answer, items: answer.items.slice(0, MAX_ITEMS), active: 0, ...caretOffset(el, cursor) });
  };

  const suggestSoon = () => {
    clearTimeout(timer.current);
    timer.current = setTimeout(suggest, DEBOUNCE_MS);
  };

  const accept = (item) => {
    const el = ref.current;
    const text = el.value;
    let insert = item.insert ?? item.label;
    let caret = insert.indexOf('$0');
    insert = insert.replace('$0', '');
    if (caret < 0) caret = insert.length;
    const next = text.slice(0, menu.from) + insert + text.slice(menu.to);
    el.value = next;
    const pos = menu.from + caret;
    el.setSelectionRange(pos, pos);
    close();
    onChange && onChange(next);
    el.focus();
  };

  const onInput = (e) => {
    onChange && onChange(e.target.value);
    if (!completer) return;
    if (quietBefore(e.target.value, e.target.selectionStart)) close();
    else suggestSoon();
  };

  const onKeyDown = (e) => {
    if (completer && e.key === ' ' && e.ctrlKey) {
      e.preventDefault();
      suggest();
      return;
    }
    if (menu) {
      const n = menu.items.length;
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        const step = e.key === 'ArrowDown' ? 1 : -1;
        setMenu({ ...menu, active: (menu.active + step + n) % n });
        return;
      }
      if (e.key === 'Enter' || e.key === 'Tab') {
        e.preventDefault();
        accept(menu.items[menu.active]);
        return;
      }
      if (e.key === 'Escape') {
        e.preventDefault();
        close();
        return;
      }
    }
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      close();
      onRun && onRun(e.target.value);
    }
  };

  return html`<div class="query-editor" data-language=${language}>
    <textarea ref=${ref} class="query-input" data-testid="query-input" spellcheck="false" rows=${rows}
      placeholder=${placeholder || 'Enter a query (Enter runs it, Shift+Enter for a new line, Ctrl+Space suggests)'}
      value=${value} onInput=${onInput} onKeyDown=${onKeyDown} onBlur=${close}
      onClick=${() => menu && close()}></textarea>
    ${menu && html`<${Completions} menu=${menu} onPick=${accept} />`}
    <${QueryError} error=${error} query=${value} />
  </div>`;
}

function Completions({ menu, onPick }) {
  const list = useRef(null);
  useEffect(() => {
    const active = list.current && list.current.children[menu.active];
    if (active) active.scrollIntoView({ block: 'nearest' });
  }, [menu.active]);
  return html`<div class="completions" ref=${list} role="listbox" data-testid="completions"
      style=${`left:${menu.left}px;top:${menu.top}px`}>
    ${menu.items.map((item, i) => html`<div key=${item.label + i} role="option" aria-selected=${i === menu.active}
        class=${`item${i === menu.active ? ' active' : ''}`} data-testid="completion-item"
        onMouseDown=${(e) => { e.preventDefault(); onPick(item); }}>
      <span class="label">${item.label}</span>${item.detail && html`<span class="detail">${item.detail}</span>`}
    </div>`)}
  </div>`;
}
