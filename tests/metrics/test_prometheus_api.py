"""The Prometheus HTTP API of the real server, as Grafana and the OpenTelemetry SDK use it:
OTLP metrics from the real SDK (gRPC and HTTP, cumulative and delta) queried back with PromQL,
every ``/api/v1/*`` endpoint in GET and urlencoded POST form with Prometheus' JSON shapes, error
types and status codes, and tenant isolation across every read endpoint."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from lookout.metrics.batch import MetricMetadata
from lookout.metrics.remote_write import encode_write_request
from tests.conftest import metric_value, wait_for

RW_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
              "X-Prometheus-Remote-Write-Version": "0.1.0"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C
SPAN_ID = 0xEEE19B7EC3C1B174


def now_ms() -> int:
    return int(time.time() * 1000)


def write(lk, series, tenant: str | None = None, metadata=None) -> None:
    body = encode_write_request([(labels, np.array([p[0] for p in pts], np.int64),
                                  np.array([p[1] for p in pts], np.float64)) for labels, pts in series], metadata)
    headers = dict(RW_HEADERS)
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    r = httpx.post(f"{lk.http}/api/v1/write", content=body, headers=headers, timeout=30)
    assert r.status_code == 204, r.text


def api(lk, path: str, params=None, *, method: str = "GET", tenant: str | None = None,
        status: int = 200) -> dict:
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    if method == "GET":
        r = httpx.get(f"{lk.http}{path}", params=params, headers=headers, timeout=30)
    else:
        r = httpx.post(f"{lk.http}{path}", content=httpx.QueryParams(params or {}).__str__(),
                       headers={**headers, **FORM}, timeout=30)
    assert r.status_code == status, (path, params, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == ("success" if status == 200 else "error"), body
    return body


def instant(lk, q: str, t_ms: int | None = None, tenant: str | None = None) -> list[dict]:
    params = {"query": q}
    if t_ms is not None:
        params["time"] = f"{t_ms / 1000:.3f}"
    data = api(lk, "/api/v1/query", params, tenant=tenant)["data"]
    assert data["resultType"] in ("vector", "scalar", "matrix", "string")
    return data["result"]


def by_labels(result: list[dict]) -> dict[tuple, float]:
    return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in result}


# --------------------------------------------------------------------------------------------
# the real OpenTelemetry SDK


RESOURCE = {"service.name": "checkout", "service.namespace": "shop", "service.instance.id": "pod-7",
            "deployment.environment": "test", "host.name": "h1"}


def _emit(exporter, temporality: dict | None = None, rounds: int = 2, *, service: str = "checkout") -> None:
    if temporality:
        exporter._preferred_temporality = temporality  # noqa: SLF001 (the exporters' documented knob)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({**RESOURCE, "service.name": service}),
                             metric_readers=[reader])
    meter = provider.get_meter("sdk.test", "1.0")
    requests = meter.create_counter("http.server.requests", unit="1", description="Requests served")
    inflight = meter.create_up_down_counter("queue.depth", unit="{item}", description="Items queued")
    temp = meter.create_gauge("room.temperature", unit="Cel", description="Temperature")
    latency = meter.create_histogram("http.server.duration", unit="ms", description="Request latency")
    ctx = set_span_in_context(NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False,
                                                           trace_flags=TraceFlags(TraceFlags.SAMPLED))))
    for r in range(rounds):
        requests.add(3, {"route": "/pay"})
        requests.add(1, {"route": "/cart"})
        inflight.add(5 if r == 0 else -2)
        temp.set(21.5 + r)
        for v in (5, 20, 20, 80, 300):
            latency.record(v, {"route": "/pay"}, context=ctx)
        assert reader.force_flush(timeout_millis=10_000)
        time.sleep(0.01)
    provider.shutdown()


def _check_sdk_series(lk, service: str = "checkout") -> None:
    job = f"shop/{service}"
    sel = f'job="{job}"'
    res = wait_for(lambda: (lambda r: r if r and float(r[0]["value"][1]) == 6 else None)(
        instant(lk, f'http_server_requests_total{{{sel},route="/pay"}}')))
    assert res[0]["metric"] == {"__name__": "http_server_requests_total", "job": job, "instance": "pod-7",
                                "route": "/pay"}
    assert by_labels(instant(lk, f'sum by (route) (http_server_requests_total{{{sel}}})')) == {
        (("route", "/cart"),): 2.0, (("route", "/pay"),): 6.0}
    # the up-down counter is a gauge without _total; the gauge carries its unit suffix
    assert [float(s["value"][1]) for s in instant(lk, f"queue_depth{{{sel}}}")] == [3.0]
    assert [float(s["value"][1]) for s in instant(lk, f"room_temperature_celsius{{{sel}}}")] == [22.5]
    # histogram: _bucket{le} cumulative, _count, _sum; histogram_quantile works on it
    assert float(instant(lk, f"http_server_duration_milliseconds_count{{{sel}}}")[0]["value"][1]) == 10
    assert float(instant(lk, f"http_server_duration_milliseconds_sum{{{sel}}}")[0]["value"][1]) == 850
    buckets = by_labels(instant(lk, f"http_server_duration_milliseconds_bucket{{{sel}}}"))
    le = {dict(k)["le"]: v for k, v in buckets.items()}
    assert le["+Inf"] == 10 and le["5"] == 2 and le["25"] == 6 and le["100"] == 8
    q = instant(lk, f"histogram_quantile(0.5, sum by (le) (http_server_duration_milliseconds_bucket{{{sel}}}))")
    assert 10 <= float(q[0]["value"][1]) <= 25
    # target_info has the other resource attributes, joined by job and instance
    ti = instant(lk, f"target_info{{{sel}}}")
    assert len(ti) == 1
    assert ti[0]["metric"]["deployment_environment"] == "test" and ti[0]["metric"]["host_name"] == "h1"
    assert ti[0]["metric"]["instance"] == "pod-7" and ti[0]["metric"]["telemetry_sdk_language"] == "python"
    assert not {"service_name", "service_namespace", "service_instance_id"} & set(ti[0]["metric"])
    joined = instant(lk, f"http_server_requests_total{{{sel},route='/pay'}} * on (job, instance) "
                         "group_left (host_name) target_info")
    assert joined[0]["metric"]["host_name"] == "h1"


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_metrics_queryable(lookout, transport: str) -> None:
    if transport == "grpc":
        exporter = GrpcMetricExporter(endpoint=lookout.otlp_grpc, insecure=True)
    else:
        exporter = HttpMetricExporter(endpoint=f"{lookout.otlp_http}/v1/metrics")
    _emit(exporter, service=f"checkout-{transport}")
    _check_sdk_series(lookout, f"checkout-{transport}")
    # metadata from OTLP: type, help and unit per family
    md = api(lookout, "/api/v1/metadata")["data"]
    assert md["http_server_requests_total"][0]["type"] == "counter"
    assert md["http_server_requests_total"][0]["help"] == "Requests served"
    assert md["http_server_duration_milliseconds"][0] == {"type": "histogram", "help": "Request latency",
                                                           "unit": "milliseconds"}
    assert md["queue_depth"][0]["type"] == "gauge"
    # exemplars carry the trace id of the recording context
    ex = api(lookout, "/api/v1/query_exemplars", {"query": "http_server_duration_milliseconds_bucket",
                                                 "start": (now_ms() - 600_000) / 1000,
                                                 "end": (now_ms() + 60_000) / 1000})["data"]
    assert ex, "no exemplars"
    first = ex[0]
    assert set(first) == {"seriesLabels", "exemplars"}
    assert first["seriesLabels"]["__name__"] == "http_server_duration_milliseconds_bucket"
    e = first["exemplars"][0]
    assert set(e) == {"labels", "value", "timestamp"}
    assert e["labels"]["trace_id"] == f"{TRACE_ID:032x}"
    assert isinstance(e["value"], str) and isinstance(e["timestamp"], float)


def test_sdk_delta_temporality_becomes_cumulative(lookout) -> None:
    delta = {Counter: AggregationTemporality.DELTA, UpDownCounter: AggregationTemporality.CUMULATIVE,
             Histogram: AggregationTemporality.DELTA, ObservableCounter: AggregationTemporality.DELTA,
             ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
             ObservableGauge: AggregationTemporality.CUMULATIVE}
    exporter = HttpMetricExporter(endpoint=f"{lookout.otlp_http}/v1/metrics", preferred_temporality=delta)
    _emit(exporter, rounds=3, service="delta")
    sel = 'job="shop/delta"'
    wait_for(lambda: (lambda r: r and float(r[0]["value"][1]) == 9)(
        instant(lookout, f'http_server_requests_total{{{sel},route="/pay"}}')))
    assert float(instant(lookout, f"http_server_duration_milliseconds_count{{{sel}}}")[0]["value"][1]) == 15
    # a range query shows a monotonic cumulative series, not deltas
    now = now_ms()
    rng = api(lookout, "/api/v1/query_range", {"query": f'http_server_requests_total{{{sel},route="/pay"}}',
                                               "start": (now - 60_000) / 1000, "end": now / 1000, "step": "0.1"})
    pts = [float(v) for _, v in rng["data"]["result"][0]["values"]]
    assert pts == sorted(pts) and pts[-1] == 9 and set(pts) <= {3.0, 6.0, 9.0}
    assert metric_value(lookout.metrics(), "lookout_metrics_refused_data_points_total", tenant="default") == 0


# --------------------------------------------------------------------------------------------
# endpoints, shapes and errors


@pytest.fixture
def loaded(lookout):
    """Remote-written data: two metrics, a few series, 10 minutes at 15 s."""
    t0 = (now_ms() // 60_000) * 60_000 - 600_000
    ts = [t0 + k * 15_000 for k in range(41)]
    series = []
    for inst in ("a", "b", "c"):
        series.append(({"__name__": "api_requests_total", "job": "api", "instance": inst, "code": "200"},
                       [(t, float(k * (1 + "abc".index(inst)))) for k, t in enumerate(ts)]))
    series.append(({"__name__": "api_temp", "job": "api", "instance": "a", "room": "x"}, [(t, 20.0) for t in ts]))
    write(lookout, series, metadata=[MetricMetadata("api_requests_total", "counter", "", "Requests.")])
    end = ts[-1]
    wait_for(lambda: len(instant(lookout, "api_requests_total", end)) == 3)
    return lookout, t0, end


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_query_and_query_range_shapes(loaded, method: str) -> None:
    lk, t0, end = loaded
    body = api(lk, "/api/v1/query", {"query": "sum by (instance) (api_requests_total)", "time": end / 1000},
               method=method)
    data = body["data"]
    assert data["resultType"] == "vector"
    got = {s["metric"]["instance"]: s["value"] for s in data["result"]}
    assert got["a"] == [end / 1000, "40"] and got["c"] == [end / 1000, "120"]
    scalar = api(lk, "/api/v1/query", {"query": "1 + 2", "time": "1700000000.5"}, method=method)["data"]
    assert scalar == {"resultType": "scalar", "result": [1700000000.5, "3"]}
    rng = api(lk, "/api/v1/query_range", {"query": "rate(api_requests_total{instance='b'}[1m])",
                                          "start": (end - 120_000) / 1000, "end": end / 1000, "step": "60s"},
              method=method)["data"]
    assert rng["resultType"] == "matrix"
    (series,) = rng["result"]
    assert series["metric"] == {"code": "200", "instance": "b", "job": "api"}
    assert [p[0] for p in series["values"]] == [(end - 120_000) / 1000, (end - 60_000) / 1000, end / 1000]
    assert all(abs(float(v) - 2 / 15) < 1e-9 for _, v in series["values"])
    # RFC 3339 times and a Prometheus duration step are accepted too
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end / 1000))
    r = api(lk, "/api/v1/query", {"query": "api_temp", "time": iso}, method=method)["data"]["result"]
    assert r[0]["value"][1] == "20"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_series_labels_label_values(loaded, method: str) -> None:
    lk, t0, end = loaded
    err = api(lk, "/api/v1/series", {}, method=method, status=400)
    assert err["errorType"] == "bad_data" and err["error"] == "no match[] parameter provided"
    params = [("match[]", "api_requests_total{instance=~'a|b'}"), ("match[]", "api_temp"),
              ("start", str(t0 / 1000)), ("end", str(end / 1000))]
    body = api(lk, "/api/v1/series", params, method=method)
    assert sorted(body["data"], key=lambda s: (s["__name__"], s["instance"])) == [
        {"__name__": "api_requests_total", "job": "api", "instance": "a", "code": "200"},
        {"__name__": "api_requests_total", "job": "api", "instance": "b", "code": "200"},
        {"__name__": "api_temp", "job": "api", "instance": "a", "room": "x"},
    ]
    lim = api(lk, "/api/v1/series", [*params, ("limit", "1")], method=method)
    assert len(lim["data"]) == 1 and lim["warnings"]
    labels = api(lk, "/api/v1/labels", method=method)["data"]
    assert labels == sorted(labels) and {"__name__", "job", "instance", "code", "room"} <= set(labels)
    only = api(lk, "/api/v1/labels", [("match[]", "api_temp")], method=method)["data"]
    assert only == ["__name__", "instance", "job", "room"]
    vals = api(lk, "/api/v1/label/instance/values", method="GET")["data"]
    assert vals == ["a", "b", "c"]
    names = api(lk, "/api/v1/label/__name__/values", {"match[]": "{job='api'}"})["data"]
    assert names == ["api_requests_total", "api_temp"]
    some = api(lk, "/api/v1/label/instance/values", {"match[]": "api_temp", "start": t0 / 1000,
                                                       "end": end / 1000})["data"]
    assert some == ["a"]
    trunc = api(lk, "/api/v1/label/instance/values", {"limit": "2"})
    assert trunc["data"] == ["a", "b"] and trunc["warnings"]
    # a window before any data has no series and no values
    assert api(lk, "/api/v1/label/instance/values", {"start": "1000", "end": "2000"})["data"] == []
    assert api(lk, "/api/v1/series", {"match[]": "api_temp", "start": "1000", "end": "2000"})["data"] == []


def test_metadata_format_parse_buildinfo_tsdb(loaded) -> None:
    lk, _, _ = loaded
    md = api(lk, "/api/v1/metadata")["data"]
    assert md["api_requests_total"] == [{"type": "counter", "help": "Requests.", "unit": ""}]
    for method in ("GET", "POST"):
        f = api(lk, "/api/v1/format_query", {"query": "sum(rate(foo{bar='baz'}[5m]))by(x)"}, method=method)
        assert f["data"] == 'sum by (x) (rate(foo{bar="baz"}[5m]))'
        p = api(lk, "/api/v1/parse_query", {"query": "foo + 1"}, method=method)["data"]
        assert p["type"] == "binaryExpr" and p["op"] == "+"
    bi = api(lk, "/api/v1/status/buildinfo")["data"]
    assert set(bi) >= {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}
    tsdb = api(lk, "/api/v1/status/tsdb")["data"]
    assert tsdb["headStats"]["numSeries"] == 4
    assert {"name": "api_requests_total", "value": 3} in tsdb["seriesCountByMetricName"]
    assert set(tsdb) >= {"headStats", "seriesCountByMetricName", "labelValueCountByLabelName",
                         "memoryInBytesByLabelName", "seriesCountByLabelValuePair"}


def test_errors(loaded) -> None:
    lk, t0, end = loaded
    bad = api(lk, "/api/v1/query", {"query": "sum(rate(foo[5m])"}, status=400)
    assert bad["errorType"] == "bad_data"
    assert any(ch.isdigit() for ch in bad["error"]), bad["error"]  # names the position
    bad = api(lk, "/api/v1/query", {"query": "up", "time": "yesterday"}, status=400)
    assert bad["errorType"] == "bad_data" and "time" in bad["error"]
    bad = api(lk, "/api/v1/query", {}, status=400)
    assert bad["errorType"] == "bad_data" and "query" in bad["error"]
    bad = api(lk, "/api/v1/query_range", {"query": "up", "start": "10", "end": "5", "step": "1"}, status=400)
    assert bad["errorType"] == "bad_data"
    bad = api(lk, "/api/v1/query_range", {"query": "up", "start": "0", "end": "100000", "step": "1"}, status=400)
    assert bad["errorType"] == "bad_data" and "11,000" in bad["error"]
    bad = api(lk, "/api/v1/query_range", {"query": "up", "start": "0", "end": "10", "step": "0"}, status=400)
    assert bad["errorType"] == "bad_data"
    bad = api(lk, "/api/v1/query_range", {"query": "up", "start": "0", "end": "10", "step": "nope"}, status=400)
    assert bad["errorType"] == "bad_data" and "step" in bad["error"]
    bad = api(lk, "/api/v1/series", {"match[]": "sum(x)"}, status=400)
    assert bad["errorType"] == "bad_data"
    bad = api(lk, "/api/v1/labels", {"start": "x"}, status=400)
    assert bad["errorType"] == "bad_data" and "start" in bad["error"]
    bad = api(lk, "/api/v1/query_exemplars", {"query": "foo{"}, status=400)
    assert bad["errorType"] == "bad_data"
    bad = api(lk, "/api/v1/query", {"query": "up", "timeout": "soon"}, status=400)
    assert bad["errorType"] == "bad_data"
    bad = api(lk, "/api/v1/query", {"query": "up"}, tenant="bad tenant!", status=400)
    assert bad["errorType"] == "bad_data"


def test_query_max_samples_is_422(lookout_factory) -> None:
    lk = lookout_factory({"metrics": {"query_max_samples": 100}})
    t0 = now_ms() - 600_000
    write(lk, [({"__name__": "many", "i": str(i)}, [(t0 + k * 15_000, 1.0) for k in range(40)])
               for i in range(10)])
    wait_for(lambda: len(instant(lk, "many", t0 + 39 * 15_000)) == 10)
    err = api(lk, "/api/v1/query", {"query": "sum(count_over_time(many[10m]))", "time": (t0 + 600_000) / 1000},
              status=422)
    assert err["errorType"] == "execution" and "sample" in err["error"]
    err = api(lk, "/api/v1/query_range", {"query": "many", "start": t0 / 1000, "end": (t0 + 600_000) / 1000,
                                          "step": "15"}, status=422, method="POST")
    assert err["errorType"] == "execution"
    # a small query still works
    assert len(instant(lk, "many", t0 + 39 * 15_000)) == 10


def test_short_timeout_is_503(loaded) -> None:
    lk, t0, end = loaded
    heavy = "count(count_over_time((sum by (instance) (rate(api_requests_total[5m])) > 0)[10m:1s]))"
    err = api(lk, "/api/v1/query_range", {"query": heavy, "start": t0 / 1000, "end": end / 1000, "step": "1",
                                          "timeout": "1ms"}, status=503)
    assert err["errorType"] == "timeout"


# --------------------------------------------------------------------------------------------
# tenants


def test_tenants_never_see_each_other(lookout) -> None:
    t = now_ms() - 5_000
    md_a = [MetricMetadata("secret_a_total", "counter", "", "A only.")]
    md_b = [MetricMetadata("secret_b", "gauge", "", "B only.")]
    write(lookout, [({"__name__": "secret_a_total", "team": "alpha"}, [(t, 1.0)])], tenant="alpha", metadata=md_a)
    write(lookout, [({"__name__": "secret_b", "team": "beta"}, [(t, 2.0)])], tenant="beta", metadata=md_b)
    # exemplars through OTLP per tenant
    for tenant in ("alpha", "beta"):
        exporter = HttpMetricExporter(endpoint=f"{lookout.otlp_http}/v1/metrics",
                                      headers={"X-Scope-OrgID": tenant})
        _emit(exporter, rounds=1, service=f"svc-{tenant}")
    for tenant, mine, theirs in (("alpha", "secret_a_total", "secret_b"), ("beta", "secret_b", "secret_a_total")):
        wait_for(lambda tn=tenant, m=mine: instant(lookout, m, tenant=tn))
        wait_for(lambda tn=tenant: instant(lookout, "http_server_duration_milliseconds_count", tenant=tn))
        assert instant(lookout, theirs, tenant=tenant) == []
        jobs = {s["metric"]["job"] for s in instant(lookout, "http_server_duration_milliseconds_count",
                                                     tenant=tenant)}
        assert jobs == {f"shop/svc-{tenant}"}
        series = api(lookout, "/api/v1/series", {"match[]": "{__name__=~'.+'}"}, tenant=tenant)["data"]
        names = {s["__name__"] for s in series}
        assert mine in names and theirs not in names
        assert {s.get("job") for s in series if "job" in s} == {f"shop/svc-{tenant}"}
        assert "team" in api(lookout, "/api/v1/labels", tenant=tenant)["data"]
        teams = api(lookout, "/api/v1/label/team/values", tenant=tenant)["data"]
        assert teams == [tenant]
        md = api(lookout, "/api/v1/metadata", tenant=tenant)["data"]
        assert mine in md and theirs not in md
        ex = api(lookout, "/api/v1/query_exemplars", {"query": "{__name__=~'.+'}", "start": (t - 60_000) / 1000,
                                                     "end": (now_ms() + 60_000) / 1000}, tenant=tenant)["data"]
        assert ex and {e["seriesLabels"]["job"] for e in ex} == {f"shop/svc-{tenant}"}
        tsdb = api(lookout, "/api/v1/status/tsdb", tenant=tenant)["data"]
        names = {e["name"] for e in tsdb["seriesCountByMetricName"]}
        assert theirs not in names
    # the default tenant sees neither
    assert instant(lookout, "secret_a_total") == [] and instant(lookout, "secret_b") == []
    assert api(lookout, "/api/v1/series", {"match[]": "{team!=''}"})["data"] == []


def test_time_parameters_as_prometheus(loaded) -> None:
    lk, t0, end = loaded
    at = f"{end / 1000:.3f}"
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(end // 1000)) + f".{end % 1000:03d}"
    want = instant(lk, "api_temp", end)
    assert want and want[0]["value"][0] == float(at)
    for ok in (iso + "Z", iso + "+00:00", iso + "000000Z"):
        assert api(lk, "/api/v1/query", {"query": "api_temp", "time": ok})["data"]["result"] == want, ok
    shifted = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(end // 1000 + 7200)) + f".{end % 1000:03d}+02:00"
    assert api(lk, "/api/v1/query", {"query": "api_temp", "time": shifted})["data"]["result"] == want
    # not RFC 3339: no offset (would be local time), date only, garbage
    for bad in (iso, iso[:10], "now", "Inf", "NaN"):
        err = api(lk, "/api/v1/query", {"query": "api_temp", "time": bad}, status=400)
        assert err["errorType"] == "bad_data" and '"time"' in err["error"], bad
    # Prometheus' own "no bound" times, and times beyond any bound, are not server errors
    lo, hi = "-292273086-05-16T16:47:06Z", "292277025-08-18T07:12:54.999999999Z"
    labels = api(lk, "/api/v1/labels", {"start": lo, "end": hi})["data"]
    assert "room" in labels
    for far in ("1e20", "-1e20", "9223372036854775807"):
        assert api(lk, "/api/v1/query", {"query": "api_temp", "time": far})["data"]["result"] == []
        key = "start" if far.startswith("-") else "end"
        assert api(lk, "/api/v1/series", {"match[]": "api_temp", key: far})["data"]
    # 11,000 points per series is the bound, by integer division as in Prometheus
    rng = {"query": "api_temp", "start": "0", "step": "1"}
    api(lk, "/api/v1/query_range", {**rng, "end": "11000.5"})
    err = api(lk, "/api/v1/query_range", {**rng, "end": "11001"}, status=400)
    assert err["errorType"] == "bad_data"


def test_limits_of_metadata_and_tsdb(loaded) -> None:
    lk, _, _ = loaded
    assert api(lk, "/api/v1/metadata", {"limit": "0"})["data"] == {}
    assert len(api(lk, "/api/v1/metadata", {"limit": "1"})["data"]) == 1
    tsdb = api(lk, "/api/v1/status/tsdb", {"limit": "1"})["data"]
    assert all(len(tsdb[k]) == 1 for k in ("seriesCountByMetricName", "labelValueCountByLabelName",
                                           "memoryInBytesByLabelName", "seriesCountByLabelValuePair"))
    assert tsdb["seriesCountByMetricName"] == [{"name": "api_requests_total", "value": 3}]
    for bad in ("0", "-1", "x"):
        assert api(lk, "/api/v1/status/tsdb", {"limit": bad}, status=400)["errorType"] == "bad_data"
