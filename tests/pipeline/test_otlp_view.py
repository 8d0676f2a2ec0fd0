"""OtlpBatch: the request processors' view of one OTLP request (decode, read, edit, drop, encode)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lookout.otlp.errors import OtlpDecodeError
from lookout.pipeline.otlp_view import OtlpBatch, any_values, key_value_lists
from lookout.pipeline.values import PathError


def _kv(kvs, key, value) -> None:
    kv = kvs.add(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value


def traces_request() -> ExportTraceServiceRequest:
    """Two resources; the first has two scopes. Five spans, four events."""
    req = ExportTraceServiceRequest()
    for r, service in enumerate(("api", "db")):
        rs = req.resource_spans.add()
        _kv(rs.resource.attributes, "service.name", service)
        rs.resource.dropped_attributes_count = r
        for s in range(2 if r == 0 else 1):
            ss = rs.scope_spans.add()
            ss.scope.name = f"lib{r}{s}"
            ss.scope.version = "1.0"
            _kv(ss.scope.attributes, "scope.k", f"v{s}")
            for i in range(2 if s == 0 else 1):
                sp = ss.spans.add()
                sp.trace_id = bytes([r + 1]) * 16
                sp.span_id = bytes([r * 16 + s * 4 + i + 1]) * 8
                sp.name = f"span-{r}-{s}-{i}"
                sp.kind = 2
                sp.start_time_unix_nano = 1_000 + i
                sp.end_time_unix_nano = 2_000 + i
                sp.trace_state = "a=b"
                _kv(sp.attributes, "http.route", "/healthz" if i == 1 else "/api")
                _kv(sp.attributes, "n", i)
                _kv(sp.attributes, "ratio", 0.5 * i)
                _kv(sp.attributes, "ok", i == 0)
                if i == 0:
                    sp.status.code = 2
                    sp.status.message = "boom"
                    ev = sp.events.add(name="exception", time_unix_nano=1_500)
                    _kv(ev.attributes, "exception.type", "ValueError")
                link = sp.links.add(trace_id=b"\x09" * 16, span_id=b"\x08" * 8)
                _kv(link.attributes, "l", 1)
    # one more event on the very last span
    req.resource_spans[1].scope_spans[0].spans[0].events.add(name="retry", time_unix_nano=7)
    return req


def logs_request() -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    _kv(rl.resource.attributes, "service.name", "api")
    sl = rl.scope_logs.add()
    sl.scope.name = "logger"
    for i, (sev, text) in enumerate([(5, "DEBUG"), (9, "INFO"), (17, "ERROR")]):
        lr = sl.log_records.add(severity_number=sev, severity_text=text, time_unix_nano=10 + i,
                                observed_time_unix_nano=20 + i, flags=1)
        lr.trace_id = b"\x01" * 16
        lr.span_id = b"\x02" * 8
        lr.body.string_value = f"message {i}"
        _kv(lr.attributes, "i", i)
    lr = sl.log_records.add(severity_number=13, severity_text="WARN")
    lr.body.int_value = 42
    rl2 = req.resource_logs.add()
    _kv(rl2.resource.attributes, "service.name", "db")
    rl2.scope_logs.add().log_records.add(severity_number=1, severity_text="TRACE").body.string_value = "t"
    return req


def metrics_request() -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    _kv(rm.resource.attributes, "service.name", "api")
    sm = rm.scope_metrics.add()
    sm.scope.name = "meter"
    g = sm.metrics.add(name="cpu", description="cpu use", unit="1")
    for i in range(2):
        dp = g.gauge.data_points.add(time_unix_nano=100 + i, as_double=0.5 + i)
        _kv(dp.attributes, "cpu", str(i))
    s = sm.metrics.add(name="requests", description="count", unit="{req}")
    s.sum.aggregation_temporality = 2
    s.sum.is_monotonic = True
    for i in range(3):
        dp = s.sum.data_points.add(time_unix_nano=200 + i, start_time_unix_nano=1, as_int=10 * i)
        _kv(dp.attributes, "code", 200 + i)
    h = sm.metrics.add(name="latency", unit="ms")
    h.histogram.aggregation_temporality = 1
    dp = h.histogram.data_points.add(count=4, sum=10.0, bucket_counts=[1, 3], explicit_bounds=[5.0])
    _kv(dp.attributes, "route", "/a")
    e = sm.metrics.add(name="exp")
    dp = e.exponential_histogram.data_points.add(count=2, scale=1)
    dp.positive.bucket_counts.extend([1, 1])
    q = sm.metrics.add(name="summary")
    dp = q.summary.data_points.add(count=5, sum=2.5)
    dp.quantile_values.add(quantile=0.5, value=1.0)
    _kv(dp.attributes, "q", True)
    rm2 = req.resource_metrics.add()
    _kv(rm2.resource.attributes, "service.name", "db")
    g2 = rm2.scope_metrics.add().metrics.add(name="mem")
    g2.gauge.data_points.add(as_int=7)
    return req


def decode(signal: str, msg) -> OtlpBatch:
    return OtlpBatch.decode(signal, msg.SerializeToString())


def parse(signal: str, data: bytes):
    cls = {"traces": ExportTraceServiceRequest, "logs": ExportLogsServiceRequest,
           "metrics": ExportMetricsServiceRequest}[signal]
    return cls.FromString(data)


# ---- decode / encode ---------------------------------------------------------------------


@pytest.mark.parametrize("signal,make", [("traces", traces_request), ("logs", logs_request),
                                         ("metrics", metrics_request)])
def test_unchanged_round_trip_returns_the_payload(signal, make):
    payload = make().SerializeToString()
    batch = OtlpBatch.decode(signal, payload)
    # reading does not count as changing
    for kind in batch.context("resource"), :
        kind.values(("attributes",), ("service.name",))
    for site in batch.attribute_sites():
        batch.attributes(site)
    for site in batch.string_sites():
        batch.strings(site)
    assert not batch.changed
    assert batch.encode() is payload


@pytest.mark.parametrize("signal,make", [("traces", traces_request), ("logs", logs_request),
                                         ("metrics", metrics_request)])
def test_touched_round_trip_parses_equal(signal, make):
    msg = make()
    batch = decode(signal, msg)
    for site in batch.attribute_sites():
        batch.set_attributes(site, batch.attributes(site))
    assert batch.changed
    assert parse(signal, batch.encode()) == msg


def test_decode_error():
    with pytest.raises(OtlpDecodeError):
        OtlpBatch.decode("traces", b"\xff\xff\xff")


def test_counts():
    t = decode("traces", traces_request())
    assert t.item_count() == 5 and not t.is_empty()
    assert len(t.context("span")) == 5 and len(t.context("spanevent")) == 4
    assert len(t.context("scope")) == 3 and len(t.context("resource")) == 2
    lg = decode("logs", logs_request())
    assert lg.item_count() == 5
    m = decode("metrics", metrics_request())
    assert m.item_count() == 2 + 3 + 1 + 1 + 1 + 1
    assert len(m.context("metric")) == 6
    empty = OtlpBatch.decode("traces", b"")
    assert empty.is_empty() and empty.item_count() == 0


# ---- contexts ----------------------------------------------------------------------------


def _get(ctx, path: str):
    """Resolve a dotted path with an optional trailing ["key"] and return python values."""
    keys: tuple[str, ...] = ()
    if "[" in path:
        path, _, rest = path.partition("[")
        keys = (rest.strip('"]'),)
    v = ctx.values(tuple(path.split(".")), keys)
    out = []
    for i in range(v.n):
        if not v.present[i]:
            out.append(None)
            continue
        for arr in (v.str, v.int, v.dbl, v.bool):
            if arr[i].is_valid:
                out.append(arr[i].as_py())
                break
        else:
            out.append("<present>")
    return out


def test_span_context_paths():
    ctx = decode("traces", traces_request()).context("span")
    assert _get(ctx, "name") == ["span-0-0-0", "span-0-0-1", "span-0-1-0", "span-1-0-0", "span-1-0-1"]
    assert _get(ctx, "kind") == [2] * 5
    assert _get(ctx, "trace_id.string")[0] == "01" * 16
    assert _get(ctx, "span_id.string")[1] == "02" * 8
    assert _get(ctx, "parent_span_id.string") == [""] * 5
    assert _get(ctx, "trace_state") == ["a=b"] * 5
    assert _get(ctx, "start_time_unix_nano") == [1000, 1001, 1000, 1000, 1001]
    assert _get(ctx, "end_time_unix_nano")[1] == 2001
    assert _get(ctx, "status.code") == [2, 0, 2, 2, 0]
    assert _get(ctx, "status.message") == ["boom", "", "boom", "boom", ""]
    assert _get(ctx, 'attributes["http.route"]') == ["/api", "/healthz", "/api", "/api", "/healthz"]
    assert _get(ctx, 'attributes["n"]') == [0, 1, 0, 0, 1]
    assert _get(ctx, 'attributes["ratio"]') == [0.0, 0.5, 0.0, 0.0, 0.5]
    assert _get(ctx, 'attributes["ok"]') == [True, False, True, True, False]
    assert _get(ctx, 'attributes["missing"]') == [None] * 5
    assert _get(ctx, "dropped_attributes_count") == [0] * 5
    assert _get(ctx, 'resource.attributes["service.name"]') == ["api", "api", "api", "db", "db"]
    assert _get(ctx, "resource.dropped_attributes_count") == [0, 0, 0, 1, 1]
    assert _get(ctx, "instrumentation_scope.name") == ["lib00", "lib00", "lib01", "lib10", "lib10"]
    assert _get(ctx, "scope.version") == ["1.0"] * 5
    assert _get(ctx, 'instrumentation_scope.attributes["scope.k"]') == ["v0", "v0", "v1", "v0", "v0"]
    assert _get(ctx, "kind.string") == ["Server"] * 5
    assert _get(ctx, "trace_id") == ["<present>"] * 5
    assert ctx.value_kinds(("trace_id",), ()).bytes[0].as_py() == b"\x01" * 16
    assert not ctx.value_kinds(("attributes",), ("n",)).is_map.any()
    for bad in [("body",), ("status",), ("nope",), ("metric", "name")]:
        with pytest.raises(PathError):
            ctx.values(bad, ())


def test_spanevent_context_paths():
    ctx = decode("traces", traces_request()).context("spanevent")
    assert _get(ctx, "name") == ["exception", "exception", "exception", "retry"]
    assert _get(ctx, "time_unix_nano") == [1500, 1500, 1500, 7]
    assert _get(ctx, 'attributes["exception.type"]') == ["ValueError"] * 3 + [None]
    assert _get(ctx, "span.name") == ["span-0-0-0", "span-0-1-0", "span-1-0-0", "span-1-0-0"]
    assert _get(ctx, "span.status.code") == [2, 2, 2, 2]
    assert _get(ctx, 'resource.attributes["service.name"]') == ["api", "api", "db", "db"]
    assert _get(ctx, "scope.name") == ["lib00", "lib01", "lib10", "lib10"]


def test_log_context_paths():
    ctx = decode("logs", logs_request()).context("log")
    assert _get(ctx, "body") == ["message 0", "message 1", "message 2", 42, "t"]
    assert _get(ctx, "severity_number") == [5, 9, 17, 13, 1]
    assert _get(ctx, "severity_text") == ["DEBUG", "INFO", "ERROR", "WARN", "TRACE"]
    assert _get(ctx, "time_unix_nano") == [10, 11, 12, 0, 0]
    assert _get(ctx, "observed_time_unix_nano") == [20, 21, 22, 0, 0]
    assert _get(ctx, "flags") == [1, 1, 1, 0, 0]
    assert _get(ctx, "trace_id.string")[:4] == ["01" * 16] * 3 + [""]
    assert _get(ctx, "span_id.string")[0] == "02" * 8
    assert _get(ctx, 'attributes["i"]') == [0, 1, 2, None, None]
    assert _get(ctx, 'resource.attributes["service.name"]') == ["api"] * 4 + ["db"]
    assert _get(ctx, "instrumentation_scope.name") == ["logger"] * 4 + [""]


def test_metric_and_datapoint_context_paths():
    b = decode("metrics", metrics_request())
    m = b.context("metric")
    assert _get(m, "name") == ["cpu", "requests", "latency", "exp", "summary", "mem"]
    assert _get(m, "description")[:2] == ["cpu use", "count"]
    assert _get(m, "unit")[:3] == ["1", "{req}", "ms"]
    assert _get(m, "type") == [1, 2, 3, 4, 5, 1]
    assert _get(m, "aggregation_temporality") == [None, 2, 1, 0, None, None]
    assert _get(m, "is_monotonic") == [None, True, None, None, None, None]
    assert _get(m, 'resource.attributes["service.name"]') == ["api"] * 5 + ["db"]
    assert _get(m, "scope.name") == ["meter"] * 5 + [""]
    with pytest.raises(PathError):
        m.values(("attributes",), ("x",))
    d = b.context("datapoint")
    # context order: gauge points, sum points, histogram, exponential histogram, summary
    assert _get(d, "metric.name") == ["cpu", "cpu", "mem", "requests", "requests", "requests",
                                      "latency", "exp", "summary"]
    assert _get(d, 'attributes["cpu"]')[:3] == ["0", "1", None]
    assert _get(d, 'attributes["code"]')[3:6] == [200, 201, 202]
    assert _get(d, "time_unix_nano")[:2] == [100, 101]
    assert _get(d, "start_time_unix_nano")[3] == 1
    assert _get(d, "value_int") == [0, 0, 7, 0, 10, 20, None, None, None]
    assert _get(d, "value_double") == [0.5, 1.5, 0.0, 0.0, 0.0, 0.0, None, None, None]
    assert _get(d, "count") == [None] * 6 + [4, 2, 5]
    assert _get(d, "sum") == [None] * 6 + [10.0, 0.0, 2.5]
    assert _get(d, "metric.type") == [1, 1, 1, 2, 2, 2, 3, 4, 5]
    assert _get(d, 'resource.attributes["service.name"]')[2] == "db"


def test_resource_and_scope_contexts():
    b = decode("traces", traces_request())
    r = b.context("resource")
    assert _get(r, 'attributes["service.name"]') == ["api", "db"]
    assert _get(r, "dropped_attributes_count") == [0, 1]
    s = b.context("scope")
    assert _get(s, "name") == ["lib00", "lib01", "lib10"]
    assert _get(s, 'attributes["scope.k"]') == ["v0", "v1", "v0"]
    assert _get(s, 'resource.attributes["service.name"]') == ["api", "api", "db"]
    with pytest.raises(ValueError):
        b.context("log")


# ---- drops -------------------------------------------------------------------------------


def test_drop_spans_removes_empty_scopes_and_resources():
    msg = traces_request()
    b = decode("traces", msg)
    # drop span-0-1-0 (alone in its scope) and both spans of resource "db"
    assert b.drop("span", np.array([False, False, True, True, True])) == 3
    want = traces_request()
    del want.resource_spans[1]
    del want.resource_spans[0].scope_spans[1]
    assert parse("traces", b.encode()) == want
    assert b.item_count() == 2
    assert b.drop("span", np.array([True, True])) == 2
    assert b.is_empty()
    assert parse("traces", b.encode()) == ExportTraceServiceRequest()


def test_drop_nothing_keeps_payload():
    payload = traces_request().SerializeToString()
    b = OtlpBatch.decode("traces", payload)
    assert b.drop("span", np.zeros(5, bool)) == 0
    assert b.encode() is payload


def test_drop_span_events_keeps_spans():
    b = decode("traces", traces_request())
    assert b.drop("spanevent", np.array([False, False, True, True])) == 2
    want = traces_request()
    del want.resource_spans[1].scope_spans[0].spans[0].events[:]
    assert parse("traces", b.encode()) == want


def test_drop_logs_and_resources():
    b = decode("logs", logs_request())
    assert b.drop("log", np.array([True, False, False, False, True])) == 2
    want = logs_request()
    del want.resource_logs[1]
    del want.resource_logs[0].scope_logs[0].log_records[0]
    assert parse("logs", b.encode()) == want
    b = decode("logs", logs_request())
    assert b.drop("resource", np.array([True, False])) == 1
    want = logs_request()
    del want.resource_logs[0]
    assert parse("logs", b.encode()) == want


def test_drop_datapoints_removes_emptied_metrics():
    b = decode("metrics", metrics_request())
    # all sum points, the mem gauge point, one cpu point
    mask = np.array([True, False, True, True, True, True, False, False, False])
    assert b.drop("datapoint", mask) == 5
    want = metrics_request()
    del want.resource_metrics[1]
    ms = want.resource_metrics[0].scope_metrics[0].metrics
    del ms[1]  # requests
    del ms[0].gauge.data_points[0]
    assert parse("metrics", b.encode()) == want
    assert b.item_count() == 4


def test_drop_metrics():
    b = decode("metrics", metrics_request())
    assert b.drop("metric", np.array([False, True, False, False, False, True])) == 2
    want = metrics_request()
    del want.resource_metrics[1]
    del want.resource_metrics[0].scope_metrics[0].metrics[1]
    assert parse("metrics", b.encode()) == want
    assert b.item_count() == 2 + 1 + 1 + 1


def test_drop_mask_length_checked():
    b = decode("traces", traces_request())
    with pytest.raises(ValueError):
        b.drop("span", np.zeros(3, bool))


# ---- attributes and strings --------------------------------------------------------------


def test_set_attributes_span():
    b = decode("traces", traces_request())
    attrs = b.attributes("span")
    assert len(attrs) == 5
    t = b.any_value_type()
    values = any_values(t, str=pa.array(["x", None]), int=pa.array([None, 3]))
    lists = key_value_lists(attrs.type, np.array([0, 1, 1, 1, 2, 2]), pa.array(["a", "b"]), values)
    b.set_attributes("span", lists)
    got = parse("traces", b.encode())
    spans = [sp for rs in got.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    assert [(kv.key, kv.value.string_value) for kv in spans[0].attributes] == [("a", "x")]
    assert len(spans[1].attributes) == 0
    assert [(kv.key, kv.value.int_value) for kv in spans[3].attributes] == [("b", 3)]
    assert spans[0].events[0].attributes[0].key == "exception.type"


def test_set_attributes_on_absent_resource_makes_it_present():
    req = ExportLogsServiceRequest()
    req.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "x"
    b = decode("logs", req)
    attrs = b.attributes("resource")
    lists = key_value_lists(attrs.type, np.array([0, 1]), pa.array(["k"]),
                            any_values(b.any_value_type(), str=pa.array(["v"])))
    b.set_attributes("resource", lists)
    got = parse("logs", b.encode())
    assert got.resource_logs[0].resource.attributes[0].value.string_value == "v"


def test_set_attributes_datapoints_in_context_order():
    b = decode("metrics", metrics_request())
    attrs = b.attributes("datapoint")
    assert len(attrs) == 9
    empty = pa.ListArray.from_arrays(pa.array([0] * 10, pa.int32()),
                                     attrs.values.slice(0, 0), type=attrs.type)
    b.set_attributes("datapoint", empty)
    got = parse("metrics", b.encode())
    ms = got.resource_metrics[0].scope_metrics[0].metrics
    assert not ms[1].sum.data_points[0].attributes and not ms[4].summary.data_points[0].attributes
    assert ms[1].sum.data_points[2].as_int == 20


def test_strings_and_set_strings():
    b = decode("traces", traces_request())
    assert b.strings("span.name").to_pylist()[0] == "span-0-0-0"
    assert b.strings("span.status.message").to_pylist() == ["boom", None, "boom", "boom", None]
    assert b.strings("spanevent.name").to_pylist() == ["exception"] * 3 + ["retry"]
    b.set_strings("span.name", pa.array(["A", None, None, None, "E"]))
    b.set_strings("span.status.message", pa.array(["***", "set", None, None, None]))
    got = parse("traces", b.encode())
    spans = [sp for rs in got.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    assert [s.name for s in spans] == ["A", "span-0-0-1", "span-0-1-0", "span-1-0-0", "E"]
    assert spans[0].status.message == "***" and spans[0].status.code == 2
    assert spans[1].status.message == "set" and spans[1].status.code == 0
    assert not spans[4].HasField("status")

    lg = decode("logs", logs_request())
    assert lg.strings("log.body").to_pylist() == ["message 0", "message 1", "message 2", None, "t"]
    lg.set_strings("log.body", pa.array(["REDACTED", None, None, "int-now-str", None]))
    lg.set_strings("log.severity_text", pa.array([None, None, None, None, "trace"]))
    got = parse("logs", lg.encode())
    recs = got.resource_logs[0].scope_logs[0].log_records
    assert recs[0].body.string_value == "REDACTED" and recs[1].body.string_value == "message 1"
    assert recs[3].body.WhichOneof("value") == "string_value"
    assert got.resource_logs[1].scope_logs[0].log_records[0].severity_text == "trace"

    m = decode("metrics", metrics_request())
    assert m.strings("metric.name").to_pylist()[0] == "cpu"
    m.set_strings("metric.description", pa.array([None, "d", None, None, None, None]))
    got = parse("metrics", m.encode())
    assert got.resource_metrics[0].scope_metrics[0].metrics[1].description == "d"


def test_sites():
    assert decode("traces", traces_request()).attribute_sites()[:3] == ["resource", "scope", "span"]
    assert decode("logs", logs_request()).string_sites() == ["log.body", "log.severity_text"]
    assert "datapoint" in decode("metrics", metrics_request()).attribute_sites()


def test_nested_any_values_use_the_lossless_encoder():
    req = traces_request()
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    kv = sp.attributes.add(key="arr")
    kv.value.array_value.values.add().string_value = "q"
    kv.value.array_value.values.add().int_value = 2
    kv = sp.attributes.add(key="map")
    _kv(kv.value.kvlist_value.values, "inner", "v")
    b = decode("traces", req)
    assert b._has_nested_any_values()
    assert not decode("traces", traces_request())._has_nested_any_values()
    pytest.importorskip("lookout.otlp.arrow_encode")
    b.drop("span", np.array([False, True, False, False, False]))
    want = req
    del want.resource_spans[0].scope_spans[0].spans[1]
    assert parse("traces", b.encode()) == want
