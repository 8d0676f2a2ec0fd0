"""Routing, grouping, timers, inhibition and time intervals, with a fake clock and a recording receiver."""

from __future__ import annotations

import asyncio
import textwrap
import threading

import pytest

from lookout.alerting.amconfig import parse_config
from lookout.alerting.model import Alert
from lookout.alerting.notify import Notifier
from lookout.alerting.notify.dispatcher import build_routes
from lookout.alerting.notify.receivers import Integration, Notification, ReceiverSet

ROUTING = textwrap.dedent("""
    route:
      receiver: default
      group_by: [alertname]
      routes:
        - matchers: [team=db]
          receiver: db
          continue: true
          routes:
            - matchers: [severity=critical]
              receiver: db-pager
        - matchers: ['team=~"db|infra"']
          receiver: infra
          group_by: ['...']
        - matchers: [team=web]
          receiver: web
          group_by: [cluster]
        - matchers: [team=web]
          receiver: never
    receivers: [{name: default}, {name: db}, {name: db-pager}, {name: infra}, {name: web}, {name: never}]
""")


@pytest.mark.parametrize(
    "labels, receivers",
    [
        ({"alertname": "A"}, ["default"]),
        ({"alertname": "A", "team": "db"}, ["db", "infra"]),  # continue: true falls through to infra
        ({"alertname": "A", "team": "db", "severity": "critical"}, ["db-pager", "infra"]),
        ({"alertname": "A", "team": "infra"}, ["infra"]),
        ({"alertname": "A", "team": "web"}, ["web"]),  # first match wins without continue
        ({"alertname": "A", "team": "dbx"}, ["default"]),  # regexes are anchored
    ],
)
def test_routing_table(labels: dict[str, str], receivers: list[str]) -> None:
    root = build_routes(parse_config(ROUTING).route)
    assert [r.receiver for r in root.match(labels)] == receivers


def test_group_by_inheritance_and_wildcard() -> None:
    root = build_routes(parse_config(ROUTING).route)
    labels = {"alertname": "A", "team": "db", "severity": "critical", "cluster": "c1"}
    pager, infra = root.match(labels)
    assert pager.group_labels(labels) == {"alertname": "A"}  # inherited from the root
    assert infra.group_labels(labels) == labels  # '...'
    assert pager.group_wait == 30 and pager.group_interval == 300 and pager.repeat_interval == 4 * 3600
    web = root.match({"team": "web", "cluster": "c1", "alertname": "X"})[0]
    assert web.group_labels({"team": "web", "cluster": "c1", "alertname": "X"}) == {"cluster": "c1"}
    assert pager.key() == '{}/{team="db"}/{severity="critical"}'


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Recorder(ReceiverSet):
    """Records what would be sent instead of sending it."""

    def __init__(self, receivers, fail: bool = False) -> None:  # type: ignore[no-untyped-def]
        super().__init__(receivers)
        self.sent: list[tuple[str, Notification]] = []

    async def deliver(self, integ: Integration, n: Notification, timeout: float) -> bool:
        self.sent.append((f"{integ.receiver}/{integ.name}", n))
        return True


BASIC = textwrap.dedent("""
    route:
      receiver: hook
      group_by: [alertname]
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 4h
      routes:
        - matchers: [route=muted]
          receiver: hook
          mute_time_intervals: [always]
        - matchers: [route=active-never]
          receiver: hook
          active_time_intervals: [never]
    inhibit_rules:
      - source_matchers: [severity=critical]
        target_matchers: [severity=warning]
        equal: [cluster]
    time_intervals:
      - name: always
        time_intervals: [{}]
      - name: never
        time_intervals: [{years: ['1999']}]
    receivers:
      - name: hook
        webhook_configs: [{url: 'http://127.0.0.1:9/x', send_resolved: true}]
""")


def make(tmp_path, text: str = BASIC) -> tuple[Notifier, FakeClock, Recorder]:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    cfg = parse_config(text)
    n = Notifier(cfg, tmp_path / "am.db", external_url="http://lookout:3000", clock=clock)
    rec = Recorder(cfg.receivers)
    n.receivers = rec
    n.dispatcher.receivers = rec
    return n, clock, rec


def alert(clock: FakeClock, ttl: float = 3600, **labels: str) -> Alert:
    return Alert(labels=labels, annotations={"summary": "s"}, starts_at=clock(), ends_at=clock() + ttl)


def fps(n: Notification) -> list[str]:
    return sorted(a.labels.get("i", "") for a in n.alerts)


def test_group_wait_interval_repeat(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        n, clock, rec = make(tmp_path)
        n.put([alert(clock, 10_000_000, alertname="A", i="1")])
        await n.flush_due()
        assert rec.sent == []  # waiting group_wait
        clock.t += 29
        n.put([alert(clock, 10_000_000, alertname="A", i="2"), alert(clock, 10_000_000, alertname="B", i="3")])
        await n.flush_due()
        assert rec.sent == []
        clock.t += 1  # group A's group_wait is over; B's is not
        await n.flush_due()
        assert [(r, fps(x)) for r, x in rec.sent] == [("hook/webhook[0]", ["1", "2"])]
        first = rec.sent[0][1]
        assert first.group_key == '{}:{alertname="A"}' and first.status == "firing"
        assert all(a.ends_at == 0 for a in first.alerts)  # firing alerts are sent without an end
        rec.sent.clear()
        clock.t += 29
        await n.flush_due()
        assert [fps(x) for _, x in rec.sent] == [["3"]]
        rec.sent.clear()
        # A new alert in A is batched until A's next group_interval tick.
        clock.t += 10
        n.put([alert(clock, 10_000_000, alertname="A", i="4")])
        await n.flush_due()
        assert rec.sent == []
        clock.t = 1_700_000_000 + 30 + 300
        await n.flush_due()
        assert [fps(x) for _, x in rec.sent] == [["1", "2", "4"]]
        rec.sent.clear()
        # Nothing new: no notification on the following ticks ...
        for _ in range(5):
            clock.t += 300
            await n.flush_due()
        assert rec.sent == []
        # ... until repeat_interval has passed.
        clock.t = 1_700_000_000 + 30 + 300 + 4 * 3600
        await n.flush_due()
        # Group B (last sent at +59s) is past its repeat_interval too.
        assert sorted(fps(x) for _, x in rec.sent) == [["1", "2", "4"], ["3"]]

    asyncio.run(main())


def test_resolved_notification_and_group_removed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        n, clock, rec = make(tmp_path)
        a = alert(clock, alertname="A", i="1")
        n.put([a])
        clock.t += 30
        await n.flush_due()
        assert len(rec.sent) == 1
        rec.sent.clear()
        clock.t += 100
        a.ends_at = clock()  # the evaluator resolves it
        n.put([a])
        clock.t += 200
        await n.flush_due()
        assert len(rec.sent) == 1
        sent = rec.sent[0][1]
        assert sent.status == "resolved" and sent.alerts[0].ends_at == 1_700_000_130
        assert n.dispatcher.groups == {} and n.dispatcher.active_alerts() == []

    asyncio.run(main())


def test_old_alert_flushes_immediately(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        n, clock, rec = make(tmp_path)
        a = alert(clock, alertname="A")
        a.starts_at -= 3600
        n.put([a])
        await n.flush_due()
        assert len(rec.sent) == 1

    asyncio.run(main())


def test_alert_without_end_uses_resolve_timeout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        n, clock, rec = make(tmp_path)
        n.put([Alert(labels={"alertname": "A"})])
        (stored,) = n.dispatcher.active_alerts()
        assert stored.starts_at == clock() and stored.ends_at == clock() + 300
        clock.t += 301
        assert n.dispatcher.active_alerts() == []

    asyncio.run(main())


def test_inhibition(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        n, clock, rec = make(tmp_path)
        crit = alert(clock, alertname="A", severity="critical", cluster="c1", i="crit")
        warn1 = alert(clock, alertname="A", severity="warning", cluster="c1", i="warn1")
        warn2 = alert(clock, alertname="A", severity="warning", cluster="c2", i="warn2")
        n.put([crit, warn1, warn2])
        clock.t += 30
        await n.flush_due()
        assert [fps(x) for _, x in rec.sent] == [["crit", "warn2"]]
        st = n.dispatcher.status(n.dispatcher.alerts[warn1.fingerprint])
        assert st == {"state": "suppressed", "silencedBy": [], "inhibitedBy": [crit.fingerprint]}
        # Once the source resolves, the target is delivered again.
        rec.sent.clear()
        crit.ends_at = clock()
        n.put([crit])
        clock.t += 300
        await n.flush_due()
        assert [fps(x) for _, x in rec.sent] == [["crit", "warn1", "warn2"]]

    asyncio.run(main())


def test_inhibition_does_not_self_inhibit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = BASIC.replace("target_matchers: [severity=warning]", "target_matchers: ['severity=~\"critical|warning\"']")
    n, clock, _ = make(tmp_path, text)
    crit = alert(clock, alertname="A", severity="critical", cluster="c1")
    n.put([crit])
    assert n.dispatcher.status(n.dispatcher.alerts[crit.fingerprint])["state"] == "active"


def test_mute_and_active_time_intervals(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        n, clock, rec = make(tmp_path)
        n.put([alert(clock, alertname="M", route="muted"), alert(clock, alertname="N", route="active-never"),
               alert(clock, alertname="O")])
        clock.t += 30
        await n.flush_due()
        assert [x.group_labels for _, x in rec.sent] == [{"alertname": "O"}]

    asyncio.run(main())


def test_reload_does_not_renotify(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        n, clock, rec = make(tmp_path)
        n.put([alert(clock, alertname="A")])
        clock.t += 30
        await n.flush_due()
        assert len(rec.sent) == 1
        n.reload(parse_config(BASIC))
        n.receivers = n.dispatcher.receivers = rec
        clock.t += 10
        await n.flush_due()
        assert len(rec.sent) == 1
        n.put([alert(clock, alertname="A", i="new")])
        clock.t += 300
        await n.flush_due()
        assert len(rec.sent) == 2

    asyncio.run(main())


def test_put_is_non_blocking_from_other_threads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        n, clock, rec = make(tmp_path)
        await n.start()
        try:
            t = threading.Thread(target=lambda: n.put([alert(clock, alertname="T")]))
            t.start()
            t.join(timeout=1)
            assert not t.is_alive()
            for _ in range(50):
                if n.dispatcher.active_alerts():
                    break
                await asyncio.sleep(0.01)
            assert [a.labels["alertname"] for a in n.dispatcher.active_alerts()] == ["T"]
        finally:
            await n.stop()

    asyncio.run(main())
