"""LogQL metric queries over MemoryLogQuerier against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lookout.logs.logql import LogQLEngine, LogQLError, result_to_json
from lookout.logs.model import MemoryLogQuerier

T0 = 1_767_225_600 * 10**9
S = 10**9


@pytest.fixture(scope="module")
def q() -> MemoryLogQuerier:
    q = MemoryLogQuerier()
    # app=a: one line every 10s from 10s to 60s, v = 1..6, latency 100ms..600ms
    ts = np.array([T0 + (10 + 10 * i) * S for i in range(6)])
    q.push({"app": "a", "pod": "1"}, ts, [f"v={i + 1} lat={(i + 1) * 100}ms size={(i + 1)}KB" for i in range(6)])
    # app=b: every 20s from 20s to 60s, counter c resets after the second sample
    q.push({"app": "b", "pod": "2"}, ts[1::2], ["c=10", "c=30", "c=5"])
    return q


def instant(q: MemoryLogQuerier, query: str, at: int = 60) -> dict:
    data = result_to_json(LogQLEngine().query_instant(q, query, T0 + at * S))
    if data["resultType"] == "scalar":
        return {"": float(data["result"][1])}
    return {",".join(f"{k}={v}" for k, v in sorted(s["metric"].items())): float(s["value"][1])
            for s in data["result"]}


def test_count_rate_bytes(q: MemoryLogQuerier) -> None:
    assert instant(q, 'count_over_time({app="a"}[30s])') == {"app=a,pod=1": 3}  # 40, 50, 60 (30 excluded)
    assert instant(q, 'rate({app="a"}[1m])') == {"app=a,pod=1": 0.1}
    line_bytes = sum(len(f"v={i} lat={i * 100}ms size={i}KB") for i in (4, 5, 6))
    assert instant(q, 'bytes_over_time({app="a"}[30s])') == {"app=a,pod=1": line_bytes}
    assert instant(q, 'bytes_rate({app="a"}[30s])') == {"app=a,pod=1": line_bytes / 30}
    assert instant(q, 'count_over_time({app="a"}[30s] offset 30s)') == {"app=a,pod=1": 3}  # 10, 20, 30


def test_unwrapped(q: MemoryLogQuerier) -> None:
    key = "app=a,pod=1"
    # `logfmt v` extracts only v, so every line belongs to one series once v is unwrapped
    assert instant(q, 'sum_over_time({app="a"} | logfmt v | unwrap v [30s])') == {key: 15}
    assert instant(q, 'avg_over_time({app="a"} | logfmt v | unwrap v [1m]) by (app)') == {"app=a": 3.5}
    assert instant(q, 'max_over_time({app="a"} | logfmt lat | unwrap duration(lat) [1m])') == {key: 0.6}
    assert instant(q, 'min_over_time({app="a"} | logfmt size | unwrap bytes(size) [1m])') == {key: 1000}
    assert instant(q, 'first_over_time({app="a"} | logfmt v | unwrap v [30s])') == {key: 4}
    assert instant(q, 'last_over_time({app="a"} | logfmt v | unwrap v [30s])') == {key: 6}
    assert instant(q, 'quantile_over_time(0.5, {app="a"} | logfmt v | unwrap v [1m])') == {key: 3.5}
    var = float(np.var([1, 2, 3, 4, 5, 6]))
    assert instant(q, 'stdvar_over_time({app="a"} | logfmt v | unwrap v [1m])')[key] == pytest.approx(var)
    assert instant(q, 'stddev_over_time({app="a"} | logfmt v | unwrap v [1m])')[key] == pytest.approx(math.sqrt(var))
    assert instant(q, 'rate({app="a"} | logfmt v | unwrap v [1m])') == {key: 21 / 60}


def test_rate_counter_reset(q: MemoryLogQuerier) -> None:
    # samples 20s:10, 40s:30, 60s:5 in (0, 60]: increase 5 - 10 + 30 (the reset adds the pre-drop 30 back) = 25
    # over 40s; the start gap (20s) is under 1.1x the 20s average interval, but the counter's zero point lies
    # only 40 * 10/25 = 16s back, so it extrapolates 16s to the start and 0s to the end.
    got = instant(q, 'rate_counter({app="b"} | logfmt | unwrap c [1m])')["app=b,pod=2"]
    assert got == pytest.approx(25 * (56 / 40) / 60)


def test_range_matrix_and_gaps(q: MemoryLogQuerier) -> None:
    res = LogQLEngine().query_range(q, 'count_over_time({app="b"}[10s])', T0 + 10 * S, T0 + 60 * S, 10 * S)
    data = result_to_json(res)
    assert data["resultType"] == "matrix"
    (series,) = data["result"]
    assert series["values"] == [[1767225620, "1"], [1767225640, "1"], [1767225660, "1"]]


def test_vector_aggregations_and_binops(q: MemoryLogQuerier) -> None:
    both = '{app=~"a|b"}'
    assert instant(q, f"sum(count_over_time({both}[1m]))") == {"": 9}
    assert instant(q, f"sum by (app) (count_over_time({both}[1m]))") == {"app=a": 6, "app=b": 3}
    assert instant(q, f"count(count_over_time({both}[1m]))") == {"": 2}
    assert instant(q, f"topk(1, count_over_time({both}[1m]))") == {"app=a,pod=1": 6}
    assert instant(q, f"count_over_time({both}[1m]) > 4") == {"app=a,pod=1": 6}
    assert instant(q, f"count_over_time({both}[1m]) > bool 4") == {"app=a,pod=1": 1, "app=b,pod=2": 0}
    assert instant(q, f"sum(count_over_time({both}[1m])) / 3") == {"": 3}
    assert instant(q, "10 / 0")[""] != instant(q, "10 / 0")[""]  # NaN, as Loki
    ratio = 'sum by (app) (count_over_time({app="a"}[1m])) / ignoring (app) sum(count_over_time({app="b"}[1m]))'
    assert instant(q, ratio) == {"": 2}
    assert instant(q, 'count_over_time({app="zzz"}[1m]) or vector(0)') == {"": 0}
    assert instant(q, 'label_replace(count_over_time({app="a"}[1m]), "x", "$1-y", "pod", "(.*)")') == {
        "app=a,pod=1,x=1-y": 6}


def test_pipeline_error_fails_metric_query() -> None:
    q = MemoryLogQuerier()
    q.push({"app": "j"}, np.array([T0 + S]), ["not json"])
    with pytest.raises(LogQLError, match="JSONParserErr"):
        LogQLEngine().query_instant(q, 'count_over_time({app="j"} | json [1m])', T0 + 30 * S)
    assert instant(q, 'count_over_time({app="j"} | json | __error__="" [1m])', 30) == {}


def test_series_limit(q: MemoryLogQuerier) -> None:
    with pytest.raises(LogQLError, match="maximum of series"):
        LogQLEngine(max_series=1).query_instant(q, 'count_over_time({app=~"a|b"}[1m])', T0 + 60 * S)


def test_sum_pushdown_matches_per_series_sum(q: MemoryLogQuerier) -> None:
    # sum by (x) (count_over_time(...)) groups samples before windowing; the numbers must not change.
    direct = instant(q, 'sum by (app) (count_over_time({app=~"a|b"} | logfmt [1m]))')
    inner = 'label_replace(count_over_time({app=~"a|b"} | logfmt [1m]), "z", "1", "", "")'  # blocks the pushdown
    via_label = instant(q, f"sum by (app) ({inner})")
    assert direct == via_label == {"app=a": 6, "app=b": 3}
