"""The evaluator's SQLite data layer: alert state rows and API-managed rule groups."""

from __future__ import annotations

import sqlite3
import threading

from lookout.alerting.state import AlertState


def test_alert_state_round_trip_and_delete(tmp_path):
    st = AlertState(tmp_path / "sub" / "state.db")
    a = [{"labels": {"alertname": "A"}, "state": "pending", "active_at": 10.0, "value": float("nan")}]
    st.save_alerts("t1", {"k1": a, "k2": a})
    st.save_alerts("t2", {"k1": []})  # an empty list deletes (nothing there: no error)
    got = st.load_alerts("t1")
    assert set(got) == {"k1", "k2"} and got["k1"][0]["active_at"] == 10.0
    assert got["k1"][0]["value"] != got["k1"][0]["value"]  # NaN survives the JSON round trip
    assert st.load_alerts("t1", ["k2"]).keys() == {"k2"}
    assert st.load_alerts("t2") == {}
    st.save_alerts("t1", {"k1": []})
    assert st.load_alerts("t1").keys() == {"k2"}
    st.delete_alerts("t1", ["k2"])
    assert st.load_alerts("t1") == {}
    st.close()


def test_prune_keeps_only_loaded_rules(tmp_path):
    st = AlertState(tmp_path / "s.db")
    row = [{"labels": {}, "state": "firing"}]
    st.save_alerts("t1", {"keep": row, "gone": row})
    st.save_alerts("t2", {"x": row})
    assert st.prune_alerts({"t1": {"keep"}}) == 2
    assert st.load_alerts("t1").keys() == {"keep"} and st.load_alerts("t2") == {}


def test_state_survives_reopen_and_uses_wal(tmp_path):
    path = tmp_path / "s.db"
    st = AlertState(path)
    st.save_alerts("t1", {"k": [{"labels": {"a": "b"}, "state": "firing"}]})
    st.put_group("t1", "ns", "g", "groups: []\n")
    st.close()
    st2 = AlertState(path)
    assert st2.load_alerts("t1")["k"][0]["labels"] == {"a": "b"}
    assert st2.get_group("t1", "ns", "g") == "groups: []\n"
    st2.close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_rule_groups_crud(tmp_path):
    st = AlertState(tmp_path / "s.db")
    st.put_group("t1", "ns2", "b", "B")
    st.put_group("t1", "ns1", "z", "Z")
    st.put_group("t1", "ns1", "a", "A1")
    st.put_group("t1", "ns1", "a", "A2")  # upsert
    st.put_group("t2", "ns1", "a", "other tenant")
    assert st.list_groups("t1") == [("ns1", "a", "A2"), ("ns1", "z", "Z"), ("ns2", "b", "B")]
    assert st.list_groups("t1", "ns1") == [("ns1", "a", "A2"), ("ns1", "z", "Z")]
    assert st.get_group("t1", "ns1", "missing") is None
    assert st.group_tenants() == ["t1", "t2"]
    assert st.delete_group("t1", "ns1", "a") is True
    assert st.delete_group("t1", "ns1", "a") is False
    assert st.delete_namespace("t1", "ns1") == 1
    assert st.delete_namespace("t1", "ns1") == 0
    assert st.list_groups("t1") == [("ns2", "b", "B")]
    assert st.list_groups("t2") == [("ns1", "a", "other tenant")]


def test_concurrent_writers(tmp_path):
    st = AlertState(tmp_path / "s.db")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                st.save_alerts("t", {f"k{n}-{i % 5}": [{"labels": {"i": str(i)}, "state": "pending"}]})
                st.load_alerts("t")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(st.load_alerts("t")) == 20
