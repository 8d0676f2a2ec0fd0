"""Rule evaluation with Prometheus' semantics (``rules/alerting.go``, ``recording.go``, ``group.go``,
``manager.go``), for PromQL and LogQL rules, per tenant.

* An :class:`AlertingRule` keeps one alert per result series, keyed by its labels (the series'
  labels minus ``__name__``, plus the rule's labels expanded as templates, plus ``alertname``).
  A new series makes a *pending* alert (``ActiveAt``); one active for ``for`` or longer *fires*;
  a series that disappears resolves its alert (``ResolvedAt``) unless ``keep_firing_for`` keeps it
  firing (``KeepFiringSince``). Resolved alerts stay 15 minutes (``resolvedRetention``) so they
  are sent as resolved again and again, which survives a lost notification.
* Each evaluation writes ``ALERTS`` (1) and ``ALERTS_FOR_STATE`` (ActiveAt seconds) series, and
  recording rules write their results under the ``record`` name; series a rule stops producing
  get a stale marker, exactly as Prometheus does, so queries stop seeing them at once.
* A :class:`Group` evaluates its rules in order; a failing rule marks itself ``err`` and the others
  still run. Notifications follow ``sendAlerts``: firing and resolved alerts, at most every
  ``resend_delay``, with ``EndsAt`` = ``ValidUntil`` (4 x max(interval, resend delay)) so the
  receiver expires them if the evaluator dies.
* :class:`RuleManager` holds each tenant's groups from two sources (rule files and the HTTP ruler
  API), reloads them without losing the state of rules that still exist (``copyState``), persists
  alert state in SQLite after every evaluation that changed it, and restores it on start.

Times are Unix seconds (float) everywhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import math
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from lookout.alerting.model import Alert

if TYPE_CHECKING:  # the rule file module is another's; only its attributes are used here
    from lookout.alerting.rulefile import Rule, RuleGroup
    from lookout.alerting.state import AlertState

log = logging.getLogger(__name__)

Sample = tuple[dict[str, str], float]
QueryFn = Callable[[str, str, str, float], list[Sample]]
AppendFn = Callable[[str, list[tuple[dict[str, str], float, float]]], None]
NotifyFn = Callable[[str, list[Alert]], None]
ExpandFn = Callable[..., str]
LabelKey = tuple[tuple[str, str], ...]

ALERT_METRIC = "ALERTS"
ALERT_FOR_STATE_METRIC = "ALERTS_FOR_STATE"
ALERTNAME = "alertname"
ALERTSTATE = "alertstate"
METRIC_NAME = "__name__"
RESOLVED_RETENTION_S = 15 * 60.0
DEFAULT_RESEND_DELAY_S = 60.0
ERR_DUPLICATE_ALERT_LABELSET = "vector contains metrics with the same labelset after applying alert labels"
ERR_DUPLICATE_RULE_LABELSET = "vector contains metrics with the same labelset after applying rule labels"
# Prometheus marks a series stale with this NaN bit pattern (value.StaleNaN); same as lookout.metrics.model
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]

PENDING, FIRING, INACTIVE, UNKNOWN = "pending", "firing", "inactive", "unknown"
_STATE_ORDER = {UNKNOWN: 0, INACTIVE: 1, PENDING: 2, FIRING: 3}


def label_key(labels: dict[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


def _set_label(lb: dict[str, str], name: str, value: str) -> None:
    """Prometheus' ``labels.Builder.Set``: an empty value removes the label."""
    if value == "":
        lb.pop(name, None)
    else:
        lb[name] = value


def generator_url(external_url: str, expr: str) -> str:
    """``externalURL + strutil.TableLinkForExpression(expr)``: the graph page of the expression."""
    return f"{external_url.rstrip('/')}/graph?g0.expr={quote_plus(expr)}&g0.tab=1"


@dataclass(slots=True)
class ActiveAlert:
    """Prometheus' ``rules.Alert``: one instance of an alerting rule. Zero times mean "not set"."""

    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    value: float
    active_at: float
    fired_at: float = 0.0
    resolved_at: float = 0.0
    last_sent_at: float = 0.0
    valid_until: float = 0.0
    keep_firing_since: float = 0.0

    def needs_sending(self, ts: float, resend_delay_s: float) -> bool:
        if self.state == PENDING:
            return False
        if self.resolved_at > self.last_sent_at:  # resolved since the last send: send it now
            return True
        return self.last_sent_at + resend_delay_s < ts

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActiveAlert:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def persisted(self) -> tuple[Any, ...]:
        """What must survive a restart; value and annotations change every evaluation and are
        recomputed by the next one, so a change in them alone is not worth a write."""
        return (self.state, self.active_at, self.fired_at, self.resolved_at, self.last_sent_at,
                self.valid_until, self.keep_firing_since)


class RuleEvalError(Exception):
    pass


@dataclass
class _Evaluation:
    """What a rule needs to evaluate once: the time, the query offset, the query and template
    functions bound to the tenant, and the group's limit."""

    ts: float
    offset_s: float
    query: Callable[[str, str, float], list[Sample]]  # (lang, expr, t)
    expand: Callable[[str, dict[str, str], float, str, str], str]  # (text, labels, value, lang, rule) -> text
    limit: int


class _RuleBase:
    kind = ""

    def __init__(self, rule: Rule, group_labels: dict[str, str]) -> None:
        self.rule = rule
        self.name: str = rule.name
        self.expr: str = rule.expr
        self.lang: str = getattr(rule, "lang", "promql") or "promql"
        # group labels (Prometheus 3) apply to every rule; the rule's own win
        self.labels: dict[str, str] = {**(group_labels or {}), **(rule.labels or {})}
        self.health = UNKNOWN
        self.last_error: str | None = None
        self.eval_duration_s = 0.0
        self.eval_timestamp = 0.0  # wall clock of the last evaluation's start; 0 = never

    def identity(self) -> str:
        """``nameAndLabels``: how a reload matches a new rule to an old one."""
        return self.name + json.dumps(sorted(self.labels.items()))

    def signature(self) -> tuple[Any, ...]:
        r = self.rule
        return (self.kind, self.name, self.expr, self.lang, getattr(r, "for_s", 0), getattr(r, "keep_firing_for_s", 0),
                tuple(sorted(self.labels.items())), tuple(sorted((getattr(r, "annotations", None) or {}).items())))


class RecordingRule(_RuleBase):
    kind = "record"

    def eval(self, ev: _Evaluation) -> list[tuple[dict[str, str], float, float]]:
        qt = ev.ts - ev.offset_s
        out: list[tuple[dict[str, str], float, float]] = []
        seen: set[LabelKey] = set()
        for metric, value in ev.query(self.lang, self.expr, qt):
            lb = dict(metric)
            lb[METRIC_NAME] = self.name
            for k, v in self.labels.items():
                _set_label(lb, k, v)
            key = label_key(lb)
            if key in seen:
                raise RuleEvalError(ERR_DUPLICATE_RULE_LABELSET)
            seen.add(key)
            out.append((lb, qt, float(value)))
        if ev.limit > 0 and len(out) > ev.limit:
            raise RuleEvalError(f"exceeded limit of {ev.limit} with {len(out)} series")
        return out


class AlertingRule(_RuleBase):
    kind = "alert"

    def __init__(self, rule: Rule, group_labels: dict[str, str]) -> None:
        super().__init__(rule, group_labels)
        self.annotations: dict[str, str] = dict(getattr(rule, "annotations", None) or {})
        self.hold_s = float(getattr(rule, "for_s", 0) or 0)
        self.keep_firing_for_s = float(getattr(rule, "keep_firing_for_s", 0) or 0)
        self.active: dict[LabelKey, ActiveAlert] = {}
        self._lock = threading.Lock()

    def eval(self, ev: _Evaluation) -> list[tuple[dict[str, str], float, float]]:
        qt = ev.ts - ev.offset_s
        res = ev.query(self.lang, self.expr, qt)
        ts = ev.ts
        alerts: dict[LabelKey, ActiveAlert] = {}
        for metric, value in res:
            value = float(value)
            lb = {k: v for k, v in metric.items() if k != METRIC_NAME}
            for k, v in self.labels.items():
                _set_label(lb, k, ev.expand(v, metric, value, self.lang, self.name))
            lb[ALERTNAME] = self.name
            annotations: dict[str, str] = {}
            for k, v in self.annotations.items():
                annotations[k] = ev.expand(v, metric, value, self.lang, self.name)
            key = label_key(lb)
            if key in alerts:
                raise RuleEvalError(ERR_DUPLICATE_ALERT_LABELSET)
            alerts[key] = ActiveAlert(labels=lb, annotations=annotations, state=PENDING, value=value, active_at=ts)

        out: list[tuple[dict[str, str], float, float]] = []
        with self._lock:
            for key, a in alerts.items():
                old = self.active.get(key)
                if old is not None and old.state != INACTIVE:
                    old.value = a.value
                    old.annotations = a.annotations
                    continue
                self.active[key] = a

            num_active_pending = 0
            for key, a in list(self.active.items()):
                if key not in alerts:
                    keep_firing = False
                    if a.state == FIRING and self.keep_firing_for_s > 0:
                        if a.keep_firing_since == 0:
                            a.keep_firing_since = ts
                        if ts - a.keep_firing_since < self.keep_firing_for_s:
                            keep_firing = True
                    if a.state == PENDING or (a.resolved_at != 0 and ts - a.resolved_at > RESOLVED_RETENTION_S):
                        del self.active[key]
                    if a.state != INACTIVE and not keep_firing:
                        a.state = INACTIVE
                        a.resolved_at = ts
                    if not keep_firing:
                        continue
                else:
                    a.keep_firing_since = 0.0  # the condition holds again
                num_active_pending += 1
                if a.state == PENDING and ts - a.active_at >= self.hold_s:
                    a.state = FIRING
                    a.fired_at = ts
                out.append(({**self.labels, **a.labels, METRIC_NAME: ALERT_METRIC, ALERTNAME: self.name,
                             ALERTSTATE: a.state}, qt, 1.0))
                out.append(({**self.labels, **a.labels, METRIC_NAME: ALERT_FOR_STATE_METRIC, ALERTNAME: self.name},
                            qt, float(int(a.active_at))))
            if ev.limit > 0 and num_active_pending > ev.limit:
                self.active = {}
                raise RuleEvalError(f"exceeded limit of {ev.limit} with {num_active_pending} alerts")
        return out

    def state(self) -> str:
        """The highest state of the rule's alerts; ``unknown`` before the first evaluation."""
        if self.eval_timestamp == 0:
            return UNKNOWN
        with self._lock:
            return max((a.state for a in self.active.values()), key=_STATE_ORDER.__getitem__, default=INACTIVE)

    def active_alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts (not the resolved ones kept for notification), by labels."""
        with self._lock:
            alerts = [dataclasses.replace(a) for a in self.active.values() if a.resolved_at == 0]
        return sorted(alerts, key=lambda a: label_key(a.labels))

    def alerts_to_send(self, ts: float, resend_delay_s: float, interval_s: float) -> list[ActiveAlert]:
        out: list[ActiveAlert] = []
        with self._lock:
            for a in self.active.values():
                if a.needs_sending(ts, resend_delay_s):
                    a.last_sent_at = ts
                    a.valid_until = ts + 4 * max(interval_s, resend_delay_s)  # two missed evals or sends
                    out.append(dataclasses.replace(a, labels=dict(a.labels)))
        return out

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a.to_dict() for a in self.active.values()]

    def restore(self, alerts: Iterable[dict[str, Any]]) -> None:
        """State from the store after a restart. The `for` clock (ActiveAt) and firing state
        survive; when it was last sent does not, so firing alerts are re-sent at once, as
        Prometheus does after a restart (the notifier, which may have restarted too and lost
        what it sent, needs them to notify a later resolution)."""
        with self._lock:
            for d in alerts:
                try:
                    a = ActiveAlert.from_dict(d)
                except TypeError:
                    continue
                a.last_sent_at = 0.0
                self.active.setdefault(label_key(a.labels), a)


AnyRule = AlertingRule | RecordingRule


class Group:
    """The runtime of one rule group of one tenant: its rules, their previous output (for stale
    markers) and its evaluation bookkeeping."""

    def __init__(self, tenant: str, group: RuleGroup, default_interval_s: float) -> None:
        self.tenant = tenant
        self.spec = group
        self.name: str = group.name
        self.file: str = getattr(group, "source", "") or ""
        self.interval_s = float(getattr(group, "interval_s", None) or default_interval_s)
        self.limit = int(getattr(group, "limit", 0) or 0)
        self.query_offset_s = float(getattr(group, "query_offset_s", None) or 0.0)
        glabels = dict(getattr(group, "labels", None) or {})
        self.rules: list[AnyRule] = [
            AlertingRule(r, glabels) if r.kind == "alert" else RecordingRule(r, glabels) for r in group.rules]
        self.series_prev: list[dict[LabelKey, dict[str, str]]] = [{} for _ in self.rules]
        self.stale_series: list[dict[str, str]] = []
        self.evaluation_time_s = 0.0
        self.last_evaluation = 0.0
        self.last_eval_ts = 0.0
        self.persisted: dict[str, tuple[Any, ...]] = {}  # rule key -> what was last written
        self.lock = threading.Lock()  # held for a whole evaluation; a reload waits for it

    @property
    def key(self) -> str:
        """``GroupKey(file, name)``, the ``rule_group`` label of Prometheus' metrics."""
        return f"{self.file};{self.name}"

    def signature(self) -> tuple[Any, ...]:
        return (self.name, self.file, self.interval_s, self.limit, self.query_offset_s,
                tuple(r.signature() for r in self.rules))

    def rule_keys(self) -> list[str]:
        """A stable id per rule for the state store: file, group, name and labels, plus the rank
        among identical rules (the first matches the first, as in ``CopyState``)."""
        seen: dict[str, int] = {}
        keys = []
        for r in self.rules:
            ident = r.identity()
            n = seen.get(ident, 0)
            seen[ident] = n + 1
            keys.append(json.dumps([self.file, self.name, ident, n]))
        return keys

    def eval_timestamp(self, now: float) -> float:
        """``EvalTimestamp``: the latest slot at or before ``now`` on this group's grid, offset by a
        hash of the group so that groups with the same interval spread over it."""
        # in microseconds: float seconds cannot hold nanoseconds of today's Unix time exactly
        interval_us = max(1, round(self.interval_s * 1e6))
        h = int.from_bytes(hashlib.blake2b(f"{self.name}\xff{self.file}".encode(), digest_size=8).digest(), "big")
        offset = h % interval_us
        adj = round(now * 1e6) - offset
        return (adj - adj % interval_us + offset) / 1e6

    def copy_state(self, old: Group) -> None:
        """``CopyState``: keep alerts and previous series of rules that still exist; series of
        rules that are gone are marked stale at the next evaluation."""
        self.evaluation_time_s = old.evaluation_time_s
        self.last_evaluation = old.last_evaluation
        self.last_eval_ts = old.last_eval_ts
        by_ident: dict[str, list[int]] = {}
        for i, r in enumerate(old.rules):
            by_ident.setdefault(r.identity(), []).append(i)
        old_keys = old.rule_keys()
        new_keys = self.rule_keys()
        for i, r in enumerate(self.rules):
            idx = by_ident.get(r.identity())
            if not idx:
                continue
            fi = idx.pop(0)
            self.series_prev[i] = old.series_prev[fi]
            if old_keys[fi] in old.persisted:
                self.persisted[new_keys[i]] = old.persisted[old_keys[fi]]
            fr = old.rules[fi]
            if isinstance(r, AlertingRule) and isinstance(fr, AlertingRule):
                with fr._lock:
                    r.active.update(fr.active)
                r.health, r.last_error = fr.health, fr.last_error
                r.eval_duration_s, r.eval_timestamp = fr.eval_duration_s, fr.eval_timestamp
            elif type(r) is type(fr):
                r.health, r.last_error = fr.health, fr.last_error
                r.eval_duration_s, r.eval_timestamp = fr.eval_duration_s, fr.eval_timestamp
        self.stale_series = list(old.stale_series)
        for rest in by_ident.values():
            for fi in rest:
                self.stale_series.extend(old.series_prev[fi].values())

    def all_series(self) -> list[dict[str, str]]:
        return [s for prev in self.series_prev for s in prev.values()] + self.stale_series


@dataclass
class GroupStats:
    """Prometheus' per-group rule metrics (``prometheus_rule_evaluations_total`` and friends)."""

    evaluations: int = 0
    failures: int = 0
    iterations: int = 0
    iterations_missed: int = 0
    last_duration_s: float = 0.0
    last_evaluation_s: float = 0.0
    samples: int = 0
    rules: int = 0
    interval_s: float = 0.0


class RuleManager:
    """Every tenant's rule groups, their evaluation loop, their state and their API views."""

    def __init__(self, query_fn: QueryFn, append_fn: AppendFn, notify_fn: NotifyFn, state: AlertState | None, *,
                 default_interval_s: float = 60.0, external_labels: dict[str, str] | None = None,
                 external_url: str = "", clock: Callable[[], float] = time.time,
                 resend_delay_s: float = DEFAULT_RESEND_DELAY_S, expand_fn: ExpandFn | None = None,
                 parse_fn: Callable[[str, str], list[RuleGroup]] | None = None,
                 load_api_groups: bool = True) -> None:
        self.query_fn = query_fn
        self.append_fn = append_fn
        self.notify_fn = notify_fn
        self.state = state
        self.default_interval_s = float(default_interval_s)
        self.external_labels = dict(external_labels or {})
        self.external_url = external_url
        self.clock = clock
        self.resend_delay_s = resend_delay_s
        self._expand_fn = expand_fn
        self._parse_fn = parse_fn
        self._lock = threading.RLock()
        # tenant -> source ("files" | "api") -> groups, in the order given
        self._sources: dict[str, dict[str, list[Group]]] = {}
        self._stats: dict[tuple[str, str], GroupStats] = {}
        self._stats_lock = threading.Lock()
        self._pending_stale: list[tuple[float, str, list[dict[str, str]]]] = []  # (due, tenant, series)
        self.generation = 0  # bumped on every change of the group set; run() reconciles on it
        if load_api_groups and state is not None:
            for tenant in state.group_tenants():
                try:
                    self.load_api_groups(tenant)
                except Exception:
                    log.exception("cannot load the API-managed rule groups of tenant %s", tenant)

    # ---- configuration ----------------------------------------------------------------------

    def _expand(self) -> ExpandFn | None:
        if self._expand_fn is None:
            try:
                from lookout.alerting.templates import expand
            except Exception:  # without the template module, texts are used as written
                log.exception("the alert template module cannot be loaded")
                return None
            self._expand_fn = expand
        return self._expand_fn

    def parse(self, text: str, source: str) -> list[RuleGroup]:
        if self._parse_fn is None:
            from lookout.alerting.rulefile import parse_rule_file

            self._parse_fn = parse_rule_file
        return self._parse_fn(text, source)

    def load_api_groups(self, tenant: str) -> None:
        """(Re)load the tenant's API-managed groups from the state store."""
        assert self.state is not None
        groups: list[RuleGroup] = []
        for namespace, name, text in self.state.list_groups(tenant):
            try:
                groups.extend(self.parse(text, namespace))
            except Exception as e:  # stored groups were validated; a parser change may still reject one
                log.error("stored rule group %s/%s of tenant %s no longer parses: %s", namespace, name, tenant, e)
        self.set_groups(tenant, groups, source="api")

    def set_groups(self, tenant: str, groups: list[RuleGroup], source: str = "files") -> None:
        """Replace the tenant's groups from ``source`` ("files" or "api"). Unchanged groups keep
        running untouched; changed ones start from the old group's state (``CopyState``); new
        ones restore their alert state from the store; removed ones have their series marked
        stale after two intervals (time for a renamed rule to write its own first)."""
        now = self.clock()
        with self._lock:
            old_list = self._sources.get(tenant, {}).get(source, [])
            old_by_key = {(g.file, g.name): g for g in old_list}
            new_list: list[Group] = []
            seen: set[tuple[str, str]] = set()
            for spec in groups:
                g = Group(tenant, spec, self.default_interval_s)
                k = (g.file, g.name)
                if k in seen:
                    raise ValueError(f"{g.file}: groupname: \"{g.name}\" is repeated in the same file")
                seen.add(k)
                old = old_by_key.get(k)
                if old is not None and old.signature() == g.signature():
                    old.spec = spec
                    new_list.append(old)
                    continue
                if old is not None:
                    with old.lock:  # an evaluation in flight finishes first, as Prometheus stops the group
                        g.copy_state(old)
                self._restore(g)
                new_list.append(g)
            kept = {id(g) for g in new_list}
            removed_keys: list[str] = []
            for old in old_list:
                if id(old) in kept:
                    continue
                k = (old.file, old.name)
                replacement = next((g for g in new_list if (g.file, g.name) == k), None)
                old_rule_keys = set(old.rule_keys())
                if replacement is None:
                    series = old.all_series()
                    if series:
                        self._pending_stale.append((now + 2 * old.interval_s, tenant, series))
                    with self._stats_lock:
                        self._stats.pop((tenant, old.key), None)
                else:
                    old_rule_keys -= set(replacement.rule_keys())
                removed_keys.extend(old_rule_keys)
            with self._stats_lock:  # exported from the start, as Prometheus registers them at group creation
                for g in new_list:
                    st = self._stats.setdefault((tenant, g.key), GroupStats())
                    st.rules, st.interval_s = len(g.rules), g.interval_s
            self._sources.setdefault(tenant, {})[source] = new_list
            if not any(self._sources[tenant].values()):
                del self._sources[tenant]
            self.generation += 1
        if removed_keys and self.state is not None:
            self.state.delete_alerts(tenant, removed_keys)

    def _restore(self, g: Group) -> None:
        """Load persisted alerts of rules that have no in-memory state yet (a fresh start)."""
        if self.state is None:
            return
        keys = g.rule_keys()
        wanted = {k: r for k, r in zip(keys, g.rules, strict=True) if isinstance(r, AlertingRule) and not r.active}
        if not wanted:
            return
        for k, alerts in self.state.load_alerts(g.tenant, wanted).items():
            rule = wanted[k]
            assert isinstance(rule, AlertingRule)
            rule.restore(alerts)
            g.persisted[k] = _persist_signature(alerts)

    def groups(self, tenant: str) -> list[Group]:
        """The tenant's groups ordered by file then name, as Prometheus' ``RuleGroups``."""
        with self._lock:
            srcs = self._sources.get(tenant, {})
            out = [g for lst in srcs.values() for g in lst]
        return sorted(out, key=lambda g: (g.file, g.name))

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted(self._sources)

    def find_group(self, tenant: str, group: RuleGroup | Group | str) -> Group:
        if isinstance(group, Group):
            return group
        name = group if isinstance(group, str) else group.name
        file = None if isinstance(group, str) else (getattr(group, "source", "") or "")
        for g in self.groups(tenant):
            if g.name == name and (file is None or g.file == file):
                return g
        raise KeyError(f"no rule group {name!r} for tenant {tenant!r}")

    # ---- evaluation -------------------------------------------------------------------------

    def eval_group_once(self, tenant: str, group: RuleGroup | Group | str, t: float) -> None:
        """Evaluate every rule of the group at ``t`` (synchronously; ``run`` calls this in a thread)."""
        g = self.find_group(tenant, group)
        with g.lock:
            self._eval_group(g, t)

    def _eval_group(self, g: Group, ts: float) -> None:
        tenant = g.tenant
        start_wall = self.clock()
        t0 = time.perf_counter()
        expand_fn = self._expand()

        def query(lang: str, expr: str, qt: float) -> list[Sample]:
            return self.query_fn(tenant, lang, expr, qt)

        def expand(text: str, labels: dict[str, str], value: float, lang: str, rule_name: str) -> str:
            if "{{" not in text or expand_fn is None:  # no template action: the text is the output
                return text
            data = _template_data(labels, value, self.external_labels, self.external_url)

            def template_query(expr: str) -> list[dict[str, Any]]:  # the ``query`` template function
                return [{"labels": lb, "value": v} for lb, v in self.query_fn(tenant, lang, expr, ts)]

            try:
                return expand_fn(text, data, query_fn=template_query, name=f"__alert_{rule_name}")
            except Exception as e:  # Prometheus puts the error into the text, and the rule keeps going
                log.warning("expanding alert template failed: %s", e)
                return f"<error expanding template: {e}>"

        ev = _Evaluation(ts=ts, offset_s=g.query_offset_s, query=query, expand=expand, limit=g.limit)
        samples_total = 0
        failures = 0
        to_persist: dict[str, list[dict[str, Any]]] = {}
        rule_keys = g.rule_keys()
        for i, rule in enumerate(g.rules):
            rt0 = time.perf_counter()
            rule_wall = self.clock()
            try:
                try:
                    vector = rule.eval(ev)
                except Exception as e:
                    rule.health, rule.last_error = "err", str(e) or type(e).__name__
                    failures += 1
                    log.debug("evaluating rule %s of group %s failed: %s", rule.name, g.key, e)
                    continue
                rule.health, rule.last_error = "ok", None
                samples_total += len(vector)
                if isinstance(rule, AlertingRule):
                    self._send(tenant, rule, g, ts)
                returned = {label_key(lb): lb for lb, _, _ in vector}
                batch = list(vector)
                for k, lb in g.series_prev[i].items():
                    if k not in returned:  # no longer produced: mark it stale
                        batch.append((lb, ts - g.query_offset_s, STALE_NAN))
                try:
                    if batch:
                        self.append_fn(tenant, batch)
                except Exception as e:
                    rule.health, rule.last_error = "err", str(e) or type(e).__name__
                    failures += 1
                    log.warning("writing the results of rule %s of group %s failed: %s", rule.name, g.key, e)
                else:
                    g.series_prev[i] = returned
            finally:
                rule.eval_duration_s = time.perf_counter() - rt0
                rule.eval_timestamp = rule_wall
                if isinstance(rule, AlertingRule):
                    snap = rule.snapshot()
                    sig = _persist_signature(snap)
                    if g.persisted.get(rule_keys[i]) != sig:
                        to_persist[rule_keys[i]] = snap
                        g.persisted[rule_keys[i]] = sig
        if g.stale_series:
            try:
                self.append_fn(tenant, [(lb, ts - g.query_offset_s, STALE_NAN) for lb in g.stale_series])
                g.stale_series = []
            except Exception as e:
                log.warning("writing stale markers of group %s failed: %s", g.key, e)
        if to_persist and self.state is not None:
            try:
                self.state.save_alerts(tenant, to_persist)
            except Exception:
                log.exception("persisting the alert state of group %s failed", g.key)
                for k in to_persist:
                    g.persisted.pop(k, None)
        g.evaluation_time_s = time.perf_counter() - t0
        g.last_evaluation = start_wall
        g.last_eval_ts = ts
        with self._stats_lock:
            st = self._stats.setdefault((tenant, g.key), GroupStats())
            st.evaluations += len(g.rules)
            st.failures += failures
            st.iterations += 1
            st.last_duration_s = g.evaluation_time_s
            st.last_evaluation_s = start_wall
            st.samples = samples_total
            st.rules = len(g.rules)
            st.interval_s = g.interval_s

    def _send(self, tenant: str, rule: AlertingRule, g: Group, ts: float) -> None:
        """``sendAlerts`` + ``SendAlerts``: convert what needs sending and hand it to notify_fn."""
        due = rule.alerts_to_send(ts, self.resend_delay_s, g.interval_s)
        if not due:
            return
        url = generator_url(self.external_url, rule.expr)
        out = []
        for a in due:
            labels = dict(a.labels)
            for k, v in self.external_labels.items():  # the notifier adds external labels it lacks
                labels.setdefault(k, v)
            out.append(Alert(labels=labels, annotations=dict(a.annotations), starts_at=a.fired_at,
                             ends_at=a.resolved_at if a.resolved_at else a.valid_until,
                             generator_url=url, updated_at=ts))
        try:
            self.notify_fn(tenant, out)
        except Exception:
            log.exception("sending %d alerts of rule %s failed", len(out), rule.name)

    def prune_state(self) -> int:
        """Delete persisted alert state of rules that are not loaded now (removed while the
        process was down). Call it once every source of groups has been loaded: pruning earlier
        would throw away the state of rules about to come back."""
        if self.state is None:
            return 0
        keep = {t: {k for g in self.groups(t) for k in g.rule_keys()} for t in self.tenants()}
        return self.state.prune_alerts(keep)

    def flush_stale(self, now: float | None = None) -> None:
        """Write the stale markers of removed groups whose grace time is over."""
        now = self.clock() if now is None else now
        with self._lock:
            due = [p for p in self._pending_stale if p[0] <= now]
            self._pending_stale = [p for p in self._pending_stale if p[0] > now]
        for _, tenant, series in due:
            try:
                self.append_fn(tenant, [(lb, now, STALE_NAN) for lb in series])
            except Exception as e:
                log.warning("writing stale markers of a removed group failed: %s", e)

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate every group on its interval until ``stop`` is set. Each group runs in its own
        task on slots aligned as in Prometheus (``EvalTimestamp``); the first evaluation is at the
        first slot after start. Reloads are picked up within half a second."""
        tasks: dict[int, tuple[Group, asyncio.Task[None]]] = {}
        seen_generation = -1
        try:
            while not stop.is_set():
                if self.generation != seen_generation:
                    seen_generation = self.generation
                    current = {id(g): g for t in self.tenants() for g in self.groups(t)}
                    for gid in list(tasks):
                        if gid not in current:
                            tasks.pop(gid)[1].cancel()
                    for gid, g in current.items():
                        if gid not in tasks:
                            tasks[gid] = (g, asyncio.create_task(self._run_group(g, stop)))
                if self._pending_stale:
                    await asyncio.to_thread(self.flush_stale)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
                except TimeoutError:
                    pass
        finally:
            for _, task in tasks.values():
                task.cancel()
            await asyncio.gather(*(t for _, t in tasks.values()), return_exceptions=True)

    async def _run_group(self, g: Group, stop: asyncio.Event) -> None:
        ts = g.eval_timestamp(self.clock()) + g.interval_s
        while not stop.is_set():
            delay = ts - self.clock()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    return
                except TimeoutError:
                    pass
            try:
                await asyncio.to_thread(self.eval_group_once, g.tenant, g, ts)
            except Exception:
                log.exception("evaluating group %s failed", g.key)
            missed = max(0, int((self.clock() - ts) // g.interval_s) - 1) if g.interval_s > 0 else 0
            if missed:
                with self._stats_lock:
                    st = self._stats.setdefault((g.tenant, g.key), GroupStats())
                    st.iterations_missed += missed
            ts += (missed + 1) * g.interval_s

    # ---- views ------------------------------------------------------------------------------

    def stats(self) -> list[dict[str, Any]]:
        """Per tenant and group: rule evaluations and failures (counters), iterations (missed
        ones too), and the last evaluation's time, duration and sample count."""
        with self._stats_lock:
            items = sorted(self._stats.items())
        return [{"tenant": t, "rule_group": k, "evaluations": s.evaluations, "failures": s.failures,
                 "iterations": s.iterations, "iterations_missed": s.iterations_missed,
                 "last_duration_seconds": s.last_duration_s, "last_evaluation_timestamp_seconds": s.last_evaluation_s,
                 "samples": s.samples, "rules": s.rules, "interval_seconds": s.interval_s}
                for (t, k), s in items]

    def rules_json(self, tenant: str, type_filter: str | None = None, rule_names: Iterable[str] | None = None,
                   group_names: Iterable[str] | None = None, files: Iterable[str] | None = None,
                   exclude_alerts: bool = False, matcher_sets: list[list[Any]] | None = None) -> dict[str, Any]:
        """The ``data`` of Prometheus' ``GET /api/v1/rules``. Groups whose rules are all filtered
        out are left out, as Prometheus does."""
        if type_filter not in (None, "", "alert", "record"):
            raise ValueError(f'not supported value "{type_filter}"')
        want_alert = type_filter in (None, "", "alert")
        want_record = type_filter in (None, "", "record")
        rn, rg, fs = set(rule_names or ()), set(group_names or ()), set(files or ())
        out = []
        for g in self.groups(tenant):
            if (rg and g.name not in rg) or (fs and g.file not in fs):
                continue
            rules = []
            for r in g.rules:
                if rn and r.name not in rn:
                    continue
                if matcher_sets and not any(all(m.matches(r.labels.get(m.name, "")) for m in ms)
                                            for ms in matcher_sets):
                    continue
                if isinstance(r, AlertingRule):
                    if not want_alert:
                        continue
                    d: dict[str, Any] = {
                        "state": r.state(), "name": r.name, "query": r.expr, "duration": _num(r.hold_s),
                        "keepFiringFor": _num(r.keep_firing_for_s), "labels": _sorted(r.labels),
                        "annotations": _sorted(r.annotations),
                        "alerts": None if exclude_alerts else [alert_json(a) for a in r.active_alerts()],
                        "health": r.health}
                else:
                    if not want_record:
                        continue
                    d = {"name": r.name, "query": r.expr}
                    if r.labels:
                        d["labels"] = _sorted(r.labels)
                    d["health"] = r.health
                if r.last_error:
                    d["lastError"] = r.last_error
                d["evaluationTime"] = r.eval_duration_s
                d["lastEvaluation"] = rfc3339(r.eval_timestamp)
                d["type"] = "alerting" if isinstance(r, AlertingRule) else "recording"
                rules.append(d)
            if rules:
                out.append({"name": g.name, "file": g.file, "rules": rules, "interval": _num(g.interval_s),
                            "limit": g.limit, "evaluationTime": g.evaluation_time_s,
                            "lastEvaluation": rfc3339(g.last_evaluation)})
        return {"groups": out}

    def alerts_json(self, tenant: str) -> dict[str, Any]:
        """The ``data`` of Prometheus' ``GET /api/v1/alerts``: active alerts of every alerting
        rule, rules ordered by state (firing first) then name."""
        rules = [r for g in self.groups(tenant) for r in g.rules if isinstance(r, AlertingRule)]
        rules.sort(key=lambda r: (-_STATE_ORDER[r.state()], r.name))
        return {"alerts": [alert_json(a) for r in rules for a in r.active_alerts()]}


def _template_data(labels: dict[str, str], value: float, external_labels: dict[str, str], external_url: str) -> Any:
    try:
        from lookout.alerting.templates import TemplateData
    except Exception:  # an injected expand function takes any object with these attributes
        from types import SimpleNamespace as TemplateData  # type: ignore[assignment]

    return TemplateData(labels=dict(labels), value=value, external_labels=dict(external_labels),
                        external_url=external_url)


def _persist_signature(alerts: list[dict[str, Any]]) -> tuple[Any, ...]:
    return tuple(sorted((json.dumps(a["labels"], sort_keys=True), ActiveAlert.from_dict(a).persisted())
                        for a in alerts))


def _sorted(labels: dict[str, str]) -> dict[str, str]:
    """Label sets print sorted by name, as Prometheus' ``labels.Labels`` marshal."""
    return dict(sorted(labels.items()))


def _num(x: float) -> float | int:
    """Go prints a whole float64 without a fraction (``600``, not ``600.0``)."""
    return int(x) if float(x).is_integer() else x


def alert_json(a: ActiveAlert) -> dict[str, Any]:
    d: dict[str, Any] = {"labels": _sorted(a.labels), "annotations": _sorted(a.annotations), "state": a.state,
                         "activeAt": rfc3339(a.active_at)}
    if a.keep_firing_since:
        d["keepFiringSince"] = rfc3339(a.keep_firing_since)
    d["value"] = format_value(a.value)
    return d


def rfc3339(t: float) -> str:
    """Go's ``time.Time`` JSON (RFC 3339 with nanoseconds, trailing zeros trimmed), in UTC; the
    zero time for "never", as Prometheus prints an unset ``lastEvaluation``."""
    if not t:
        return "0001-01-01T00:00:00Z"
    ns = int(round(t * 1e9))
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def format_value(v: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'e', -1, 64)``: the shortest digits that round-trip, in
    exponent form with at least two exponent digits (``1e+00``, ``2.5e-01``)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    sign, digits, exp = Decimal(repr(float(v))).as_tuple()
    assert isinstance(exp, int)
    ds = list(digits)
    while len(ds) > 1 and ds[-1] == 0:
        ds.pop()
        exp += 1
    while len(ds) > 1 and ds[0] == 0:
        ds.pop(0)
    neg = "-" if sign else ""
    if ds == [0]:
        return f"{neg}0e+00"
    e10 = exp + len(ds) - 1
    mant = str(ds[0]) + ("." + "".join(map(str, ds[1:])) if len(ds) > 1 else "")
    return f"{neg}{mant}e{'+' if e10 >= 0 else '-'}{abs(e10):02d}"
