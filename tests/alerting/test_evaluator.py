"""The rule evaluator's state machines against Prometheus' semantics (rules/alerting.go,
recording.go, group.go), with a fake clock, a fake query function and recording append/notify.

Rules and groups are small stand-ins with the attributes of lookout.alerting.rulefile's (the
evaluator only reads attributes); templates use the real module when present, else a stand-in
that knows ``$labels.x``, ``$value`` and ``$externalLabels.x``.
"""

from __future__ import annotations

import asyncio
import math
import re
import struct
from dataclasses import dataclass, field

import pytest

from lookout.alerting.evaluator import (
    ERR_DUPLICATE_ALERT_LABELSET,
    ERR_DUPLICATE_RULE_LABELSET,
    RuleManager,
    format_value,
    rfc3339,
)
from lookout.alerting.state import AlertState

T0 = 1_700_000_000.0  # a whole minute


@dataclass
class Rule:
    kind: str
    name: str
    expr: str
    lang: str = "promql"
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    line: int = 0


@dataclass
class RuleGroup:
    name: str
    rules: list[Rule]
    interval_s: float | None = 60.0
    limit: int = 0
    query_offset_s: float | None = None
    source: str = "/etc/lookout/rules.yaml"
    labels: dict[str, str] = field(default_factory=dict)


def _go_value(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def fake_expand(text: str, data, query_fn=None, name: str = "") -> str:
    def sub(m: re.Match[str]) -> str:
        e = m.group(1).strip()
        if e == "$value":
            return _go_value(data.value)
        if e.startswith("$labels."):
            return data.labels.get(e[len("$labels."):], "")
        if e.startswith("$externalLabels."):
            return data.external_labels.get(e[len("$externalLabels."):], "")
        if e == "$externalURL":
            return data.external_url
        raise ValueError(f"stand-in cannot expand {e}")

    return re.sub(r"\{\{(.*?)\}\}", sub, text)


try:
    from lookout.alerting.templates import expand as EXPAND  # noqa: N812
except Exception:  # not there yet (or mid-edit by its owner)
    EXPAND = fake_expand


class Fake:
    """query/append/notify doubles plus a settable clock."""

    def __init__(self) -> None:
        self.now = T0
        self.results: dict[str, list[tuple[dict[str, str], float]]] = {}
        self.errors: dict[str, str] = {}
        self.appended: list[tuple[str, list[tuple[dict[str, str], float, float]]]] = []
        self.notified: list[tuple[str, list]] = []
        self.queries: list[tuple[str, str, str, float]] = []

    def query(self, tenant: str, lang: str, expr: str, t: float):
        self.queries.append((tenant, lang, expr, t))
        if expr in self.errors:
            raise RuntimeError(self.errors[expr])
        return [(dict(lb), v) for lb, v in self.results.get(expr, [])]

    def append(self, tenant: str, samples) -> None:
        self.appended.append((tenant, list(samples)))

    def notify(self, tenant: str, alerts) -> None:
        self.notified.append((tenant, list(alerts)))

    def clock(self) -> float:
        return self.now

    def manager(self, state: AlertState | None = None, **kw) -> RuleManager:
        return RuleManager(self.query, self.append, self.notify, state, clock=self.clock, expand_fn=EXPAND, **kw)

    def samples(self, name: str | None = None) -> list[tuple[dict[str, str], float, float]]:
        out = [s for _, batch in self.appended for s in batch]
        return [s for s in out if name is None or s[0].get("__name__") == name]

    def take(self):
        """Samples and notifications since the last call."""
        s, n = self.samples(), [a for _, alerts in self.notified for a in alerts]
        self.appended.clear()
        self.notified.clear()
        return s, n


def _is_stale(v: float) -> bool:
    return math.isnan(v) and struct.pack("<d", v) == struct.pack("<Q", 0x7FF0000000000002)


def _run(fake: Fake, mgr: RuleManager, group: RuleGroup, t: float, tenant: str = "t1") -> None:
    fake.now = t
    mgr.eval_group_once(tenant, group, t)


def _alert_rule(mgr: RuleManager, tenant: str = "t1", group: str = "g", i: int = 0):
    return mgr.find_group(tenant, group).rules[i]


UP = [({"__name__": "up", "job": "api", "instance": "a"}, 0.0)]


def test_pending_then_firing_after_for_with_alerts_series():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("alert", "Down", "up == 0", for_s=300, labels={"severity": "page"})])
    mgr.set_groups("t1", [g])
    fake.results["up == 0"] = UP
    want_labels = {"alertname": "Down", "job": "api", "instance": "a", "severity": "page"}

    table = [  # (offset, expected state, ALERTS alertstate)
        (0, "pending", "pending"),
        (60, "pending", "pending"),
        (240, "pending", "pending"),
        (300, "firing", "firing"),
        (360, "firing", "firing"),
    ]
    for off, state, alertstate in table:
        _run(fake, mgr, g, T0 + off)
        (a,) = _alert_rule(mgr).active_alerts()
        assert (off, a.state) == (off, state)
        assert a.labels == want_labels
        assert a.active_at == T0
        samples, _ = fake.take()
        alerts = [s for s in samples if s[0]["__name__"] == "ALERTS" and not _is_stale(s[2])]
        assert alerts == [({**want_labels, "__name__": "ALERTS", "alertstate": alertstate}, T0 + off, 1.0)]
        for_state = [s for s in samples if s[0]["__name__"] == "ALERTS_FOR_STATE"]
        assert for_state == [({**want_labels, "__name__": "ALERTS_FOR_STATE"}, T0 + off, T0)]
        # when it fires, the pending series stops and gets a stale marker in the same write
        stale = [s[0]["alertstate"] for s in samples if _is_stale(s[2])]
        assert stale == (["pending"] if off == 300 else [])
    assert mgr.stats()[0]["evaluations"] == 5 and mgr.stats()[0]["failures"] == 0


def test_pending_series_marked_stale_when_it_fires():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("alert", "Down", "up == 0", for_s=60)])
    mgr.set_groups("t1", [g])
    fake.results["up == 0"] = UP
    _run(fake, mgr, g, T0)
    fake.take()
    _run(fake, mgr, g, T0 + 60)
    samples, _ = fake.take()
    stale = [s for s in samples if _is_stale(s[2])]
    assert [s[0]["alertstate"] for s in stale] == ["pending"]


def test_for_zero_fires_at_once_and_notifies():
    fake = Fake()
    mgr = fake.manager(external_url="http://lookout:3000", external_labels={"cluster": "eu"})
    g = RuleGroup("g", [Rule("alert", "Down", "up == 0")])
    mgr.set_groups("t1", [g])
    fake.results["up == 0"] = UP
    _run(fake, mgr, g, T0)
    (a,) = _alert_rule(mgr).active_alerts()
    assert a.state == "firing" and a.fired_at == T0
    _, notified = fake.take()
    (n,) = notified
    assert n.labels == {"alertname": "Down", "job": "api", "instance": "a", "cluster": "eu"}
    assert n.starts_at == T0 and n.ends_at == T0 + 4 * 60
    assert n.generator_url == "http://lookout:3000/graph?g0.expr=up+%3D%3D+0&g0.tab=1"


def test_resend_timing_and_resolved_retention():
    """sendAlerts: pending never; firing when LastSentAt + resend_delay is strictly before now;
    resolved at once, then every resend delay while retained (15m), then dropped."""
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("alert", "Down", "up == 0", for_s=60)])
    mgr.set_groups("t1", [g])
    fake.results["up == 0"] = UP
    sent_at = []
    resolved_sent = []
    for off in range(0, 30 * 60 + 1, 60):
        if off == 300:
            fake.results["up == 0"] = []  # resolves at T0+300
        _run(fake, mgr, g, T0 + off)
        _, notified = fake.take()
        for n in notified:
            (resolved_sent if n.ends_at <= T0 + off else sent_at).append(off)
            if n.ends_at <= T0 + off:
                assert n.ends_at == T0 + 300 and n.starts_at == T0 + 60
            else:
                assert n.ends_at == T0 + off + 240
    assert sent_at == [60, 180]  # fired at 60; 120 is not strictly after 60 + 1m
    assert resolved_sent[0] == 300  # resolved since last send: sent at once
    assert resolved_sent == [300, 420, 540, 660, 780, 900, 1020, 1140]
    # 15m after resolution (and one more eval) the alert is gone
    assert _alert_rule(mgr).active == {}


def test_resolve_removes_from_api_and_pending_disappears_silently():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("alert", "Down", "up == 0", for_s=600)])
    mgr.set_groups("t1", [g])
    fake.results["up == 0"] = UP
    _run(fake, mgr, g, T0)
    fake.results["up == 0"] = []
    _run(fake, mgr, g, T0 + 60)
    rule = _alert_rule(mgr)
    assert rule.active == {} and rule.state() == "inactive"
    _, notified = fake.take()
    assert notified == []  # pending alerts are never sent


def test_keep_firing_for():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("alert", "Down", "up == 0", keep_firing_for_s=120)])
    mgr.set_groups("t1", [g])
    fake.results["up == 0"] = UP
    _run(fake, mgr, g, T0)
    fake.results["up == 0"] = []
    table = [(60, "firing", T0 + 60), (120, "firing", T0 + 60), (180, None, None)]
    for off, state, since in table:
        _run(fake, mgr, g, T0 + off)
        alerts = _alert_rule(mgr).active_alerts()
        if state is None:
            assert alerts == []
            assert list(_alert_rule(mgr).active.values())[0].resolved_at == T0 + off
        else:
            (a,) = alerts
            assert (a.state, a.keep_firing_since) == (state, since)
            data = mgr.alerts_json("t1")["alerts"][0]
            assert data["keepFiringSince"] == rfc3339(since)
    # the condition comes back: a new pending cycle is not needed for for=0, and the clock resets
    fake.results["up == 0"] = UP
    _run(fake, mgr, g, T0 + 240)
    (a,) = _alert_rule(mgr).active_alerts()
    assert a.state == "firing" and a.keep_firing_since == 0 and a.active_at == T0 + 240


def test_keep_firing_reset_when_condition_returns():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("alert", "Down", "up == 0", keep_firing_for_s=300)])
    mgr.set_groups("t1", [g])
    fake.results["up == 0"] = UP
    _run(fake, mgr, g, T0)
    fake.results["up == 0"] = []
    _run(fake, mgr, g, T0 + 60)
    fake.results["up == 0"] = UP
    _run(fake, mgr, g, T0 + 120)
    (a,) = _alert_rule(mgr).active_alerts()
    assert a.keep_firing_since == 0 and a.active_at == T0


def test_templates_in_labels_and_annotations():
    fake = Fake()
    mgr = fake.manager(external_labels={"cluster": "eu"})
    rule = Rule("alert", "HighLatency", "latency > 1",
                labels={"severity": "{{ $labels.job }}-page", "static": "x"},
                annotations={"summary": "{{ $labels.instance }} is slow: {{ $value }}s",
                             "where": "{{ $externalLabels.cluster }}"})
    g = RuleGroup("g", [rule])
    mgr.set_groups("t1", [g])
    fake.results["latency > 1"] = [({"__name__": "latency", "job": "api", "instance": "a"}, 5.0)]
    _run(fake, mgr, g, T0)
    (a,) = _alert_rule(mgr).active_alerts()
    assert a.labels == {"alertname": "HighLatency", "job": "api", "instance": "a", "severity": "api-page",
                        "static": "x"}
    assert a.annotations == {"summary": "a is slow: 5s", "where": "eu"}
    # the annotation follows the value; the alert keeps its identity
    fake.results["latency > 1"] = [({"__name__": "latency", "job": "api", "instance": "a"}, 7.0)]
    _run(fake, mgr, g, T0 + 60)
    (a,) = _alert_rule(mgr).active_alerts()
    assert a.annotations["summary"] == "a is slow: 7s" and a.value == 7.0


def test_template_error_goes_into_text():
    def broken(text, data, query_fn=None, name=""):
        raise ValueError("boom")

    fake = Fake()
    mgr = RuleManager(fake.query, fake.append, fake.notify, None, clock=fake.clock, expand_fn=broken)
    g = RuleGroup("g", [Rule("alert", "A", "x", annotations={"s": "{{ $value }}"})])
    mgr.set_groups("t1", [g])
    fake.results["x"] = [({"job": "j"}, 1.0)]
    _run(fake, mgr, g, T0)
    (a,) = _alert_rule(mgr).active_alerts()
    assert a.annotations["s"] == "<error expanding template: boom>"
    assert _alert_rule(mgr).health == "ok"


def test_duplicate_labelset_is_an_error_and_other_rules_still_run():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [
        Rule("alert", "Dup", "dup"),
        Rule("record", "job:ok:sum", "ok"),
        Rule("record", "job:dup:sum", "dup2", labels={"job": "same"}),
    ])
    mgr.set_groups("t1", [g])
    fake.results["dup"] = [({"__name__": "a", "job": "x"}, 1.0), ({"__name__": "b", "job": "x"}, 1.0)]
    fake.results["ok"] = [({"job": "x"}, 3.0)]
    fake.results["dup2"] = [({"job": "x"}, 1.0), ({"job": "y"}, 1.0)]
    _run(fake, mgr, g, T0)
    dup, ok, dup2 = mgr.find_group("t1", "g").rules
    assert (dup.health, dup.last_error) == ("err", ERR_DUPLICATE_ALERT_LABELSET)
    assert (ok.health, ok.last_error) == ("ok", None)
    assert (dup2.health, dup2.last_error) == ("err", ERR_DUPLICATE_RULE_LABELSET)
    assert fake.samples("job:ok:sum") == [({"__name__": "job:ok:sum", "job": "x"}, T0, 3.0)]
    (st,) = mgr.stats()
    assert (st["evaluations"], st["failures"], st["rule_group"]) == (3, 2, "/etc/lookout/rules.yaml;g")


def test_query_error_sets_last_error():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("alert", "A", "bad"), Rule("alert", "B", "good")])
    mgr.set_groups("t1", [g])
    fake.errors["bad"] = "parse error: unexpected end of input"
    fake.results["good"] = [({"job": "j"}, 1.0)]
    _run(fake, mgr, g, T0)
    data = mgr.rules_json("t1")
    a, b = data["groups"][0]["rules"]
    assert a["health"] == "err" and a["lastError"] == "parse error: unexpected end of input"
    assert b["health"] == "ok" and "lastError" not in b and len(b["alerts"]) == 1
    # recovery clears the error
    del fake.errors["bad"]
    _run(fake, mgr, g, T0 + 60)
    a = mgr.rules_json("t1")["groups"][0]["rules"][0]
    assert a["health"] == "ok" and "lastError" not in a


def test_group_limit():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("alert", "A", "two"), Rule("record", "r", "two")], limit=1)
    mgr.set_groups("t1", [g])
    fake.results["two"] = [({"job": "x"}, 1.0), ({"job": "y"}, 1.0)]
    _run(fake, mgr, g, T0)
    a, r = mgr.find_group("t1", "g").rules
    assert a.last_error == "exceeded limit of 1 with 2 alerts" and a.active == {}
    assert r.last_error == "exceeded limit of 1 with 2 series"
    fake.results["two"] = [({"job": "x"}, 1.0)]
    _run(fake, mgr, g, T0 + 60)
    assert a.health == "ok" and r.health == "ok"


def test_recording_rule_write_back_and_stale_marker():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("record", "job:requests:rate5m", "sum by (job) (rate(requests[5m]))",
                             labels={"team": "core"})], query_offset_s=30, labels={"env": "prod"})
    mgr.set_groups("t1", [g])
    expr = "sum by (job) (rate(requests[5m]))"
    fake.results[expr] = [({"job": "a"}, 1.5), ({"job": "b"}, 2.0)]
    _run(fake, mgr, g, T0)
    assert fake.queries[-1] == ("t1", "promql", expr, T0 - 30)  # query_offset shifts the query time
    labels = {"__name__": "job:requests:rate5m", "team": "core", "env": "prod"}
    assert sorted(fake.samples(), key=lambda s: s[0]["job"]) == [
        ({**labels, "job": "a"}, T0 - 30, 1.5), ({**labels, "job": "b"}, T0 - 30, 2.0)]
    fake.take()
    fake.results[expr] = [({"job": "a"}, 1.0)]
    _run(fake, mgr, g, T0 + 60)
    samples, _ = fake.take()
    assert ({**labels, "job": "a"}, T0 + 30, 1.0) in samples
    (stale,) = [s for s in samples if _is_stale(s[2])]
    assert stale[0] == {**labels, "job": "b"} and stale[1] == T0 + 30


def test_logql_rules_pass_their_language():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("record", "app:errors:rate1m", 'sum(rate({app="x"} |= "error" [1m]))', lang="logql")])
    mgr.set_groups("t1", [g])
    _run(fake, mgr, g, T0)
    assert fake.queries[-1][:2] == ("t1", "logql")


def test_reload_keeps_state_of_rules_that_still_exist(tmp_path):
    fake = Fake()
    mgr = fake.manager(AlertState(tmp_path / "s.db"))
    down = Rule("alert", "Down", "up == 0", for_s=300)
    rec = Rule("record", "r", "rec")
    g1 = RuleGroup("g", [down, rec])
    mgr.set_groups("t1", [g1])
    fake.results["up == 0"] = UP
    fake.results["rec"] = [({"job": "x"}, 1.0)]
    _run(fake, mgr, g1, T0)
    fake.take()
    # a new rule is added, the recording rule removed, and Down is unchanged
    g2 = RuleGroup("g", [down, Rule("alert", "New", "new")])
    mgr.set_groups("t1", [g2])
    _run(fake, mgr, g2, T0 + 300)
    (a,) = _alert_rule(mgr).active_alerts()
    assert a.active_at == T0 and a.state == "firing"
    samples, _ = fake.take()
    stale = [s for s in samples if _is_stale(s[2])]
    assert [s[0] for s in stale if s[0]["__name__"] == "r"] == [{"__name__": "r", "job": "x"}]


def test_removed_group_series_are_marked_stale_after_two_intervals():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("record", "r", "rec")])
    mgr.set_groups("t1", [g])
    fake.results["rec"] = [({"job": "x"}, 1.0)]
    _run(fake, mgr, g, T0)
    fake.take()
    mgr.set_groups("t1", [])
    assert mgr.groups("t1") == []
    mgr.flush_stale(T0 + 60)
    assert fake.samples() == []
    mgr.flush_stale(T0 + 120)
    ((lb, t, v),) = fake.samples()
    assert lb == {"__name__": "r", "job": "x"} and t == T0 + 120 and _is_stale(v)


def test_restart_restores_active_at_from_sqlite(tmp_path):
    db = tmp_path / "alerts.db"
    fake = Fake()
    g = RuleGroup("g", [Rule("alert", "Down", "up == 0", for_s=300)])
    fake.results["up == 0"] = UP
    store = AlertState(db)
    mgr = fake.manager(store)
    mgr.set_groups("t1", [g])
    _run(fake, mgr, g, T0)
    _run(fake, mgr, g, T0 + 60)
    assert _alert_rule(mgr).active_alerts()[0].state == "pending"
    del mgr
    store.close()

    # a new process: new manager over the same database
    store2 = AlertState(db)
    mgr2 = fake.manager(store2)
    mgr2.set_groups("t1", [g])
    (restored,) = _alert_rule(mgr2).active_alerts()
    assert restored.active_at == T0 and restored.state == "pending"
    _run(fake, mgr2, g, T0 + 240)
    (a,) = _alert_rule(mgr2).active_alerts()
    assert (a.state, a.active_at) == ("pending", T0)
    _run(fake, mgr2, g, T0 + 300)  # fires exactly `for` after the original ActiveAt
    (a,) = _alert_rule(mgr2).active_alerts()
    assert (a.state, a.active_at, a.fired_at) == ("firing", T0, T0 + 300)
    fake.take()

    # the firing state survives too; the alert is re-sent at once after a restart, as
    # Prometheus does (the notifier may have lost what it sent, and needs it to send a resolution)
    store2.close()
    mgr3 = fake.manager(AlertState(db))
    mgr3.set_groups("t1", [g])
    _run(fake, mgr3, g, T0 + 330)
    (a,) = _alert_rule(mgr3).active_alerts()
    assert a.state == "firing" and a.fired_at == T0 + 300 and a.last_sent_at == T0 + 330
    _, notified = fake.take()
    assert len(notified) == 1


def test_rules_json_shape_before_and_after_evaluation():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("alert", "A", "x", for_s=600, labels={"severity": "page"},
                             annotations={"summary": "s"}), Rule("record", "r", "y")])
    mgr.set_groups("t1", [g])
    data = mgr.rules_json("t1")
    a, r = data["groups"][0]["rules"]
    assert a["state"] == "unknown" and a["health"] == "unknown" and a["lastEvaluation"] == "0001-01-01T00:00:00Z"
    assert r == {"name": "r", "query": "y", "health": "unknown", "evaluationTime": 0.0,
                 "lastEvaluation": "0001-01-01T00:00:00Z", "type": "recording"}
    assert mgr.rules_json("t1", type_filter="record")["groups"][0]["rules"] == [r]
    assert mgr.rules_json("t1", rule_names=["nope"]) == {"groups": []}
    with pytest.raises(ValueError):
        mgr.rules_json("t1", type_filter="bogus")
    fake.results["x"] = [({"job": "j"}, 1.0)]
    _run(fake, mgr, g, T0)
    group = mgr.rules_json("t1")["groups"][0]
    assert group["lastEvaluation"] == rfc3339(T0) and group["interval"] == 60 and group["limit"] == 0
    a = group["rules"][0]
    assert a["state"] == "pending" and a["duration"] == 600 and a["keepFiringFor"] == 0
    assert a["alerts"] == [{"labels": {"alertname": "A", "job": "j", "severity": "page"},
                            "annotations": {"summary": "s"}, "state": "pending",
                            "activeAt": rfc3339(T0), "value": "1e+00"}]
    assert mgr.rules_json("t1", exclude_alerts=True)["groups"][0]["rules"][0]["alerts"] is None


def test_tenants_are_isolated():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("alert", "A", "x")])
    mgr.set_groups("t1", [g])
    mgr.set_groups("t2", [RuleGroup("other", [Rule("alert", "B", "x")])])
    fake.results["x"] = [({"job": "j"}, 1.0)]
    _run(fake, mgr, g, T0, tenant="t1")
    assert {t for t, *_ in fake.queries} == {"t1"}
    assert len(mgr.alerts_json("t1")["alerts"]) == 1 and mgr.alerts_json("t2") == {"alerts": []}
    assert mgr.rules_json("t2")["groups"][0]["name"] == "other"


def test_api_and_file_sources_coexist():
    fake = Fake()
    mgr = fake.manager()
    mgr.set_groups("t1", [RuleGroup("files", [Rule("record", "a", "x")])])
    mgr.set_groups("t1", [RuleGroup("api", [Rule("record", "b", "x")], source="ns1")], source="api")
    assert sorted(g.name for g in mgr.groups("t1")) == ["api", "files"]
    mgr.set_groups("t1", [], source="api")
    assert [g.name for g in mgr.groups("t1")] == ["files"]


def test_value_and_time_formats_match_go():
    assert [format_value(v) for v in (1.0, 0.5, 1234.5, 1e-7, 0.0, float("nan"), float("-inf"))] == [
        "1e+00", "5e-01", "1.2345e+03", "1e-07", "0e+00", "NaN", "-Inf"]
    assert rfc3339(1530728832.5) == "2018-07-04T18:27:12.5Z"
    assert rfc3339(0) == "0001-01-01T00:00:00Z"


def test_eval_timestamp_alignment():
    fake = Fake()
    mgr = fake.manager()
    g = RuleGroup("g", [Rule("record", "a", "x")])
    mgr.set_groups("t1", [g])
    grp = mgr.find_group("t1", "g")
    ts = grp.eval_timestamp(T0 + 12.3)
    assert ts <= T0 + 12.3 < ts + 60
    assert grp.eval_timestamp(ts + 59.9) == ts and grp.eval_timestamp(ts + 60) == ts + 60


def test_run_evaluates_on_interval_and_stops():
    fake = Fake()
    mgr = RuleManager(fake.query, fake.append, fake.notify, None, expand_fn=EXPAND)  # real clock
    mgr.set_groups("t1", [RuleGroup("g", [Rule("record", "a", "x")], interval_s=0.05)])
    fake.results["x"] = [({"job": "j"}, 1.0)]

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(mgr.run(stop))
        await asyncio.sleep(0.6)
        # a reload while running is picked up
        mgr.set_groups("t1", [RuleGroup("g2", [Rule("record", "b", "x")], interval_s=0.05)])
        await asyncio.sleep(0.8)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    names = {s[0]["__name__"] for s in fake.samples() if not math.isnan(s[2])}
    assert names == {"a", "b"}
    stats = {s["rule_group"]: s for s in mgr.stats()}
    assert stats["/etc/lookout/rules.yaml;g2"]["evaluations"] >= 2


def test_prune_state_drops_rules_removed_while_down(tmp_path):
    fake = Fake()
    store = AlertState(tmp_path / "s.db")
    mgr = fake.manager(store)
    g = RuleGroup("g", [Rule("alert", "A", "x"), Rule("alert", "B", "x")])
    mgr.set_groups("t1", [g])
    fake.results["x"] = [({"job": "j"}, 1.0)]
    _run(fake, mgr, g, T0)
    assert len(store.load_alerts("t1")) == 2
    mgr2 = fake.manager(store)  # restarted with rule B gone from the file
    mgr2.set_groups("t1", [RuleGroup("g", [Rule("alert", "A", "x")])])
    assert mgr2.prune_state() == 1
    assert len(store.load_alerts("t1")) == 1
