"""The real OpenTelemetry SDK exporters (gRPC and HTTP) send spans that come back exactly
through the Tempo API: ids, names, kinds, times, status, attributes of every type, events,
links, resource and scope."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.conftest import wait_for

KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
STATUS = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}


def any_value(v: dict):
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return v["boolValue"]
    if "arrayValue" in v:
        return tuple(any_value(x) for x in v["arrayValue"].get("values", []))
    if "kvlistValue" in v:
        return {kv["key"]: any_value(kv["value"]) for kv in v["kvlistValue"].get("values", [])}
    if "bytesValue" in v:
        return ("bytes", v["bytesValue"])
    return None


def attrs(kvs: list | None) -> dict:
    return {kv["key"]: any_value(kv.get("value", {})) for kv in kvs or []}


def sdk_attrs(a) -> dict:
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in (a or {}).items()}


def emit(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("roundtrip.scope", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.21.0")
    other = tracer.start_span("linked-target")
    other.end()
    with tracer.start_as_current_span(
        "GET /checkout", kind=SpanKind.SERVER,
        attributes={"http.method": "GET", "http.status_code": 500, "ratio": 0.25, "cached": False,
                    "tags": ["a", "b"], "codes": [1, 2, 3], "weights": [0.5, 1.5], "flags": [True, False]},
    ) as root:
        root.add_event("exception", {"exception.type": "ValueError", "exception.message": "boom", "n": 3})
        root.set_status(Status(StatusCode.ERROR, "checkout failed"))
        with tracer.start_as_current_span(
            "SELECT orders", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql"},
            links=[Link(other.get_span_context(), {"link.reason": "retry", "attempt": 2})],
        ):
            pass
        with tracer.start_as_current_span("publish", kind=SpanKind.PRODUCER):
            pass
        with tracer.start_as_current_span("consume", kind=SpanKind.CONSUMER) as c:
            c.set_status(Status(StatusCode.OK))


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_spans_come_back_exactly(lookout, transport):
    if transport == "grpc":
        exporter = GrpcExporter(endpoint=lookout.otlp_grpc, insecure=True)
    else:
        exporter = HttpExporter(endpoint=f"{lookout.otlp_http}/v1/traces")
    memory = InMemorySpanExporter()
    resource = Resource.create({"service.name": f"shop-{transport}", "service.version": "9.9",
                                "host.cores": 2, "deployment.environment": "test"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    emit(provider)
    provider.shutdown()
    sent = memory.get_finished_spans()
    assert len(sent) == 5

    by_trace: dict[int, list] = {}
    for s in sent:
        by_trace.setdefault(s.context.trace_id, []).append(s)
    for trace_id, spans in by_trace.items():
        url = f"{lookout.http}/api/traces/{trace_id:032x}"
        resp = wait_for(lambda url=url: (r := httpx.get(url, timeout=10)).status_code == 200 and r)
        body = resp.json()
        got = {}
        for batch in body["batches"]:
            res = attrs(batch["resource"].get("attributes"))
            for ss in batch["scopeSpans"]:
                for sp in ss["spans"]:
                    got[sp["spanId"]] = (res, ss["scope"], ss.get("schemaUrl", ""), sp)
        assert len(got) == len(spans)
        for s in spans:
            res, scope, schema_url, sp = got[f"{s.context.span_id:016x}"]
            assert res == sdk_attrs(s.resource.attributes)
            assert scope["name"] == "roundtrip.scope" and scope["version"] == "1.2.3"
            assert schema_url == "https://opentelemetry.io/schemas/1.21.0"
            assert sp["traceId"] == f"{trace_id:032x}"
            assert sp.get("parentSpanId", "") == (f"{s.parent.span_id:016x}" if s.parent else "")
            assert sp["name"] == s.name
            assert sp["kind"] == KIND[s.kind]
            assert int(sp["startTimeUnixNano"]) == s.start_time
            assert int(sp["endTimeUnixNano"]) == s.end_time
            assert sp.get("status", {}).get("code", 0) == STATUS[s.status.status_code]
            assert sp.get("status", {}).get("message", "") == (s.status.description or "")
            assert attrs(sp.get("attributes")) == sdk_attrs(s.attributes)
            events = sp.get("events", [])
            assert [(e["name"], int(e["timeUnixNano"]), attrs(e.get("attributes"))) for e in events] == \
                [(e.name, e.timestamp, sdk_attrs(e.attributes)) for e in s.events]
            links = sp.get("links", [])
            assert [(lk["traceId"], lk["spanId"], attrs(lk.get("attributes"))) for lk in links] == \
                [(f"{lk.context.trace_id:032x}", f"{lk.context.span_id:016x}", sdk_attrs(lk.attributes))
                 for lk in s.links]

        # v2 shape and protobuf by Accept header
        v2 = httpx.get(f"{lookout.http}/api/v2/traces/{trace_id:032x}", timeout=10).json()
        assert sum(len(ss["spans"]) for rs in v2["trace"]["resourceSpans"] for ss in rs["scopeSpans"]) == len(spans)
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        pb = httpx.get(url, headers={"Accept": "application/protobuf"}, timeout=10)
        assert pb.headers["content-type"].startswith("application/protobuf")
        msg = ExportTraceServiceRequest.FromString(pb.content)
        assert sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans) == len(spans)


def test_unknown_trace_is_404_and_bad_id_is_400(lookout):
    r = httpx.get(f"{lookout.http}/api/traces/{'ab' * 16}", timeout=10)
    assert r.status_code == 404
    r = httpx.get(f"{lookout.http}/api/traces/not-hex", timeout=10)
    assert r.status_code == 400 and "trace id" in r.text
