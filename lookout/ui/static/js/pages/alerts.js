// The alerting page: what is firing (Prometheus' /api/v1/rules view of the rule evaluator),
// the silences that mute notifications (Alertmanager's v2 API) and the notifier's status.
// The tab, the "new silence" form and its pre-filled matchers live in the URL, so "silence
// this alert" is a link like Alertmanager's own UI gives.
import { html, useEffect, useMemo, useState } from '../preact.js';
import { api } from '../lib/api.js';
import { useAsync } from '../lib/useasync.js';
import { Link, navigate, setQueryParams } from '../lib/router.js';
import { formatDuration, formatTime, parseDuration, parseTimeExpr } from '../lib/time.js';

const TABS = [['alerts', 'Alerts'], ['silences', 'Silences'], ['status', 'Status']];
const STATES = ['firing', 'pending', 'inactive'];
const OPERATORS = ['=', '!=', '=~', '!~'];
const CREATOR_KEY = 'lookout.silence.createdBy';

// ---- matchers: {name, op, value} <-> Alertmanager's API objects and the `{a="b"}` text form ----

export function matcherToApi({ name, op, value }) {
  return { name: name.trim(), value, isRegex: op.includes('~'), isEqual: op.startsWith('=') };
}

export function matcherFromApi(m) {
  const op = (m.isEqual === false ? '!' : '=') + (m.isRegex ? '~' : '');
  return { name: m.name, op: op === '!' ? '!=' : op, value: m.value };
}

export function matchersToText(matchers) {
  return `{${matchers.map((m) => `${m.name}${m.op}${JSON.stringify(m.value)}`).join(',')}}`;
}

export function matchersFromText(text) {
  const out = [];
  const re = /([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g;
  for (const m of String(text || '').matchAll(re)) out.push({ name: m[1], op: m[2], value: JSON.parse(`"${m[3]}"`) });
  return out;
}

function serverWords(error) {
  return error && error.message ? error.message : String(error);
}

function labelKey(labels) {
  return JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
}

function relative(ms) {
  const d = ms - Date.now();
  const text = formatDuration(Math.abs(d)).replace(/(\d+(?:\.\d+)?)(ms|µs)$/, '<1s');
  return d >= 0 ? `in ${text}` : `${text} ago`;
}

function silenceHref(labels) {
  const ms = Object.entries(labels).map(([name, value]) => ({ name, op: '=', value }));
  return `/ui/alerts?tab=silences&new=1&matchers=${encodeURIComponent(matchersToText(ms))}`;
}

function LabelChips({ labels, skip = [] }) {
  const entries = Object.entries(labels || {}).filter(([k]) => !skip.includes(k));
  if (!entries.length) return null;
  return html`<span class="label-chips">${entries.map(([k, v]) => html`<span class="chip" key=${k}>${k}=${v}</span>`)}</span>`;
}

// ---- Alerts tab --------------------------------------------------------------------------------

async function loadAlerts() {
  const [rules, am] = await Promise.all([
    api('/api/v1/rules', { params: { type: 'alert' } }),
    api('/api/v2/alerts').catch(() => []), // without a notifier, nothing is silenced
  ]);
  const silencedBy = new Map(am.filter((a) => a.status && a.status.silencedBy && a.status.silencedBy.length)
    .map((a) => [labelKey(a.labels), a.status.silencedBy]));
  return { groups: rules.data.groups || [], silencedBy };
}

function AlertInstance({ alert, silencedBy }) {
  const a = alert.annotations || {};
  const silences = silencedBy.get(labelKey(alert.labels));
  const since = Date.parse(alert.activeAt);
  return html`<tr data-testid="alert-instance" data-state=${alert.state}>
    <td><span class=${`badge ${alert.state}`}>${alert.state}</span>
      ${silences && html` <span class="badge silenced" data-testid="silenced-badge"
        title=${`silenced by ${silences.join(', ')}`}>silenced</span>`}</td>
    <td><${LabelChips} labels=${alert.labels} skip=${['alertname']} />
      ${a.summary && html`<div class="alert-summary" data-testid="alert-summary">${a.summary}</div>`}
      ${a.description && html`<div class="muted">${a.description}</div>`}</td>
    <td class="nowrap" title=${formatTime(since)}>${Number.isNaN(since) ? '' : `for ${relative(since).replace(' ago', '')}`}</td>
    <td class="mono">${alert.value}</td>
    <td>${alert.state !== 'inactive' && html`<${Link} class="btn small" href=${silenceHref(alert.labels)}
      data-testid="silence-alert">Silence<//>`}</td>
  </tr>`;
}

function AlertRule({ rule, silencedBy }) {
  const [open, setOpen] = useState(rule.state !== 'inactive');
  const n = rule.alerts.length;
  return html`<div class=${`alert-rule state-${rule.state}`} data-testid="alert-rule" data-alertname=${rule.name}
      data-state=${rule.state}>
    <div class="alert-rule-head" onClick=${() => setOpen(!open)}>
      <span class="caret">${open ? '▾' : '▸'}</span>
      <span class=${`badge ${rule.state}`}>${rule.state}</span>
      <strong>${rule.name}</strong>
      ${n > 0 && html`<span class="muted">${n} alert${n === 1 ? '' : 's'}</span>`}
      ${rule.health === 'err' && html`<span class="badge error" title=${rule.lastError}>error</span>`}
    </div>
    ${open && html`<div class="alert-rule-body">
      <div class="alert-expr"><span class="muted">expr</span>
        <${Link} class="mono" href=${`/ui/metrics?query=${encodeURIComponent(rule.query)}`}
          data-testid="alert-expr">${rule.query}<//>
        ${rule.duration > 0 && html`<span class="muted">for ${formatDuration(rule.duration * 1000)}</span>`}</div>
      <${LabelChips} labels=${rule.labels} />
      ${rule.lastError && html`<div class="error-box">${rule.lastError}</div>`}
      ${n === 0 ? html`<div class="muted">${rule.annotations.summary || 'Not firing.'}</div>`
        : html`<table class="data alert-instances"><thead><tr><th>State</th><th>Labels and summary</th>
          <th>Active</th><th>Value</th><th></th></tr></thead>
          <tbody>${rule.alerts.map((a) => html`<${AlertInstance} key=${labelKey(a.labels)} alert=${a}
            silencedBy=${silencedBy} />`)}</tbody></table>`}
    </div>`}
  </div>`;
}

function AlertsTab({ loc }) {
  const { loading, data, error, reload } = useAsync(loadAlerts, []);
  useEffect(() => {
    const t = setInterval(reload, 15000);
    return () => clearInterval(t);
  }, [reload]);
  const shown = (loc.query.get('state') || STATES.join(',')).split(',');
  const toggle = (s) => {
    const next = shown.includes(s) ? shown.filter((x) => x !== s) : [...shown, s];
    setQueryParams({ state: next.length === STATES.length ? '' : next.join(',') || 'none' });
  };
  if (error) {
    const missing = error.status === 404;
    return html`<div class="error-box" data-testid="alerts-error">${missing
      ? 'Alerting is not enabled on this node: add an alerting: section (rule_files) to its configuration.'
      : `Cannot load the alert rules: ${error.message}`}</div>`;
  }
  if (!data) return html`<p class="empty">Loading…</p>`;
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  data.groups.forEach((g) => g.rules.forEach((r) => { counts[r.state] = (counts[r.state] || 0) + 1; }));
  const groups = data.groups.map((g) => ({ ...g, rules: g.rules.filter((r) => shown.includes(r.state)) }))
    .filter((g) => g.rules.length);
  return html`<div>
    <div class="toolbar">
      ${STATES.map((s) => html`<button type="button" class=${`state-filter ${shown.includes(s) ? 'on' : ''}`}
        data-testid=${`state-filter-${s}`} onClick=${() => toggle(s)}>
        <span class=${`badge ${s}`}>${s}</span> ${counts[s]}</button>`)}
      <span class="spacer"></span>
      <button type="button" class="btn" onClick=${reload} disabled=${loading}>Refresh</button>
    </div>
    ${data.groups.length === 0 && html`<p class="empty">No alerting rules. Add rule files under alerting.rule_files,
      or rule groups through /loki/api/v1/rules.</p>`}
    ${data.groups.length > 0 && groups.length === 0 && html`<p class="empty">No rules in the chosen states.</p>`}
    ${groups.map((g) => html`<div class="panel alert-group" key=${g.file + g.name} data-testid="alert-group">
      <div class="panel-title">${g.name}<span class="muted">${g.file} · every ${formatDuration(g.interval * 1000)}</span></div>
      ${g.rules.map((r) => html`<${AlertRule} key=${r.name + labelKey(r.labels)} rule=${r} silencedBy=${data.silencedBy} />`)}
    </div>`)}
  </div>`;
}

// ---- Silences tab ------------------------------------------------------------------------------

function SilenceRow({ silence, onExpire, busy }) {
  const state = silence.status.state;
  const ends = Date.parse(silence.endsAt);
  const starts = Date.parse(silence.startsAt);
  return html`<div class="silence" data-testid="silence" data-silence-id=${silence.id} data-state=${state}>
    <div class="silence-main">
      <div class="label-chips" data-testid="silence-matchers">${silence.matchers.map(matcherFromApi).map((m, i) =>
        html`<span class="chip" key=${i}>${m.name}${m.op}"${m.value}"</span>`)}</div>
      ${silence.comment && html`<div class="silence-comment">${silence.comment}</div>`}
      <div class="muted small">${[
        state === 'pending' ? `starts ${relative(starts)} (${formatTime(starts)})` : `started ${formatTime(starts)}`,
        `${state === 'expired' ? 'expired' : 'ends'} ${relative(ends)} (${formatTime(ends)})`,
        `by ${silence.createdBy || 'unknown'}`, silence.id].join(' · ')}</div>
    </div>
    <div class="silence-actions">
      ${state === 'expired'
        ? html`<${Link} class="btn small" href=${`/ui/alerts?tab=silences&new=1&matchers=${encodeURIComponent(
          matchersToText(silence.matchers.map(matcherFromApi)))}`}>Recreate<//>`
        : html`<button type="button" class="btn small danger" data-testid="expire-silence" disabled=${busy}
          onClick=${() => onExpire(silence.id)}>Expire</button>`}
    </div>
  </div>`;
}

function SilencesList({ loc }) {
  const { data, error, reload } = useAsync((signal) => api('/api/v2/silences', { signal }), []);
  const [actionError, setActionError] = useState(null);
  const [busy, setBusy] = useState(false);
  const created = loc.query.get('created');
  const expire = async (id) => {
    setBusy(true);
    setActionError(null);
    try {
      await api(`/api/v2/silence/${encodeURIComponent(id)}`, { method: 'DELETE' });
    } catch (e) {
      setActionError(`Cannot expire silence ${id}: ${serverWords(e)}`);
    }
    setBusy(false);
    reload();
  };
  if (error) return html`<div class="error-box" data-testid="silences-error">${error.status === 404
    ? 'Alerting is not enabled on this node, so there are no silences.' : `Cannot load silences: ${serverWords(error)}`}</div>`;
  if (!data) return html`<p class="empty">Loading…</p>`;
  const sections = ['active', 'pending', 'expired'].map((s) => [s, data.filter((x) => x.status.state === s)]);
  return html`<div>
    <div class="toolbar">
      <${Link} class="btn primary" href="/ui/alerts?tab=silences&new=1" data-testid="new-silence">New silence<//>
      <span class="spacer"></span>
      <button type="button" class="btn" onClick=${reload}>Refresh</button>
    </div>
    ${created && html`<div class="notice" data-testid="silence-created">Silence <span class="mono">${created}</span> created.</div>`}
    ${actionError && html`<div class="error-box" role="alert">${actionError}</div>`}
    ${sections.map(([state, list]) => html`<section class="silence-section" data-testid=${`silences-${state}`} key=${state}>
      <h2>${state[0].toUpperCase() + state.slice(1)} <span class="muted">${list.length}</span></h2>
      ${list.length === 0 ? html`<p class="empty">No ${state} silences.</p>`
        : html`<div class="panel silence-list">${list.map((s) => html`<${SilenceRow} key=${s.id} silence=${s}
          onExpire=${expire} busy=${busy} />`)}</div>`}
    </section>`)}
  </div>`;
}

// The end of a silence from the form's start, duration and optional end (an error in words).
export function silenceWindow(start, duration, end, now = Date.now()) {
  const s = parseTimeExpr(start || 'now', now);
  if (Number.isNaN(s)) return { error: `cannot read the start "${start}": use now, an ISO date or epoch ms` };
  if (end && end.trim()) {
    const e = parseTimeExpr(end, now);
    if (Number.isNaN(e)) return { error: `cannot read the end "${end}": use an ISO date, now+2h or epoch ms` };
    return { start: s, end: e };
  }
  const d = parseDuration(duration);
  if (d === null) return { error: `cannot read the duration "${duration}": use e.g. 30m, 2h or 1d` };
  return { start: s, end: s + d };
}

function AffectedAlerts({ matchers }) {
  const valid = matchers.filter((m) => m.name.trim());
  const text = valid.length ? matchersToText(valid) : '';
  const [state, setState] = useState(null);
  useEffect(() => {
    if (!text) return setState(null);
    const ctl = new AbortController();
    const t = setTimeout(() => {
      api('/api/v2/alerts', { params: { filter: text }, signal: ctl.signal })
        .then((alerts) => setState({ alerts }), (e) => e.name !== 'AbortError' && setState({ error: serverWords(e) }));
    }, 300);
    return () => { clearTimeout(t); ctl.abort(); };
  }, [text]);
  if (!state) return null;
  if (state.error) return html`<div class="muted small">Cannot preview: ${state.error}</div>`;
  const n = state.alerts.length;
  return html`<div class="muted small" data-testid="affected-alerts">
    ${n === 0 ? 'No alert matches these matchers now.' : `Silences ${n} alert${n === 1 ? '' : 's'} now: `}
    ${state.alerts.slice(0, 5).map((a) => html`<span class="chip" key=${a.fingerprint}>${a.labels.alertname || a.fingerprint}</span>`)}
  </div>`;
}

function SilenceForm({ loc }) {
  const initial = matchersFromText(loc.query.get('matchers'));
  const [matchers, setMatchers] = useState(initial.length ? initial : [{ name: '', op: '=', value: '' }]);
  const [start, setStart] = useState('now');
  const [duration, setDuration] = useState('2h');
  const [end, setEnd] = useState('');
  const [createdBy, setCreatedBy] = useState(localStorage.getItem(CREATOR_KEY) || '');
  const [comment, setComment] = useState('');
  const [error, setError] = useState(null);
  const [saving, setSaving] = useState(false);
  const span = useMemo(() => silenceWindow(start, duration, end), [start, duration, end]);
  const setMatcher = (i, patch) => setMatchers(matchers.map((m, j) => (j === i ? { ...m, ...patch } : m)));
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    const used = matchers.filter((m) => m.name.trim() || m.value);
    if (!used.length) return setError('Add at least one matcher.');
    const unnamed = used.find((m) => !m.name.trim());
    if (unnamed) return setError(`The matcher with value "${unnamed.value}" needs a label name.`);
    if (span.error) return setError(span.error);
    if (!createdBy.trim()) return setError('Say who creates the silence (Created by).');
    localStorage.setItem(CREATOR_KEY, createdBy.trim());
    setSaving(true);
    try {
      const res = await api('/api/v2/silences', {
        method: 'POST',
        body: {
          matchers: used.map(matcherToApi), startsAt: new Date(span.start).toISOString(),
          endsAt: new Date(span.end).toISOString(), createdBy: createdBy.trim(), comment,
        },
      });
      navigate('/ui/alerts', { tab: 'silences', created: res.silenceID });
    } catch (err) {
      setSaving(false);
      setError(serverWords(err));
    }
  };
  return html`<form class="panel silence-form" data-testid="silence-form" onSubmit=${submit}>
    <div class="panel-title">New silence</div>
    <div class="matcher-rows">
      ${matchers.map((m, i) => html`<div class="matcher-row" data-testid="matcher-row" key=${i}>
        <input placeholder="label" aria-label="label name" data-testid="matcher-name" value=${m.name}
          onInput=${(e) => setMatcher(i, { name: e.target.value })} />
        <select aria-label="operator" data-testid="matcher-op" value=${m.op}
          onChange=${(e) => setMatcher(i, { op: e.target.value })}>
          ${OPERATORS.map((op) => html`<option value=${op}>${op}</option>`)}
        </select>
        <input placeholder="value" aria-label="label value" data-testid="matcher-value" value=${m.value}
          onInput=${(e) => setMatcher(i, { value: e.target.value })} />
        <button type="button" class="link" title="remove this matcher" data-testid="matcher-remove"
          disabled=${matchers.length === 1} onClick=${() => setMatchers(matchers.filter((_, j) => j !== i))}>✕</button>
      </div>`)}
      <button type="button" class="link" data-testid="matcher-add"
        onClick=${() => setMatchers([...matchers, { name: '', op: '=', value: '' }])}>+ Add matcher</button>
    </div>
    <${AffectedAlerts} matchers=${matchers} />
    <div class="silence-times">
      <label>Start <input data-testid="silence-start" value=${start} onInput=${(e) => setStart(e.target.value)} /></label>
      <label>Duration <input data-testid="silence-duration" value=${duration} size="6"
        onInput=${(e) => setDuration(e.target.value)} /></label>
      <label>or End <input data-testid="silence-end" value=${end} placeholder="ISO date or now+2h"
        onInput=${(e) => setEnd(e.target.value)} /></label>
    </div>
    <div class="muted small" data-testid="silence-window">${span.error ? ''
      : `From ${formatTime(span.start)} until ${formatTime(span.end)} (${formatDuration(span.end - span.start)})`}</div>
    <label class="block">Created by <input data-testid="silence-created-by" value=${createdBy}
      onInput=${(e) => setCreatedBy(e.target.value)} /></label>
    <label class="block">Comment <textarea data-testid="silence-comment" rows="2" value=${comment}
      onInput=${(e) => setComment(e.target.value)}></textarea></label>
    ${error && html`<div class="error-box" role="alert" data-testid="silence-error">${error}</div>`}
    <div class="toolbar">
      <button type="submit" class="btn primary" data-testid="silence-submit" disabled=${saving}>Create silence</button>
      <${Link} class="btn" href="/ui/alerts?tab=silences">Cancel<//>
    </div>
  </form>`;
}

// ---- Status tab --------------------------------------------------------------------------------

function StatusTab() {
  const { data, error } = useAsync((signal) => Promise.all([api('/api/v2/status', { signal }), api('/api/v2/receivers', { signal })]), []);
  if (error) return html`<div class="error-box">${error.status === 404
    ? 'Alerting is not enabled on this node.' : `Cannot load the notifier status: ${serverWords(error)}`}</div>`;
  if (!data) return html`<p class="empty">Loading…</p>`;
  const [status, receivers] = data;
  return html`<div class="panel" data-testid="alerting-status">
    <table class="data status-table"><tbody>
      <tr><th>Version</th><td>${status.versionInfo.version}</td></tr>
      <tr><th>Up since</th><td>${formatTime(Date.parse(status.uptime))}</td></tr>
      <tr><th>Cluster</th><td>${status.cluster.status}</td></tr>
      <tr><th>Receivers</th><td>${receivers.map((r) => html`<span class="chip" key=${r.name}>${r.name}</span>`)}</td></tr>
    </tbody></table>
    <h2>Notifier configuration</h2>
    <pre class="config">${status.config.original}</pre>
  </div>`;
}

export function AlertsPage({ loc }) {
  const tab = loc.query.get('tab') || 'alerts';
  const creating = tab === 'silences' && loc.query.get('new');
  return html`<div class="page alerts-page">
    <h1>Alerts</h1>
    <div class="tabs" role="tablist">
      ${TABS.map(([id, label]) => html`<button type="button" role="tab" class=${tab === id ? 'active' : ''}
        data-testid=${`tab-${id}`} onClick=${() => navigate('/ui/alerts', id === 'alerts' ? null : { tab: id })}>${label}</button>`)}
    </div>
    ${tab === 'alerts' && html`<${AlertsTab} loc=${loc} />`}
    ${creating && html`<${SilenceForm} key=${loc.query.get('matchers') || ''} loc=${loc} />`}
    ${tab === 'silences' && !creating && html`<${SilencesList} loc=${loc} />`}
    ${tab === 'status' && html`<${StatusTab} />`}
  </div>`;
}
