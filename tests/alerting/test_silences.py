"""Silences: lifecycle, update rules, persistence, GC, and their effect on delivery."""

from __future__ import annotations

import asyncio

import pytest

from lookout.alerting.matchers import parse_matchers
from lookout.alerting.notify.silences import Silence, SilenceError, SilenceNotFound, Silences
from tests.alerting.test_dispatcher import FakeClock, alert, make


def sil(clock: FakeClock, text: str = "alertname=A", start: float = 0, dur: float = 3600) -> Silence:
    return Silence(matchers=parse_matchers(text), starts_at=clock() + start, ends_at=clock() + start + dur,
                   created_by="me", comment="maintenance")


def test_lifecycle_and_persistence(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    s = Silences(tmp_path / "s.db", clock=clock)
    sid = s.set(sil(clock))
    assert s.get(sid).state(clock()) == "active"
    assert s.mutes({"alertname": "A", "x": "y"}) == [sid]
    assert s.mutes({"alertname": "B"}) == []
    pid = s.set(sil(clock, "alertname=B", start=600))
    assert s.get(pid).state(clock()) == "pending" and s.mutes({"alertname": "B"}) == []
    s.close()
    s = Silences(tmp_path / "s.db", clock=clock)  # survives a restart
    assert {x.id for x in s.query()} == {sid, pid}
    assert s.get(sid).comment == "maintenance" and str(s.get(sid).matchers[0]) == 'alertname="A"'
    s.expire(sid)
    assert s.get(sid).state(clock()) == "expired" and s.mutes({"alertname": "A"}) == []
    with pytest.raises(SilenceError):
        s.expire(sid)
    s.expire(pid)  # a pending silence: both ends become now
    assert s.get(pid).starts_at == s.get(pid).ends_at == clock()
    with pytest.raises(SilenceNotFound):
        s.get("nope")
    assert [x.id for x in s.query(matchers=parse_matchers("alertname=B"))] == [pid]
    assert len(s.query(state="expired")) == 2


def test_update_in_place_or_replace(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    s = Silences(tmp_path / "s.db", clock=clock)
    sid = s.set(sil(clock))
    clock.t += 10
    cur = s.get(sid)
    cur.ends_at += 3600
    cur.comment = "longer"
    assert s.set(cur) == sid  # same matchers, active, same start: in place
    assert s.get(sid).comment == "longer"
    changed = s.get(sid)
    changed.matchers = parse_matchers("alertname=Z")
    new_id = s.set(changed)
    assert new_id != sid  # different matchers: old one expired, new one created
    assert s.get(sid).state(clock()) == "expired" and s.get(new_id).state(clock()) == "active"
    with pytest.raises(SilenceNotFound):
        s.set(Silence(matchers=parse_matchers("a=b"), starts_at=clock(), ends_at=clock() + 1, id="unknown"))


@pytest.mark.parametrize("text", ['a=""', 'a=~".*"', 'a!="x"'])
def test_rejects_silences_matching_everything(tmp_path, text: str) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    s = Silences(tmp_path / "s.db", clock=clock)
    with pytest.raises(SilenceError):
        s.set(sil(clock, text))


def test_gc(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    s = Silences(tmp_path / "s.db", clock=clock, retention=3600)
    sid = s.set(sil(clock, dur=60))
    keep = s.set(sil(clock, dur=86400))
    clock.t += 60 + 3599
    assert s.gc() == 0
    clock.t += 2
    assert s.gc() == 1
    assert [x.id for x in s.query()] == [keep]
    s.close()
    assert [x.id for x in Silences(tmp_path / "s.db", clock=clock).query()] == [keep]
    del sid


def test_silence_suppresses_then_expires(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        n, clock, rec = make(tmp_path)
        sid = n.silences.set(sil(clock, "alertname=A", dur=600))
        a, b = alert(clock, alertname="A"), alert(clock, alertname="B")
        n.put([a, b])
        clock.t += 30
        await n.flush_due()
        assert [x.group_labels for _, x in rec.sent] == [{"alertname": "B"}]
        st = n.dispatcher.status(n.dispatcher.alerts[a.fingerprint])
        assert st == {"state": "suppressed", "silencedBy": [sid], "inhibitedBy": []}
        rec.sent.clear()
        clock.t += 600  # silence over: the next group_interval tick delivers A
        await n.flush_due()
        assert [x.group_labels for _, x in rec.sent] == [{"alertname": "A"}]
        assert n.dispatcher.status(n.dispatcher.alerts[a.fingerprint])["state"] == "active"

    asyncio.run(main())
