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


def test_rate_zero_point_limit_applies_after_the_half_interval_limit(eng):
    """Prometheus >= 2.51 (prometheus/prometheus#13725): a series starting inside the window is
    extrapolated by half an interval, and only then limited to its zero point. Before 2.51 the
    zero point (here 15 s before the first sample) was used whenever it was under 1.1 intervals,
    giving 30 * (45 + 15 + 5) / 45 = 43.33 instead of 30 * (45 + 7.5 + 5) / 45 = 38.33."""
    q = _q({(("__name__", "c_total"),): [(100_000, 10.0), (115_000, 20.0), (130_000, 30.0), (145_000, 40.0)]})
    assert _vec(eng, q, "increase(c_total[5m])", 150_000)[()] == pytest.approx(30 * 57.5 / 45)
    assert _vec(eng, q, "rate(c_total[5m])", 150_000)[()] == pytest.approx(30 * 57.5 / 45 / 300)
    # a zero point closer than half an interval still wins: 45 * 2 / 32 = 2.8125 s
    q = _q({(("__name__", "c_total"),): [(100_000, 2.0), (115_000, 12.0), (130_000, 22.0), (145_000, 34.0)]})
    assert _vec(eng, q, "increase(c_total[5m])", 150_000)[()] == pytest.approx(32 * (45 + 45 * 2 / 32 + 5) / 45)


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


def _buckets(name: str, bounds: dict[str, float], extra: tuple = (), t: int = 0) -> dict[tuple, list]:
    return {(("__name__", name), ("le", le)) + extra: [(t, c)] for le, c in bounds.items()}


def test_histogram_fraction_classic_buckets(eng):
    q = _q({
        **_buckets("pos_bucket", {"1": 1, "2": 3, "3": 6, "+Inf": 100}),
        **_buckets("neg_bucket", {"-3": 10, "-2": 12, "-1": 15, "+Inf": 100}),
        **_buckets("noinf_bucket", {"1": 1, "2": 3}),
    })
    # lowest bucket starts at 0 (positive bound): [0,1] full + half of [1,2]
    assert _vec(eng, q, "histogram_fraction(0, 1.5, pos_bucket)", 0) == {(): pytest.approx(0.02)}
    # no interpolation in infinite-width buckets: (-Inf,-3] lies below -4, [3,+Inf) above 5
    assert _vec(eng, q, "histogram_fraction(-4, -2, neg_bucket)", 0) == {(): pytest.approx(0.02)}
    assert _vec(eng, q, "histogram_fraction(-Inf, -1.5, neg_bucket)", 0) == {(): pytest.approx(0.135)}
    assert _vec(eng, q, "histogram_fraction(2, 5, pos_bucket)", 0) == {(): pytest.approx(0.03)}
    assert _vec(eng, q, "histogram_fraction(400, +Inf, pos_bucket)", 0) == {(): pytest.approx(0.94)}
    assert _vec(eng, q, "histogram_fraction(3, 2, pos_bucket)", 0) == {(): 0.0}
    assert np.isnan(_vec(eng, q, "histogram_fraction(NaN, 2, pos_bucket)", 0)[()])
    assert np.isnan(_vec(eng, q, "histogram_fraction(0, 2, noinf_bucket)", 0)[()])


def test_histogram_fraction_over_steps_with_missing_bucket(eng):
    pts = {
        (("__name__", "h_bucket"), ("le", "1")): [(0, 1.0), (M, 2.0)],
        (("__name__", "h_bucket"), ("le", "2")): [(0, 3.0), (M, STALE_NAN)],  # absent at 1m
        (("__name__", "h_bucket"), ("le", "+Inf")): [(0, 4.0), (M, 4.0)],
    }
    q = _q(pts)
    res = result_to_json(eng.range_query(q, "histogram_fraction(0, 1, h_bucket)", 0, M, M))
    assert [float(v) for _, v in res["result"][0]["values"]] == [0.25, 0.5]


def test_histogram_quantile_annotations(eng):
    q = _q(_buckets("nm_bucket", {"1": 5, "2": 3, "+Inf": 10}))
    res = eng.instant_query(q, "histogram_quantile(0.5, nm_bucket)", 0)
    assert res.infos == [
        "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see "
        "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) "
        'for metric name "nm_bucket" (1:25)']
    assert res.warnings == []
    res = eng.instant_query(q, "histogram_quantile(1.5, nm_bucket)", 0)
    assert res.warnings == ["PromQL warning: quantile value should be between 0 and 1, got 1.5 (1:20)"]
    q = _q({(("__name__", "s"), ("le", "x")): [(0, 1.0)]})
    res = eng.instant_query(q, "histogram_fraction(-Inf, 1, s)", 0)
    assert res.warnings == ['PromQL warning: bucket label "le" is missing or has a malformed value of "x" '
                            'for metric name "s" (1:29)']


def test_rate_possible_non_counter_info_and_sort_warning(eng):
    q = _q({
        (("__name__", "reqs"),): [(t, t / 1000) for t in range(0, 6 * M, M)],
        (("__name__", "reqs_total"),): [(t, t / 1000) for t in range(0, 6 * M, M)],
    })
    res = eng.instant_query(q, "sum(rate(reqs[5m]))", 5 * M)
    assert res.infos == ['PromQL info: metric might not be a counter, name does not end in '
                         '_total/_sum/_count/_bucket: "reqs" (1:10)']
    assert eng.instant_query(q, "rate(reqs_total[5m])", 5 * M).infos == []
    assert eng.range_query(q, "sort(reqs)", 0, M, M).warnings == [
        "PromQL warning: sort is ineffective for range queries since results are always ordered by labels (1:1)"]
    assert eng.instant_query(q, "sort(reqs)", 0).warnings == []
    res = eng.instant_query(q, "quantile(NaN, reqs)", 0)
    assert res.warnings == ["PromQL warning: quantile value should be between 0 and 1, got NaN (1:10)"]


def test_info_follows_at_and_offset_of_base(eng):
    q = _q({
        (("__name__", "metric"), ("instance", "a"), ("job", "1")): [(i * M, float(i)) for i in range(9)],
        (("__name__", "target_info"), ("instance", "a"), ("job", "1"), ("version", "old")):
            [(0, 1.0), (M, 1.0), (2 * M, 1.0), (3 * M, STALE_NAN)],
        (("__name__", "target_info"), ("instance", "a"), ("job", "1"), ("version", "new")):
            [(i * M, 1.0) for i in range(3, 9)],
    })
    base = (("__name__", "metric"), ("instance", "a"), ("job", "1"))
    assert _vec(eng, q, "info(metric @ 120)", 8 * M) == {base + (("version", "old"),): 2.0}
    assert _vec(eng, q, "info(metric offset 6m)", 8 * M) == {base + (("version", "old"),): 2.0}
    got = _vec(eng, q, "info(last_over_time((metric offset 1m)[10m:1m] @ 180))", 40 * M)
    assert got == {base + (("version", "old"),): 2.0}
    assert _vec(eng, q, "info(metric)", 8 * M) == {base + (("version", "new"),): 8.0}


def test_info_selector_rules(eng):
    q = _q({
        (("__name__", "metric"), ("instance", "a"), ("job", "1")): [(0, 1.0)],
        (("__name__", "target_info"), ("instance", "a"), ("job", "1"), ("x", "t")): [(0, 1.0)],
        (("__name__", "build_info"), ("instance", "a"), ("job", "1"), ("x", "b")): [(0, 1.0)],
    })
    with pytest.raises(PromQLError, match="conflicting label"):
        eng.instant_query(q, 'info(metric, {__name__=~".+_info"})', 0)
    # only negated name matchers still select *_info metrics; the empty-matching selector parses
    assert _vec(eng, q, 'info(metric, {__name__!="target_info"})', 0) == {
        (("__name__", "metric"), ("instance", "a"), ("job", "1"), ("x", "b")): 1.0}
    assert _vec(eng, q, 'info(metric, {__name__!~".+_info", x=~".+"})', 0) == {}
    plain = {(("__name__", "metric"), ("instance", "a"), ("job", "1")): 1.0}
    assert _vec(eng, q, 'info(metric, {nope=~".*"})', 0) == plain


def test_parse_records_call_and_argument_offsets():
    from lookout.metrics.promql.parse import parse

    e = parse('sum by (a) (rate(x{a="rate("}[5m])) + histogram_quantile(0.9, y)').expr
    assert (e.lhs.pos, e.lhs.expr.pos, e.lhs.expr.arg_pos) == (0, 12, (17,))
    assert (e.rhs.pos, e.rhs.arg_pos) == (38, (57, 62))
    e = parse("count(limit_ratio(1.1, m))").expr
    assert e.expr.param_pos == 18
