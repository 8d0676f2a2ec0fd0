"""Focused semantics tests for the PromQL engine over MemoryQuerier."""

from __future__ import annotations

import numpy as np
import pytest

from lookout.metrics.model import STALE_NAN, MemoryQuerier
from lookout.metrics.promql import Engine, PromQLError, format_query, parse_query_json, result_to_json
from lookout.metrics.promql.format import format_float

M = 60_000


def _q(series: dict[tuple, list]) -> MemoryQuerier:
    """Series given as {(('__name__','x'),('a','1')): [(t_ms, v), ...]}."""
    q = MemoryQuerier()
    for labels, pts in series.items():
        q.add(dict(labels), np.array([t for t, _ in pts], np.int64), np.array([v for _, v in pts], float))
    return q


def _vec(engine: Engine, q, query: str, t: int) -> dict[tuple, float]:
    res = result_to_json(engine.instant_query(q, query, t))
    assert res["resultType"] == "vector", res
    return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in res["result"]}


@pytest.fixture()
def eng() -> Engine:
    return Engine()


def test_lookback_and_left_open_boundary(eng):
    q = _q({(("__name__", "x"),): [(0, 1.0)]})
    assert _vec(eng, q, "x", 5 * M - 1) == {(("__name__", "x"),): 1.0}
    # Prometheus 3: a sample exactly lookback old is out of range
    assert _vec(eng, q, "x", 5 * M) == {}


def test_stale_marker_ends_series(eng):
    q = _q({(("__name__", "x"),): [(0, 1.0), (M, STALE_NAN), (2 * M, 3.0)]})
    assert _vec(eng, q, "x", 30_000) == {(("__name__", "x"),): 1.0}
    assert _vec(eng, q, "x", M + 30_000) == {}
    assert _vec(eng, q, "x", 2 * M) == {(("__name__", "x"),): 3.0}
    # stale markers are not samples of a range vector
    assert _vec(eng, q, "count_over_time(x[3m])", 2 * M) == {(): 2.0}


def test_range_window_is_left_open(eng):
    q = _q({(("__name__", "x"),): [(t, 1.0) for t in range(0, 10 * M, M)]})
    assert _vec(eng, q, "count_over_time(x[2m])", 5 * M) == {(): 2.0}


def test_offset_and_at(eng):
    q = _q({(("__name__", "x"),): [(t, t / M) for t in range(0, 10 * M, M)]})
    assert _vec(eng, q, "x offset 2m", 5 * M) == {(("__name__", "x"),): 3.0}
    assert _vec(eng, q, "x @ 120", 9 * M) == {(("__name__", "x"),): 2.0}
    assert _vec(eng, q, "x @ 3m", 9 * M) == {(("__name__", "x"),): 3.0}
    res = result_to_json(eng.range_query(q, "x @ start()", 2 * M, 4 * M, M))
    assert [v for _, v in res["result"][0]["values"]] == ["2", "2", "2"]
    res = result_to_json(eng.range_query(q, "x @ end() offset 1m", 2 * M, 4 * M, M))
    assert [v for _, v in res["result"][0]["values"]] == ["3", "3", "3"]


def test_negative_at(eng):
    q = _q({(("__name__", "x"),): [(-60_000, 7.0)]})
    assert _vec(eng, q, "x @ -30", 10 * M) == {(("__name__", "x"),): 7.0}


def test_subquery_alignment(eng):
    q = _q({(("__name__", "x"),): [(t, t / 1000) for t in range(0, 20 * M, 10_000)]})
    # inner steps are aligned to multiples of the subquery step: 2m, 3m, 4m (left-open at 1m30s)
    got = _vec(eng, q, "sum_over_time(x[3m:1m])", 4 * M + 30_000)
    assert got == {(): 120.0 + 180.0 + 240.0}


def test_rate_extrapolation(eng):
    q = _q({(("__name__", "c_total"),): [(t, t / 1000) for t in range(0, 11 * M, 15_000)]})
    got = _vec(eng, q, "rate(c_total[5m])", 10 * M)
    assert got[()] == pytest.approx(1.0)
    got = _vec(eng, q, "increase(c_total[5m])", 10 * M)
    assert got[()] == pytest.approx(300.0)


def test_counter_reset(eng):
    q = _q({(("__name__", "c"),): [(0, 10.0), (M, 20.0), (2 * M, 5.0), (3 * M, 15.0)]})
    assert _vec(eng, q, "resets(c[5m])", 3 * M) == {(): 1.0}
    assert _vec(eng, q, "increase(c[4m])", 4 * M - 1)[()] > 0


def test_one_to_one_duplicate_error(eng):
    q = _q({
        (("__name__", "a"), ("x", "1")): [(0, 1.0)],
        (("__name__", "b"), ("x", "1"), ("y", "1")): [(0, 1.0)],
        (("__name__", "b"), ("x", "1"), ("y", "2")): [(0, 1.0)],
    })
    with pytest.raises(PromQLError) as ei:
        eng.instant_query(q, "a + on(x) b", 0)
    assert ei.value.error_type == "execution"
    assert "many-to-many matching not allowed" in str(ei.value)
    got = _vec(eng, q, "b + on(x) group_left a", 0)
    assert len(got) == 2


def test_same_labelset_error(eng):
    q = _q({
        (("__name__", "a"), ("x", "1")): [(0, 1.0)],
        (("__name__", "b"), ("x", "1")): [(0, 2.0)],
    })
    with pytest.raises(PromQLError, match="same labelset"):
        eng.instant_query(q, '{x="1"} * 2', 0)
    # the name survives functions that keep it, and is dropped by arithmetic
    assert _vec(eng, q, "a * 2", 0) == {(("x", "1"),): 2.0}
    assert _vec(eng, q, "last_over_time(a[1m])", 0) == {(("__name__", "a"), ("x", "1")): 1.0}


def test_aggregations_and_topk_order(eng):
    q = _q({(("__name__", "m"), ("i", str(i)), ("g", str(i % 2))): [(0, float(i))] for i in range(6)})
    assert _vec(eng, q, "sum by (g) (m)", 0) == {(("g", "0"),): 6.0, (("g", "1"),): 9.0}
    assert _vec(eng, q, "count_values(\"v\", m)", 0)[(("v", "5"),)] == 1.0
    res = result_to_json(eng.instant_query(q, "topk(2, m)", 0))
    assert [s["metric"]["i"] for s in res["result"]] == ["5", "4"]
    assert _vec(eng, q, "quantile(0.5, m)", 0) == {(): 2.5}


def test_errors_and_limits(eng):
    q = _q({(("__name__", "x"),): [(t, 1.0) for t in range(0, 100 * M, M)]})
    with pytest.raises(PromQLError) as ei:
        eng.instant_query(q, "sum(x", 0)
    assert ei.value.error_type == "bad_data" and "parse error" in str(ei.value)
    with pytest.raises(PromQLError) as ei:
        Engine(max_samples=10).instant_query(q, "count_over_time(x[1h])", 99 * M)
    assert ei.value.error_type == "execution" and "too many samples" in str(ei.value)
    with pytest.raises(PromQLError) as ei:
        eng.range_query(q, "x[5m]", 0, M, M)
    assert ei.value.error_type == "bad_data"


def test_result_json_formats(eng):
    q = _q({(("__name__", "x"),): [(0, 1.5)]})
    assert result_to_json(eng.instant_query(q, "1 / 0", 1500)) == {"resultType": "scalar", "result": [1.5, "+Inf"]}
    assert result_to_json(eng.instant_query(q, '"hi"', 2000)) == {"resultType": "string", "result": [2, "hi"]}
    res = result_to_json(eng.instant_query(q, "x[1m]", 30_000))
    assert res == {"resultType": "matrix", "result": [{"metric": {"__name__": "x"}, "values": [[0, "1.5"]]}]}
    assert [format_float(f) for f in (1e21, 1e-7, 0.1, -np.inf, np.nan, 100.0)] == \
        ["1e+21", "1e-07", "0.1", "-Inf", "NaN", "100"]


def test_range_query_matrix_sorted_and_gaps(eng):
    q = _q({
        (("__name__", "b"),): [(0, 1.0), (M, STALE_NAN), (3 * M, 2.0)],
        (("__name__", "a"),): [(0, 5.0)],
    })
    res = result_to_json(eng.range_query(q, "{__name__=~\"a|b\"}", 0, 3 * M, M))
    assert [s["metric"]["__name__"] for s in res["result"]] == ["a", "b"]
    assert res["result"][1]["values"] == [[0, "1"], [180, "2"]]


def test_format_and_parse_json():
    assert format_query("sum(rate(foo[5m])) by (a)").startswith("sum by (a)")
    assert parse_query_json("foo offset 1m")["type"] == "vectorSelector"
