// The variables bar above a dashboard's panels: one picker per variable (a select, a
// multi-select with "All", or a text box), like Grafana's. Constants are not shown.
import { html, useEffect, useRef, useState } from '../../preact.js';
import { ALL } from './interpolate.js';

function MultiPicker({ variable, onChange }) {
  const [open, setOpen] = useState(false);
  const ref = useRef(null);
  useEffect(() => {
    if (!open) return undefined;
    const close = (e) => { if (ref.current && !ref.current.contains(e.target)) setOpen(false); };
    document.addEventListener('mousedown', close);
    return () => document.removeEventListener('mousedown', close);
  }, [open]);
  const toggle = (value) => {
    if (value === ALL) return onChange(variable.name, [ALL]);
    const current = variable.isAll ? [] : variable.values;
    const next = current.includes(value) ? current.filter((v) => v !== value) : [...current, value];
    onChange(variable.name, next.length ? next : (variable.includeAll ? [ALL] : [value]));
  };
  const label = variable.isAll ? 'All' : (variable.values.join(' + ') || 'none');
  return html`<div class="var-multi" ref=${ref}>
    <button type="button" class="btn var-button" data-testid=${`var-${variable.name}`} onClick=${() => setOpen(!open)}>${label} ▾</button>
    ${open && html`<div class="var-popup" data-testid=${`var-${variable.name}-options`}>
      ${variable.includeAll && html`<label class="var-option"><input type="checkbox" checked=${variable.isAll}
        onChange=${() => toggle(ALL)} /> All</label>`}
      ${variable.options.map((o) => html`<label class="var-option"><input type="checkbox"
        checked=${!variable.isAll && variable.values.includes(o)} onChange=${() => toggle(o)} /> ${o}</label>`)}
      ${variable.options.length === 0 && html`<div class="muted">No values</div>`}
    </div>`}
  </div>`;
}

function SinglePicker({ variable, onChange }) {
  const value = variable.isAll ? ALL : (variable.values[0] ?? '');
  const options = variable.options.includes(value) || value === ALL || value === '' ? variable.options : [value, ...variable.options];
  return html`<select data-testid=${`var-${variable.name}`} value=${value} onChange=${(e) => onChange(variable.name, [e.target.value])}>
    ${variable.includeAll && html`<option value=${ALL}>All</option>`}
    ${options.map((o) => html`<option value=${o}>${o}</option>`)}
  </select>`;
}

function TextPicker({ variable, onChange }) {
  const [text, setText] = useState(variable.values[0] ?? '');
  useEffect(() => setText(variable.values[0] ?? ''), [variable.values[0]]);
  const commit = (e) => {
    e.preventDefault();
    if (text !== variable.values[0]) onChange(variable.name, [text]);
  };
  return html`<form onSubmit=${commit}><input data-testid=${`var-${variable.name}`} value=${text} size="14"
    onInput=${(e) => setText(e.target.value)} onBlur=${commit} /></form>`;
}

// Props: variables ({name: resolved}, in dashboard order), errors ({name: message}),
// onChange(name, values) where values may be [ALL].
export function VariablesBar({ variables, errors, onChange }) {
  const shown = Object.values(variables).filter((v) => v.type !== 'constant');
  if (!shown.length) return null;
  return html`<div class="var-bar" data-testid="variables-bar">
    ${shown.map((v) => {
      const Picker = v.type === 'textbox' ? TextPicker : v.multi ? MultiPicker : SinglePicker;
      return html`<div class="var-item" key=${v.name}>
        <span class="var-label">${v.label}</span>
        <${Picker} variable=${v} onChange=${onChange} />
        ${errors[v.name] && html`<span class="error var-error" title=${errors[v.name]} data-testid="variable-error">⚠ ${errors[v.name]}</span>`}
      </div>`;
    })}
  </div>`;
}
