"""Span metrics against a generated trace set whose calls, statuses and latencies are known."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from lookout.otlp.traces import decode_traces
from lookout.pipeline.series import exponential_buckets
from lookout.pipeline.spanmetrics import (
    CALLS,
    DEFAULT_BUCKETS,
    LATENCY,
    SpanMetrics,
    parse_spanmetrics_config,
)
from lookout.pipeline.stats import ProcessorStats

KINDS = ["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
         "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"]
STATUS = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]


def _kv(key: str, value: object) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = str(value)
    return kv


def request(spans: list[dict], resource: dict[str, dict] | None = None) -> bytes:
    """Spans as dicts (service, trace, span, parent, name, kind, status, start, dur, attrs) ->
    one serialized ExportTraceServiceRequest, one ResourceSpans per service."""
    req = ExportTraceServiceRequest()
    by_service: dict[str, list[dict]] = defaultdict(list)
    for s in spans:
        by_service[s["service"]].append(s)
    for service, group in by_service.items():
        rs = req.resource_spans.add()
        rs.resource.attributes.append(_kv("service.name", service))
        for k, v in (resource or {}).get(service, {}).items():
            rs.resource.attributes.append(_kv(k, v))
        ss = rs.scope_spans.add()
        for s in group:
            sp = ss.spans.add()
            sp.trace_id, sp.span_id = s["trace"], s["span"]
            sp.parent_span_id = s.get("parent", b"")
            sp.name, sp.kind = s["name"], s["kind"]
            sp.start_time_unix_nano = s.get("start", 1_700_000_000_000_000_000)
            sp.end_time_unix_nano = sp.start_time_unix_nano + s["dur"]
            sp.status.code = s.get("status", 0)
            sp.status.message = s.get("message", "")
            for k, v in s.get("attrs", {}).items():
                sp.attributes.append(_kv(k, v))
    return req.SerializeToString()


def generate(n_traces: int, seed: int = 1) -> list[dict]:
    """frontend SERVER -> frontend CLIENT -> backend SERVER -> backend CLIENT(db) per trace, with
    random durations (ns, spread over every bucket) and statuses."""
    rng = random.Random(seed)
    spans = []
    for _ in range(n_traces):
        tid = rng.randbytes(16)
        ids = [rng.randbytes(8) for _ in range(4)]
        route = rng.choice(["GET /", "GET /cart", "POST /pay"])

        def dur() -> int:
            return int(10 ** rng.uniform(5, 10.5))  # 0.1 ms .. 31 s

        spans += [
            dict(service="frontend", trace=tid, span=ids[0], name=route, kind=2, dur=dur(),
                 status=rng.choice([0, 0, 1, 2]), attrs={"http.method": route.split()[0]}),
            dict(service="frontend", trace=tid, span=ids[1], parent=ids[0], name="backend.call", kind=3,
                 dur=dur(), status=rng.choice([0, 2]), attrs={"peer.service": "backend"}),
            dict(service="backend", trace=tid, span=ids[2], parent=ids[1], name="handle", kind=2,
                 dur=dur(), status=rng.choice([0, 1, 2])),
            dict(service="backend", trace=tid, span=ids[3], parent=ids[2], name="SELECT", kind=3,
                 dur=dur(), status=0, attrs={"db.system": "postgresql", "db.name": "shop"}),
        ]
    return spans


def _series(samples, name):
    return {tuple(sorted((k, v) for k, v in s.labels.items() if k != "__name__")): s
            for s in samples if s.labels["__name__"] == name}


def test_counts_and_buckets_exact():
    spans = generate(600)
    table = pa.concat_tables([decode_traces([request(spans[i:i + 400])]) for i in range(0, len(spans), 400)])
    cfg = parse_spanmetrics_config({"dimensions": ["http.method"]}, "sm", problems := [])
    assert problems == [] and cfg is not None
    sm = SpanMetrics(cfg, ProcessorStats("traces", "spanmetrics"))
    # feed in three uneven batches: cumulative values must not depend on batching
    sm.observe("t1", table.slice(0, 7))
    sm.observe("t1", table.slice(7, 1000))
    sm.observe("t1", table.slice(1007))
    samples = sm.collect("t1", lambda tid: None)

    expect_calls: Counter = Counter()
    lat: dict[tuple, list[float]] = defaultdict(list)
    for s in spans:
        key = {"service": s["service"], "span_name": s["name"], "span_kind": KINDS[s["kind"]],
               "status_code": STATUS[s.get("status", 0)]}
        if "http.method" in s.get("attrs", {}):
            key["http_method"] = s["attrs"]["http.method"]
        k = tuple(sorted(key.items()))
        expect_calls[k] += 1
        lat[k].append(s["dur"] / 1e9)
    calls = _series(samples, CALLS)
    assert {k: v.value for k, v in calls.items()} == dict(expect_calls)
    assert sum(v.value for v in calls.values()) == len(spans)

    bounds = np.array(DEFAULT_BUCKETS)
    assert np.allclose(bounds, exponential_buckets(0.002, 2, 14)) and bounds[-1] == 16.384
    buckets = [s for s in samples if s.labels["__name__"] == f"{LATENCY}_bucket"]
    sums = _series(samples, f"{LATENCY}_sum")
    counts = _series(samples, f"{LATENCY}_count")
    for k, values in lat.items():
        v = np.array(values)
        assert counts[k].value == len(v)
        assert abs(sums[k].value - v.sum()) < 1e-9 * max(1.0, v.sum())
        got = {s.labels["le"]: s.value for s in buckets
               if tuple(sorted((a, b) for a, b in s.labels.items() if a not in ("__name__", "le"))) == k}
        assert len(got) == len(bounds) + 1
        for b in bounds:
            le = repr(float(b)) if not float(b).is_integer() else str(int(b))
            assert got[le] == np.count_nonzero(v <= b), (k, le)
        assert got["+Inf"] == len(v)
    assert sm.tenants() == ["t1"]
    assert sm.collect("other", lambda tid: True) == []


def test_exemplars_only_for_kept_traces():
    spans = generate(200, seed=7)
    table = decode_traces([request(spans)])
    cfg = parse_spanmetrics_config({}, "sm", [])
    sm = SpanMetrics(cfg, ProcessorStats("traces", "spanmetrics"))
    sm.observe("t", table)
    traces = sorted({s["trace"] for s in spans})
    kept = set(traces[::3])
    decided = set(traces[: len(traces) // 2])

    def verdict(tid: bytes) -> bool | None:
        if tid not in decided:
            return None
        return tid in kept

    first = sm.collect("t", verdict)
    exemplars = [s.exemplar for s in first if s.exemplar is not None]
    assert exemplars, "some series must have a kept candidate"
    for ex in exemplars:
        assert ex.trace_id in kept and ex.trace_id in decided
    # exemplars sit on histogram buckets whose le covers the value
    for s in first:
        if s.exemplar is not None:
            assert s.labels["__name__"] == f"{LATENCY}_bucket"
            assert s.labels["le"] == "+Inf" or s.exemplar.value <= float(s.labels["le"])
            span = next(x for x in spans if x["span"] == s.exemplar.span_id)
            assert abs(span["dur"] / 1e9 - s.exemplar.value) < 1e-12
            assert s.exemplar.t_ms == (1_700_000_000_000_000_000 + span["dur"]) // 1_000_000
    # once sent, an exemplar is not sent again; undecided candidates are resolved later
    decided = set(traces)
    second = sm.collect("t", verdict)
    for s in second:
        if s.exemplar is not None:
            assert s.exemplar.trace_id in kept
            assert s.exemplar not in exemplars
    # nothing is ever attached for a dropped trace
    none_kept = SpanMetrics(cfg, ProcessorStats("traces", "spanmetrics"))
    none_kept.observe("t", table)
    assert all(s.exemplar is None for s in none_kept.collect("t", lambda tid: False))


def test_series_bound_counts_dropped():
    spans = [dict(service="svc", trace=bytes([i % 256]) * 16, span=i.to_bytes(8, "big"), name=f"op{i}", kind=1,
                  dur=1000) for i in range(50)]
    table = decode_traces([request(spans)])
    stats = ProcessorStats("traces", "spanmetrics")
    sm = SpanMetrics(parse_spanmetrics_config({"max_series": 20}, "sm", []), stats)
    sm.observe("t", table)
    sm.observe("t", table)
    assert sm.series_count("t") == 20
    calls = _series(sm.collect("t", lambda tid: None), CALLS)
    assert len(calls) == 20 and all(v.value == 2 for v in calls.values())
    assert stats.get("series_dropped_spans", reason="max_series") == 60
    # the bound is per tenant
    sm.observe("u", table.slice(0, 5))
    assert sm.series_count("u") == 5


def test_dimensions_intrinsics_mappings_external_labels():
    spans = [
        dict(service="api", trace=b"\x01" * 16, span=b"\x01" * 8, name="a", kind=2, dur=5_000_000, status=2,
             message="boom", attrs={"http.status_code": 500, "ratio": 0.5, "flag": True, "service": "x"}),
        dict(service="api", trace=b"\x02" * 16, span=b"\x02" * 8, name="a", kind=2, dur=5_000_000,
             attrs={"http.status_code": 200}),
    ]
    table = decode_traces([request(spans, resource={"api": {"k8s.namespace.name": "prod",
                                                            "deployment.environment": "eu"}})])
    raw = {
        "intrinsic_dimensions": {"status_message": True, "span_name": False},
        "dimensions": ["http.status_code", "ratio", "flag", "service", "k8s.namespace.name"],
        "dimension_mappings": [{"name": "env_ns", "source_labels": ["deployment.environment", "missing",
                                                                    "k8s.namespace.name"], "join": "/"}],
        "external_labels": {"cluster": "c1"},
    }
    sm = SpanMetrics(parse_spanmetrics_config(raw, "sm", []), ProcessorStats("traces", "spanmetrics"))
    sm.observe("t", table)
    calls = [s for s in sm.collect("t", lambda tid: None) if s.labels["__name__"] == CALLS]
    by_code = {s.labels["http_status_code"]: s.labels for s in calls}
    err = by_code["500"]
    assert err == {"__name__": CALLS, "cluster": "c1", "service": "api", "span_kind": "SPAN_KIND_SERVER",
                   "status_code": "STATUS_CODE_ERROR", "status_message": "boom", "http_status_code": "500",
                   "ratio": "0.5", "flag": "true", "__service": "x", "k8s_namespace_name": "prod",
                   "env_ns": "eu/prod"}
    ok = by_code["200"]
    assert "status_message" not in ok and "ratio" not in ok  # empty values are absent labels
    assert ok["status_code"] == "STATUS_CODE_UNSET"


def test_config_errors_are_named():
    problems: list[str] = []
    cfg = parse_spanmetrics_config({
        "histogram_buckets": [1, 0.5],
        "intrinsic_dimensions": {"bogus": True, "service": "yes"},
        "dimensions": "http.method",
        "dimension_mappings": [{"name": "x"}],
        "max_series": 0,
        "filter_policies": [],
        "external_labels": {"bad-name": "v"},
    }, "pipeline.traces[0].spanmetrics", problems)
    assert cfg is None
    text = "\n".join(problems)
    for needle in ("spanmetrics.histogram_buckets", "intrinsic_dimensions.bogus", "intrinsic_dimensions.service",
                   "spanmetrics.dimensions:", "dimension_mappings[0].source_labels", "spanmetrics.max_series",
                   "spanmetrics.filter_policies: unknown setting", "external_labels.bad-name"):
        assert needle in text, (needle, text)
    problems = []
    assert parse_spanmetrics_config({"dimensions": ["http.method", "http_method"]}, "sm", problems) is None
    assert "same label" in problems[0]
    defaults = parse_spanmetrics_config(None, "sm", [])
    assert defaults is not None and defaults.label_names() == ["service", "span_name", "span_kind", "status_code"]
    assert defaults.max_series == 10_000
