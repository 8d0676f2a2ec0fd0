// The time-range picker: quick relative ranges, or typed from/to (relative or absolute).
// Charts zoom by calling onChange with absolute epoch-ms strings.
import { html, useState } from '../preact.js';
import { describeRange, parseTimeExpr } from '../lib/time.js';

// An inline icon: headless and minimal systems often lack emoji fonts.
const CLOCK = html`<svg class="icon" width="14" height="14" viewBox="0 0 16 16" aria-hidden="true">
  <circle cx="8" cy="8" r="6.5" fill="none" stroke="currentColor" stroke-width="1.5" />
  <path d="M8 4.5V8l2.5 1.5" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round" /></svg>`;

const QUICK = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '24h', '2d', '7d', '30d'];

export function TimeRangePicker({ from, to, onChange }) {
  const [open, setOpen] = useState(false);
  const [f, setF] = useState(from);
  const [t, setT] = useState(to);
  const [error, setError] = useState('');
  const toggle = () => {
    setF(from);
    setT(to);
    setError('');
    setOpen(!open);
  };
  const apply = (e) => {
    e.preventDefault();
    const a = parseTimeExpr(f);
    const b = parseTimeExpr(t);
    if (Number.isNaN(a)) return setError(`cannot read "${f}": use now-1h, an ISO date or epoch ms`);
    if (Number.isNaN(b)) return setError(`cannot read "${t}": use now, an ISO date or epoch ms`);
    if (a >= b) return setError('the start must be before the end');
    setOpen(false);
    onChange(f, t);
  };
  const quick = (d) => {
    setOpen(false);
    onChange(`now-${d}`, 'now');
  };
  return html`<div class="timerange">
    <button type="button" class="btn timerange-button" data-testid="timerange" onClick=${toggle}>${CLOCK} ${describeRange(from, to)}</button>
    ${open && html`<div class="timerange-popup">
      <form onSubmit=${apply}>
        <label>From <input name="from" value=${f} onInput=${(e) => setF(e.target.value)} /></label>
        <label>To <input name="to" value=${t} onInput=${(e) => setT(e.target.value)} /></label>
        ${error && html`<div class="error">${error}</div>`}
        <button class="btn primary" type="submit">Apply</button>
      </form>
      <div class="timerange-quick">
        ${QUICK.map((d) => html`<button type="button" class="link" onClick=${() => quick(d)}>Last ${d}</button>`)}
      </div>
    </div>`}
  </div>`;
}
