"""validate_request: item counts, and precise errors for what the decoders cannot accept."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lookout.otlp import OtlpDecodeError, decode_traces, validate_request


def _traces(n_resources: int = 2, n_scopes: int = 2, n_spans: int = 3) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for r in range(n_resources):
        rs = request.resource_spans.add()
        for s in range(n_scopes):
            ss = rs.scope_spans.add()
            for k in range(n_spans):
                ss.spans.add(
                    trace_id=bytes([r, s, k]) * 5 + b"\x01",
                    span_id=bytes([k]) * 8,
                    start_time_unix_nano=10,
                    end_time_unix_nano=20,
                    kind=k % 6,
                )
    return request


def test_trace_count() -> None:
    assert validate_request("traces", _traces().SerializeToString()) == 12
    assert validate_request("traces", b"") == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda sp: setattr(sp, "trace_id", bytes(15)),
            r"^resource_spans\[1\]\.scope_spans\[0\]\.spans\[2\]\.trace_id: expected 16 bytes, got 15$",
        ),
        (lambda sp: setattr(sp, "trace_id", b""), r"spans\[2\]\.trace_id: expected 16 bytes, got 0$"),
        (lambda sp: setattr(sp, "span_id", bytes(9)), r"spans\[2\]\.span_id: expected 8 bytes, got 9$"),
        (lambda sp: setattr(sp, "span_id", b""), r"spans\[2\]\.span_id: expected 8 bytes, got 0$"),
        (
            lambda sp: sp.links.add(trace_id=bytes(16), span_id=bytes(7)),
            r"spans\[2\]\.links\[0\]\.span_id: expected 8 bytes, got 7$",
        ),
        (
            lambda sp: sp.links.add(trace_id=b"", span_id=bytes(8)),
            r"spans\[2\]\.links\[0\]\.trace_id: expected 16 bytes, got 0$",
        ),
        (lambda sp: setattr(sp, "kind", 200), r"spans\[2\]\.kind: 200 is out of range"),
        (lambda sp: setattr(sp, "kind", -1), r"spans\[2\]\.kind: -1 is out of range"),
        (lambda sp: setattr(sp.status, "code", 1000), r"spans\[2\]\.status\.code: 1000 is out of range"),
        (
            lambda sp: setattr(sp, "end_time_unix_nano", 2**63),
            r"spans\[2\]\.end_time_unix_nano: .* out of range",
        ),
        (
            lambda sp: sp.events.add(time_unix_nano=2**64 - 1),
            r"spans\[2\]\.events\[0\]\.time_unix_nano: .* out of range",
        ),
    ],
)
def test_trace_errors(mutate, message: str) -> None:
    request = _traces()
    mutate(request.resource_spans[1].scope_spans[0].spans[2])
    with pytest.raises(OtlpDecodeError, match=message):
        validate_request("traces", request.SerializeToString())


def test_valid_links_and_events_pass() -> None:
    request = _traces()
    span = request.resource_spans[0].scope_spans[1].spans[0]
    span.links.add(trace_id=bytes(16), span_id=bytes(8))
    span.events.add(time_unix_nano=5, name="e")
    span.status.code = 2
    body = request.SerializeToString()
    assert validate_request("traces", body) == 12
    assert decode_traces([body]).num_rows == 12  # what validation accepts, the decoder accepts


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_truncated_protobuf(signal: str) -> None:
    body = _traces().SerializeToString()[:-5]
    with pytest.raises(OtlpDecodeError, match=r"truncated or invalid protobuf Export\w+ServiceRequest"):
        validate_request(signal, body)


def test_garbage_protobuf() -> None:
    with pytest.raises(OtlpDecodeError, match="truncated or invalid protobuf ExportTraceServiceRequest"):
        validate_request("traces", b"\xff\xff\xff\xff")


def test_unknown_signal() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        validate_request("profiles", b"")


def _logs() -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    sl = request.resource_logs.add().scope_logs.add()
    sl.log_records.add(body={"string_value": "no ids"})
    sl.log_records.add(trace_id=bytes(16), span_id=bytes(8))
    sl.log_records.add(trace_id=bytes(16))
    return request


def test_logs() -> None:
    assert validate_request("logs", _logs().SerializeToString()) == 3
    bad = _logs()
    bad.resource_logs[0].scope_logs[0].log_records[2].span_id = bytes(3)
    with pytest.raises(
        OtlpDecodeError,
        match=r"^resource_logs\[0\]\.scope_logs\[0\]\.log_records\[2\]\.span_id: expected 8 bytes, got 3$",
    ):
        validate_request("logs", bad.SerializeToString())
    bad = _logs()
    bad.resource_logs[0].scope_logs[0].log_records[0].trace_id = bytes(8)
    with pytest.raises(OtlpDecodeError, match=r"log_records\[0\]\.trace_id: expected 16 bytes, got 8"):
        validate_request("logs", bad.SerializeToString())


def test_metric_point_count() -> None:
    request = ExportMetricsServiceRequest()
    sm = request.resource_metrics.add().scope_metrics.add()
    sm.metrics.add(name="g").gauge.data_points.add(as_double=1)
    s = sm.metrics.add(name="s").sum
    s.data_points.add(as_int=1)
    s.data_points.add(as_int=2)
    sm.metrics.add(name="h").histogram.data_points.add(count=1)
    sm.metrics.add(name="e").exponential_histogram.data_points.add(count=1)
    sm.metrics.add(name="q").summary.data_points.add(count=1)
    sm.metrics.add(name="empty")
    sm2 = request.resource_metrics.add().scope_metrics.add()
    sm2.metrics.add(name="g2").gauge.data_points.add(as_double=1)
    assert validate_request("metrics", request.SerializeToString()) == 7
