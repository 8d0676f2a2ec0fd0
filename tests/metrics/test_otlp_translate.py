"""OTLP metrics → Prometheus translation, checked against Prometheus' own rules and test tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

from lookout.metrics.batch import EXEMPLAR_SCHEMA, SAMPLE_SCHEMA, SERIES_SCHEMA
from lookout.metrics.model import STALE_NAN_BITS
from lookout.metrics.naming import MetricKind, NameError_, TranslationStrategy, label_name, metric_name, unit_name
from lookout.metrics.otlp_translate import (
    REFUSED_DELTA,
    REFUSED_DELTA_OUT_OF_ORDER,
    REFUSED_EXPONENTIAL,
    REFUSED_LABEL_NAME,
    REFUSED_TEMPORALITY,
    DeltaToCumulative,
    OtlpMetricsTranslator,
    TranslationOptions,
    format_float,
)
from lookout.otlp.errors import OtlpDecodeError

S = TranslationStrategy
K = MetricKind
T0 = 1_700_000_000_000_000_000  # ns
EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "otlp" / "examples"


# ---------------------------------------------------------------------------------------------
# naming (cases from prometheus/otlptranslator metric_namer_test.go / label_namer_test.go)
# ---------------------------------------------------------------------------------------------

ESCAPED = S.UNDERSCORE_ESCAPING_WITH_SUFFIXES


@pytest.mark.parametrize(
    ("name", "unit", "kind", "strategy", "namespace", "want"),
    [
        ("simple_metric", "", K.GAUGE, S.UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES, "", "simple_metric"),
        ("metric@with#special$chars", "", K.GAUGE, S.UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES, "",
         "metric_with_special_chars"),
        ("123metric", "", K.GAUGE, S.UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES, "", "_123metric"),
        ("simple_metric", "", K.GAUGE, S.UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES, "test_namespace",
         "test_namespace_simple_metric"),
        ("metric@@##$$name", "", K.GAUGE, S.UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES, "", "metric_name"),
        ("requests", "", K.MONOTONIC_COUNTER, ESCAPED, "", "requests_total"),
        ("cpu_usage", "1", K.GAUGE, ESCAPED, "", "cpu_usage_ratio"),
        ("items", "1", K.MONOTONIC_COUNTER, ESCAPED, "", "items_total"),
        ("response_time", "ms", K.GAUGE, ESCAPED, "", "response_time_milliseconds"),
        ("memory_usage", "By", K.GAUGE, ESCAPED, "", "memory_usage_bytes"),
        ("requests", "1/s", K.GAUGE, ESCAPED, "", "requests_per_second"),
        ("throughput", "By/s", K.GAUGE, ESCAPED, "", "throughput_bytes_per_second"),
        ("custom_metric", "custom_unit", K.GAUGE, ESCAPED, "", "custom_metric_custom_unit"),
        ("custom_metric", "{custom}", K.GAUGE, ESCAPED, "", "custom_metric"),
        ("custom_metric", "By/{custom}", K.GAUGE, ESCAPED, "", "custom_metric_bytes"),
        ("requests_total", "", K.MONOTONIC_COUNTER, ESCAPED, "", "requests_total"),
        ("cpu_usage_ratio", "1", K.GAUGE, ESCAPED, "", "cpu_usage_ratio"),
        ("response_time_seconds", "s", K.GAUGE, ESCAPED, "", "response_time_seconds"),
        ("requests", "1/s", K.MONOTONIC_COUNTER, ESCAPED, "app", "app_requests_per_second_total"),
        ("123_requests", "", K.MONOTONIC_COUNTER, ESCAPED, "app", "app_123_requests_total"),
        ("metric__with__multiple__underscores", "unit__multiple__underscores", K.GAUGE, ESCAPED, "",
         "metric_with_multiple_underscores_unit_multiple_underscores"),
        ("custom_metric", "unit@with#special/chars", K.GAUGE, ESCAPED, "", "custom_metric_unit_with_special_per_chars"),
        ("request_duration", "s", K.HISTOGRAM, ESCAPED, "", "request_duration_seconds"),
        ("active_connections", "", K.NON_MONOTONIC_COUNTER, ESCAPED, "", "active_connections"),
        ("uptime", "d", K.GAUGE, ESCAPED, "", "uptime_days"),
        ("http.server.request.duration", "s", K.HISTOGRAM, ESCAPED, "", "http_server_request_duration_seconds"),
        ("system.network.io", "{packets}", K.MONOTONIC_COUNTER, ESCAPED, "", "system_network_io_total"),
        ("cpu", "%", K.GAUGE, ESCAPED, "", "cpu_percent"),
        ("speed", "m/s", K.GAUGE, ESCAPED, "", "speed_meters_per_second"),
        ("ratio.one", "1", K.NON_MONOTONIC_COUNTER, ESCAPED, "", "ratio_one"),
        ("requests_total", "", K.MONOTONIC_COUNTER, S.NO_UTF8_ESCAPING_WITH_SUFFIXES, "", "requests_total"),
        ("cpu_seconds_total", "s", K.MONOTONIC_COUNTER, S.NO_UTF8_ESCAPING_WITH_SUFFIXES, "", "cpu_seconds_total"),
        ("requêsts", "", K.MONOTONIC_COUNTER, S.NO_UTF8_ESCAPING_WITH_SUFFIXES, "", "requêsts_total"),
        ("cpu_usagé", "1", K.GAUGE, S.NO_UTF8_ESCAPING_WITH_SUFFIXES, "", "cpu_usagé_ratio"),
        ("requêsts", "1/s", K.GAUGE, S.NO_UTF8_ESCAPING_WITH_SUFFIXES, "", "requêsts_per_second"),
        ("requêsts", "1/s", K.MONOTONIC_COUNTER, S.NO_UTF8_ESCAPING_WITH_SUFFIXES, "ñamespace",
         "ñamespace_requêsts_per_second_total"),
        ("@#$%", "", K.MONOTONIC_COUNTER, S.NO_UTF8_ESCAPING_WITH_SUFFIXES, "", "@#$%_total"),
        ("métric_with_ñ_chars", "", K.GAUGE, S.NO_TRANSLATION, "", "métric_with_ñ_chars"),
        ("http.server.duration", "s", K.HISTOGRAM, S.NO_TRANSLATION, "", "http.server.duration"),
    ],
)
def test_metric_names(name, unit, kind, strategy, namespace, want) -> None:
    assert metric_name(name, unit, kind, strategy, namespace) == want


@pytest.mark.parametrize(("name", "strategy"), [("@#$%", ESCAPED), ("", S.UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES)])
def test_metric_names_that_normalize_to_nothing(name, strategy) -> None:
    with pytest.raises(NameError_):
        metric_name(name, "", K.GAUGE, strategy)


@pytest.mark.parametrize(
    ("unit", "want"),
    [("ms", "milliseconds"), ("By/s", "bytes_per_second"), ("1/s", "per_second"), ("1", ""), ("{req}", ""),
     ("unit@with#special/chars", "unit_with_special_per_chars")],
)
def test_unit_names(unit, want) -> None:
    assert unit_name(unit, ESCAPED) == want


@pytest.mark.parametrize(
    ("key", "want"),
    [("http.method", "http_method"), ("123invalid", "key_123invalid"), ("__reserved__", "__reserved__"),
     ("_private", "key_private"), ("label@with$special", "label_with_special"), ("ünïcode", "key_n_code"),
     ("0", "key_0"), ("foo.bar/baz", "foo_bar_baz")],
)
def test_label_names(key, want) -> None:
    assert label_name(key, ESCAPED) == want


def test_label_names_utf8_and_invalid() -> None:
    assert label_name("http.method", S.NO_UTF8_ESCAPING_WITH_SUFFIXES) == "http.method"
    assert label_name("_private", ESCAPED, underscore_sanitization=False) == "_private"
    for bad in ("", "...", "__"[:1] + "."):
        with pytest.raises(NameError_):
            label_name(bad, ESCAPED)


def test_format_float_like_go() -> None:
    assert [format_float(x) for x in (0.005, 1.0, 1e6, 2.5e-7, float("inf"), 0.1 + 0.2)] == [
        "0.005", "1", "1000000", "0.00000025", "+Inf", "0.30000000000000004",
    ]


# ---------------------------------------------------------------------------------------------
# request builders
# ---------------------------------------------------------------------------------------------


def kv(key: str, value) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def attrs(d: dict) -> list[KeyValue]:
    return [kv(k, v) for k, v in d.items()]


def request(metrics: list[m.Metric], resource: dict | None = None, scope: m.ScopeMetrics | None = None) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(attrs(resource if resource is not None else {"service.name": "svc"}))
    sm = rm.scope_metrics.add()
    if scope is not None:
        sm.CopyFrom(scope)
    sm.metrics.extend(metrics)
    return req.SerializeToString()


def gauge(name: str, points: list[m.NumberDataPoint], unit: str = "", description: str = "") -> m.Metric:
    return m.Metric(name=name, unit=unit, description=description, gauge=m.Gauge(data_points=points))


def counter(name: str, points, temporality: int = 2, monotonic: bool = True, unit: str = "") -> m.Metric:
    return m.Metric(
        name=name, unit=unit,
        sum=m.Sum(data_points=points, aggregation_temporality=temporality, is_monotonic=monotonic),
    )


def point(value: float, t_ns: int = T0, start_ns: int = 0, flags: int = 0, **labels) -> m.NumberDataPoint:
    p = m.NumberDataPoint(time_unix_nano=t_ns, start_time_unix_nano=start_ns, flags=flags, attributes=attrs(labels))
    if isinstance(value, int):
        p.as_int = value
    else:
        p.as_double = value
    return p


def translate(payload: bytes, options: TranslationOptions | None = None, delta: DeltaToCumulative | None = None):
    return OtlpMetricsTranslator(options or TranslationOptions(), delta).translate(payload)


def flat(batch) -> dict[tuple, list[tuple[int, float]]]:
    """{sorted label items: [(t, v), ...]} for easy assertions."""
    series = [tuple((lb["name"], lb["value"]) for lb in row["labels"]) for row in batch.series.to_pylist()]
    out: dict[tuple, list] = {}
    for row in batch.samples.to_pylist():
        out.setdefault(series[row["ref"]], []).append((row["t"], row["v"]))
    return out


def by_name(batch, name: str) -> dict[tuple, list]:
    return {k: v for k, v in flat(batch).items() if dict(k)["__name__"] == name}


def labels_of(key: tuple) -> dict[str, str]:
    return dict(key)


# ---------------------------------------------------------------------------------------------
# translation
# ---------------------------------------------------------------------------------------------


def test_gauge_and_counter_with_units_and_schema() -> None:
    res = translate(request([
        gauge("process.memory", [point(1.5, method="GET")], unit="By", description="mem"),
        counter("http.requests", [point(7, start_ns=T0 - 10**9)], unit="{request}"),
        counter("queue.size", [point(3)], monotonic=False),
    ]))
    b = res.batch
    assert b.series.schema == SERIES_SCHEMA and b.samples.schema == SAMPLE_SCHEMA
    assert res.refused == {}
    got = flat(b)
    t_ms = T0 // 10**6
    assert got[(("__name__", "process_memory_bytes"), ("job", "svc"), ("method", "GET"))] == [(t_ms, 1.5)]
    assert got[(("__name__", "http_requests_total"), ("job", "svc"))] == [(t_ms, 7.0)]
    assert got[(("__name__", "queue_size"), ("job", "svc"))] == [(t_ms, 3.0)]
    meta = {md.metric: md for md in b.metadata}
    assert (meta["process_memory_bytes"].type, meta["process_memory_bytes"].unit) == ("gauge", "bytes")
    assert meta["process_memory_bytes"].help == "mem"
    assert meta["http_requests_total"].type == "counter"
    assert meta["queue_size"].type == "gauge"


def test_timestamps_truncate_ns_to_ms() -> None:
    b = translate(request([gauge("g", [point(1.0, t_ns=1_999_999)])])).batch
    assert b.samples.column("t").to_pylist() == [1]


def test_job_instance_and_target_info() -> None:
    resource = {"service.name": "api", "service.namespace": "shop", "service.instance.id": "i-1",
                "host.name": "h1", "cloud.region": "eu"}
    pts = [point(1.0, t_ns=T0), point(2.0, t_ns=T0 + 600 * 10**9)]
    b = translate(request([gauge("g", pts)], resource=resource)).batch
    got = flat(b)
    assert got[(("__name__", "g"), ("instance", "i-1"), ("job", "shop/api"))] == [
        (T0 // 10**6, 1.0), (T0 // 10**6 + 600_000, 2.0)]
    (ti_key, ti_samples), = by_name(b, "target_info").items()
    assert labels_of(ti_key) == {"__name__": "target_info", "job": "shop/api", "instance": "i-1",
                                 "host_name": "h1", "cloud_region": "eu"}
    # sampled every lookback_delta/2 (150 s) from the first to the last point of the resource
    assert [t for t, _ in ti_samples] == [T0 // 10**6 + k * 150_000 for k in range(5)]
    assert {v for _, v in ti_samples} == {1.0}
    assert "target_info" in {md.metric for md in b.metadata}


def test_target_info_options() -> None:
    resource = {"service.name": "api", "host.name": "h1"}
    keep = translate(request([gauge("g", [point(1.0)])], resource=resource),
                     TranslationOptions(keep_identifying_resource_attributes=True)).batch
    assert labels_of(next(iter(by_name(keep, "target_info"))))["service_name"] == "api"
    off = translate(request([gauge("g", [point(1.0)])], resource=resource),
                    TranslationOptions(disable_target_info=True)).batch
    assert by_name(off, "target_info") == {}
    # no job and no instance → no target_info; only identifying attributes → none either
    assert by_name(translate(request([gauge("g", [point(1.0)])], resource={"host.name": "h"})).batch,
                   "target_info") == {}
    assert by_name(translate(request([gauge("g", [point(1.0)])])).batch, "target_info") == {}


def test_promoted_resource_attributes_do_not_override_point_attributes() -> None:
    resource = {"service.name": "api", "k8s.namespace.name": "prod", "region": "eu"}
    b = translate(
        request([gauge("g", [point(1.0, region="us")])], resource=resource),
        TranslationOptions(promote_resource_attributes=["k8s.namespace.name", "region"]),
    ).batch
    (key,) = by_name(b, "g")
    assert labels_of(key) == {"__name__": "g", "job": "api", "k8s_namespace_name": "prod", "region": "us"}


def test_job_overrides_attribute_and_scope_metadata() -> None:
    scope = m.ScopeMetrics(schema_url="https://s")
    scope.scope.name, scope.scope.version = "lib", "1.2"
    scope.scope.attributes.extend(attrs({"team": "x"}))
    pts = [point(1.0, job="from-attr", **{"__name__": "nope"})]
    b = translate(request([gauge("g", pts)], scope=scope), TranslationOptions(promote_scope_metadata=True)).batch
    (key,) = by_name(b, "g")
    assert labels_of(key) == {"__name__": "g", "job": "svc", "otel_scope_name": "lib", "otel_scope_version": "1.2",
                              "otel_scope_schema_url": "https://s", "otel_scope_team": "x"}
    # without service.name the attribute's job survives, and no scope labels by default
    b = translate(request([gauge("g", [point(1.0, job="a")])], resource={}, scope=scope)).batch
    assert labels_of(next(iter(by_name(b, "g")))) == {"__name__": "g", "job": "a"}


def test_attribute_values_and_name_collisions() -> None:
    p = point(1.0, **{"a.b": "x", "a_b": "y", "n": 42, "f": 0.25, "ok": True, "empty": ""})
    p.attributes.append(KeyValue(key="arr", value=AnyValue(array_value={"values": [AnyValue(int_value=1)]})))
    (key,) = by_name(translate(request([gauge("g", [p])])).batch, "g")
    got = labels_of(key)
    assert got["a_b"] == "x;y"  # joined in lexicographic order of the original keys ("a.b" < "a_b")
    assert (got["n"], got["f"], got["ok"], got["arr"]) == ("42", "0.25", "true", "[1]")
    assert "empty" not in got


def test_invalid_attribute_name_refuses_the_point() -> None:
    res = translate(request([gauge("g", [point(1.0, **{"...": "x"}), point(2.0, ok="y")])]))
    assert res.refused == {REFUSED_LABEL_NAME: 1}
    assert [dict(k)["ok"] for k in by_name(res.batch, "g")] == ["y"]


def test_utf8_strategy_keeps_names() -> None:
    b = translate(request([counter("http.requests", [point(1.0, **{"http.method": "GET"})], unit="s")]),
                  TranslationOptions(translation_strategy=S.NO_UTF8_ESCAPING_WITH_SUFFIXES)).batch
    (key,) = by_name(b, "http.requests_seconds_total")
    assert labels_of(key)["http.method"] == "GET"


def test_stale_marker_from_no_recorded_value() -> None:
    b = translate(request([gauge("g", [point(1.0, t_ns=T0), point(0.0, t_ns=T0 + 10**9, flags=1)])])).batch
    v = b.samples.column("v").to_numpy()
    assert v.view(np.uint64)[1] == STALE_NAN_BITS and v[0] == 1.0


def histogram_point(counts, bounds, t_ns=T0, start_ns=0, sum_=None, flags=0, **labels) -> m.HistogramDataPoint:
    p = m.HistogramDataPoint(time_unix_nano=t_ns, start_time_unix_nano=start_ns, count=sum(counts),
                             bucket_counts=counts, explicit_bounds=bounds, flags=flags, attributes=attrs(labels))
    if sum_ is not None:
        p.sum = sum_
    return p


def histogram(name, points, temporality=2, unit="s") -> m.Metric:
    hist = m.Histogram(data_points=points, aggregation_temporality=temporality)
    return m.Metric(name=name, unit=unit, histogram=hist)


def test_histogram_buckets_cumulative_with_le() -> None:
    pts = [histogram_point([1, 2, 3, 4], [0.005, 0.5, 10.0], sum_=12.5, route="/a"),
           histogram_point([5], [], route="/b")]  # no bounds: only +Inf, and no sum
    res = translate(request([histogram("http.duration", pts)]))
    b = res.batch
    buckets = by_name(b, "http_duration_seconds_bucket")
    a = {labels_of(k)["le"]: v[0][1] for k, v in buckets.items() if labels_of(k)["route"] == "/a"}
    assert a == {"0.005": 1.0, "0.5": 3.0, "10": 6.0, "+Inf": 10.0}
    b_only = {labels_of(k)["le"]: v[0][1] for k, v in buckets.items() if labels_of(k)["route"] == "/b"}
    assert b_only == {"+Inf": 5.0}
    counts = {labels_of(k)["route"]: v[0][1] for k, v in by_name(b, "http_duration_seconds_count").items()}
    assert counts == {"/a": 10.0, "/b": 5.0}
    sums = {labels_of(k)["route"]: v[0][1] for k, v in by_name(b, "http_duration_seconds_sum").items()}
    assert sums == {"/a": 12.5}
    assert {md.metric: md.type for md in b.metadata}["http_duration_seconds"] == "histogram"


def test_histogram_stale_and_le_attribute_is_replaced() -> None:
    pts = [histogram_point([1, 1], [1.0], sum_=1.0, flags=1, le="bogus")]
    b = translate(request([histogram("h", pts, unit="")])).batch
    got = flat(b)
    assert all(np.isnan(v) for vs in got.values() for _, v in vs)
    assert {labels_of(k).get("le") for k in by_name(b, "h_bucket")} == {"1", "+Inf"}
    assert np.all(b.samples.column("v").to_numpy().view(np.uint64) == STALE_NAN_BITS)


def test_summary_quantiles_sum_count() -> None:
    sp = m.SummaryDataPoint(time_unix_nano=T0, count=4, sum=10.0, attributes=attrs({"q": "x"}))
    sp.quantile_values.add(quantile=0.5, value=2.0)
    sp.quantile_values.add(quantile=0.99, value=3.5)
    b = translate(request([m.Metric(name="rpc.latency", unit="ms", summary=m.Summary(data_points=[sp]))])).batch
    q = {labels_of(k)["quantile"]: v[0][1] for k, v in by_name(b, "rpc_latency_milliseconds").items()}
    assert q == {"0.5": 2.0, "0.99": 3.5}
    assert list(by_name(b, "rpc_latency_milliseconds_sum").values()) == [[(T0 // 10**6, 10.0)]]
    assert list(by_name(b, "rpc_latency_milliseconds_count").values()) == [[(T0 // 10**6, 4.0)]]
    assert {md.metric: md.type for md in b.metadata}["rpc_latency_milliseconds"] == "summary"


def test_exemplars_number_and_histogram() -> None:
    trace = bytes.fromhex("5b8efff798038103d269b633813fc60c")
    span = bytes.fromhex("eee19b7ec3c1b174")
    p = point(5.0)
    p.exemplars.add(time_unix_nano=T0 - 10**6, as_double=1.0, trace_id=trace, span_id=span,
                    filtered_attributes=attrs({"user": "u1"}))
    hp = histogram_point([1, 1, 1], [1.0, 2.0])
    hp.exemplars.add(time_unix_nano=T0, as_double=1.5, trace_id=trace)
    hp.exemplars.add(time_unix_nano=T0, as_int=9)
    b = translate(request([counter("c", [p]), histogram("h", [hp], unit="")])).batch
    assert b.exemplars.schema == EXEMPLAR_SCHEMA
    series = [{lb["name"]: lb["value"] for lb in r["labels"]} for r in b.series.to_pylist()]
    rows = b.exemplars.to_pylist()
    by_series = {(series[r["ref"]]["__name__"], series[r["ref"]].get("le")): r for r in rows}
    c = by_series[("c_total", None)]
    assert {lb["name"]: lb["value"] for lb in c["labels"]} == {
        "user": "u1", "trace_id": trace.hex(), "span_id": span.hex()}
    assert (c["t"], c["v"]) == ((T0 - 10**6) // 10**6, 1.0)
    assert by_series[("h_bucket", "2")]["v"] == 1.5  # first bucket whose bound >= 1.5
    assert by_series[("h_bucket", "+Inf")]["v"] == 9.0
    assert by_series[("h_bucket", "+Inf")]["labels"] == []


def test_exponential_histograms_are_refused_and_counted() -> None:
    eh = m.ExponentialHistogram(aggregation_temporality=2)
    eh.data_points.add(time_unix_nano=T0, count=3, scale=0)
    eh.data_points.add(time_unix_nano=T0, count=1, scale=0)
    res = translate(request([m.Metric(name="e", exponential_histogram=eh), gauge("g", [point(1.0)])]))
    assert res.refused == {REFUSED_EXPONENTIAL: 2}
    assert res.batch.num_samples == 1


def test_delta_without_converter_and_unspecified_temporality_are_refused() -> None:
    res = translate(request([counter("d", [point(1.0), point(2.0, t_ns=T0 + 1)], temporality=1),
                             counter("u", [point(1.0)], temporality=0)]))
    assert res.refused == {REFUSED_DELTA: 2, REFUSED_TEMPORALITY: 1}
    assert res.batch.num_samples == 0 and res.batch.series.num_rows == 0


def test_delta_to_cumulative_across_requests() -> None:
    state = DeltaToCumulative(max_series=100)
    tr = OtlpMetricsTranslator(TranslationOptions(), state)
    s = 10**9
    pts = [point(2, T0 + s, T0), point(3, T0 + 2 * s, T0 + s)]
    first = tr.translate(request([counter("reqs", pts, temporality=1)]))
    assert list(by_name(first.batch, "reqs_total").values()) == [[(T0 // 10**6 + 1000, 2.0), (T0 // 10**6 + 2000, 5.0)]]
    second = tr.translate(request([counter("reqs", [point(4, T0 + 3 * s, T0 + 2 * s)], temporality=1)]))
    assert list(by_name(second.batch, "reqs_total").values()) == [[(T0 // 10**6 + 3000, 9.0)]]
    # a replayed (older) point cannot be added without double counting: refused with a reason
    again = tr.translate(request([counter("reqs", [point(4, T0 + 3 * s, T0 + 2 * s)], temporality=1)]))
    assert again.refused == {REFUSED_DELTA_OUT_OF_ORDER: 1}
    assert again.batch.num_samples == 0
    assert len(state) == 1


def test_delta_histogram_to_cumulative() -> None:
    state = DeltaToCumulative()
    tr = OtlpMetricsTranslator(TranslationOptions(), state)
    s = 10**9
    tr.translate(request([histogram("h", [histogram_point([1, 2], [1.0], T0 + s, T0, sum_=3.0)], temporality=1)]))
    res = tr.translate(request([histogram("h", [histogram_point([4, 0], [1.0], T0 + 2 * s, T0 + s, sum_=1.0)],
                                          temporality=1)]))
    got = {(dict(k)["__name__"], dict(k).get("le")): v[0][1] for k, v in flat(res.batch).items()}
    assert got == {("h_seconds_bucket", "1"): 5.0, ("h_seconds_bucket", "+Inf"): 7.0,
                   ("h_seconds_count", None): 7.0, ("h_seconds_sum", None): 4.0}


def test_delta_state_is_bounded_lru() -> None:
    state = DeltaToCumulative(max_series=2)
    tr = OtlpMetricsTranslator(TranslationOptions(), state)
    for i in range(3):
        tr.translate(request([counter(f"c{i}", [point(1.0, T0 + 10**9, T0)], temporality=1)]))
    assert len(state) == 2 and state.evicted == 1


def test_invalid_protobuf_names_the_problem() -> None:
    with pytest.raises(OtlpDecodeError, match="invalid protobuf ExportMetricsServiceRequest"):
        translate(b"\x0a\xff\xff")


def test_empty_request() -> None:
    res = translate(b"")
    assert res.batch.num_samples == 0 and res.refused == {}


def test_conformance_example() -> None:
    body = json_format.ParseDict(json.loads((EXAMPLES / "metrics.json").read_text()), ExportMetricsServiceRequest())
    res = translate(body.SerializeToString(), delta=DeltaToCumulative())
    names = {dict(k)["__name__"] for k in flat(res.batch)}
    assert {"my_counter_total", "my_gauge_ratio", "my_histogram_bucket", "my_histogram_sum",
            "my_histogram_count"} <= names
    assert res.refused == {REFUSED_EXPONENTIAL: 1}


def test_real_sdk_payload() -> None:
    from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader],
                             resource=Resource.create({"service.name": "shop", "service.instance.id": "pod-1"}))
    meter = provider.get_meter("checkout", "0.1")
    counter_ = meter.create_counter("orders.placed", unit="{order}", description="orders")
    hist = meter.create_histogram("checkout.duration", unit="ms")
    updown = meter.create_up_down_counter("cart.items")
    counter_.add(3, {"payment.method": "card"})
    counter_.add(2, {"payment.method": "cash"})
    for v in (4.0, 12.0, 700.0):
        hist.record(v, {"region": "eu"})
    updown.add(5)
    updown.add(-2)
    payload = encode_metrics(reader.get_metrics_data()).SerializeToString()
    provider.shutdown()
    res = translate(payload)
    assert res.refused == {}
    b = res.batch
    orders = {labels_of(k)["payment_method"]: v[0][1] for k, v in by_name(b, "orders_placed_total").items()}
    assert orders == {"card": 3.0, "cash": 2.0}
    key = next(iter(by_name(b, "orders_placed_total")))
    assert (labels_of(key)["job"], labels_of(key)["instance"]) == ("shop", "pod-1")
    buckets = {labels_of(k)["le"]: v[0][1] for k, v in by_name(b, "checkout_duration_milliseconds_bucket").items()}
    assert buckets["+Inf"] == 3.0 and buckets["5"] == 1.0 and buckets["25"] == 2.0 and buckets["750"] == 3.0
    assert list(by_name(b, "checkout_duration_milliseconds_sum").values())[0][0][1] == 716.0
    assert list(by_name(b, "cart_items").values())[0][0][1] == 3.0
    ti = labels_of(next(iter(by_name(b, "target_info"))))
    assert ti["telemetry_sdk_language"] == "python" and ti["job"] == "shop"
