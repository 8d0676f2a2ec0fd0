"""Each malformed or refused request gets its OTLP status and a message naming the problem, and
changes nothing: the log does not grow and no span becomes visible."""

from __future__ import annotations

import gzip
import json
import os

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import metric_value

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


def good_request(trace_id: bytes | None = None, span_id: bytes | None = None, name: str = "x") -> bytes:
    req = ExportTraceServiceRequest()
    sp = req.resource_spans.add().scope_spans.add().spans.add()
    sp.trace_id = trace_id if trace_id is not None else os.urandom(16)
    sp.span_id = span_id if span_id is not None else os.urandom(8)
    sp.name = name
    sp.start_time_unix_nano, sp.end_time_unix_nano = 1, 2
    return req.SerializeToString()


def accepted(node) -> float:
    """Items accepted from clients (the node's own self-scrape, tenant "lookout", excluded)."""
    text = node.metrics()
    return (metric_value(text, "lookout_receiver_accepted_items_total")
            - metric_value(text, "lookout_receiver_accepted_items_total", tenant="lookout"))


def log_bytes(node) -> float:
    return metric_value(node.metrics(), "lookout_log_bytes", signal="traces")


CASES = [
    ("truncated protobuf", PB, good_request()[:-3], 400, "truncated"),
    ("trace id of 15 bytes", PB, good_request(trace_id=b"\x01" * 15), 400, "trace_id"),
    ("span id of 7 bytes", PB, good_request(span_id=b"\x01" * 7), 400, "span_id"),
    ("bad JSON", JS, b'{"resourceSpans": [', 400, "JSON"),
    ("JSON trace id wrong length", JS,
     json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
         {"traceId": "abcd", "spanId": "0102030405060708", "name": "x"}]}]}]}).encode(), 400, "traceId"),
    ("unknown content type", {"Content-Type": "text/plain"}, b"hello", 415, "unsupported media type"),
    ("invalid gzip", {**PB, "Content-Encoding": "gzip"}, b"not gzip at all", 400, "gzip"),
    ("bad tenant", {**PB, "X-Scope-OrgID": "../etc"}, good_request(), 400, "tenant"),
]


@pytest.mark.parametrize("name,headers,body,status,needle", CASES, ids=[c[0] for c in CASES])
def test_http_malformed_input(lookout, name, headers, body, status, needle):
    before_bytes, before_items = log_bytes(lookout), accepted(lookout)
    r = httpx.post(f"{lookout.otlp_http}/v1/traces", content=body, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    if status == 400 and headers.get("Content-Type") == "application/x-protobuf":
        msg = status_pb2.Status.FromString(r.content).message
    elif status == 400:
        msg = r.json()["message"]
    else:
        msg = r.text
    assert needle.lower() in msg.lower(), msg
    assert log_bytes(lookout) == before_bytes and accepted(lookout) == before_items


def test_method_not_allowed_and_unknown_path(lookout):
    assert httpx.get(f"{lookout.otlp_http}/v1/traces", timeout=10).status_code == 405
    assert httpx.post(f"{lookout.otlp_http}/v1/nope", content=b"", headers=PB, timeout=10).status_code == 404


def test_gzip_and_json_and_empty_are_accepted(lookout):
    r = httpx.post(f"{lookout.otlp_http}/v1/traces", content=gzip.compress(good_request()),
                   headers={**PB, "Content-Encoding": "gzip"}, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    r = httpx.post(f"{lookout.otlp_http}/v1/traces", content=b"{}", headers=JS, timeout=10)
    assert r.status_code == 200 and r.json() == {}


def test_over_size_limit_is_413_also_after_gunzip(lookout_factory):
    node = lookout_factory({"ingest": {"max_request_bytes": "10KB"}})
    big = good_request() + ExportTraceServiceRequest(
        resource_spans=[{"scope_spans": [{"spans": [{"trace_id": os.urandom(16), "span_id": os.urandom(8),
                                                      "name": "n" * 20000}]}]}]).SerializeToString()
    r = httpx.post(f"{node.otlp_http}/v1/traces", content=big, headers=PB, timeout=10)
    assert r.status_code == 413
    r = httpx.post(f"{node.otlp_http}/v1/traces", content=gzip.compress(big),
                   headers={**PB, "Content-Encoding": "gzip"}, timeout=10)
    assert r.status_code == 413
    assert accepted(node) == 0


def test_log_full_is_429_with_retry_after_and_counted(lookout_factory):
    node = lookout_factory({"wal": {"max_size": "64KB", "segment_size": "16KB"}})
    statuses = []
    for _ in range(40):
        r = httpx.post(f"{node.otlp_http}/v1/traces", content=good_request(name="n" * 4000), headers=PB, timeout=10)
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert "full" in status_pb2.Status.FromString(r.content).message.lower()
            break
    assert 429 in statuses
    assert metric_value(node.metrics(), "lookout_receiver_refused_requests_total", reason="log_full") >= 1

    # gRPC: RESOURCE_EXHAUSTED with RetryInfo details
    with grpc.insecure_channel(node.otlp_grpc) as ch:
        export = ch.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as ei:
            export(good_request(name="n" * 4000), timeout=10)
    err = ei.value
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(err.trailing_metadata() or ())["grpc-status-details-bin"]
    st = status_pb2.Status.FromString(details)
    info = error_details_pb2.RetryInfo()
    assert st.details[0].Unpack(info) and info.retry_delay.seconds >= 1


def test_grpc_malformed_is_invalid_argument(lookout):
    before = log_bytes(lookout)
    with grpc.insecure_channel(lookout.otlp_grpc) as ch:
        export = ch.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as ei:
            export(good_request(trace_id=b"\x01" * 3), timeout=10)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "trace_id" in ei.value.details()
        assert export(good_request(), timeout=10) == b""
    assert log_bytes(lookout) > before


@pytest.mark.parametrize("signal", ["metrics", "logs"])
def test_metrics_and_logs_are_accepted_durably(lookout, signal):
    from tests.conftest import SHARED

    body = (SHARED / "conformance" / "otlp" / "examples" / f"{signal}.json").read_bytes()
    r = httpx.post(f"{lookout.otlp_http}/v1/{signal}", content=body, headers=JS, timeout=10)
    assert r.status_code == 200
    assert log_bytes_signal(lookout, signal) > 0


def log_bytes_signal(node, signal: str) -> float:
    return metric_value(node.metrics(), "lookout_log_bytes", signal=signal)
