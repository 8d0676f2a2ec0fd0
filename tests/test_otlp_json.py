"""OTLP/JSON ⇄ protobuf: conformance examples, hex ids, int64/enum leniency, errors, round trip."""

from __future__ import annotations

import json
import pathlib

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lookout.otlp import OtlpDecodeError, json_to_protobuf, message_to_otlp_json

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "shared" / "conformance" / "otlp" / "examples"
SIGNALS = {
    "trace.json": ("traces", ExportTraceServiceRequest),
    "metrics.json": ("metrics", ExportMetricsServiceRequest),
    "logs.json": ("logs", ExportLogsServiceRequest),
    "events.json": ("logs", ExportLogsServiceRequest),
}


def _example(name: str) -> bytes:
    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"conformance example {path} not available")
    return path.read_bytes()


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_examples_convert_and_round_trip(name: str) -> None:
    signal, cls = SIGNALS[name]
    pb = json_to_protobuf(signal, _example(name))
    msg = cls.FromString(pb)
    assert msg.ByteSize() > 0
    out = message_to_otlp_json(msg)
    # the inverse: JSON → protobuf → JSON → protobuf is a fixed point
    assert json_to_protobuf(signal, json.dumps(out).encode()) == pb
    assert message_to_otlp_json(cls.FromString(json_to_protobuf(signal, json.dumps(out).encode()))) == out


def test_trace_example_values() -> None:
    msg = ExportTraceServiceRequest.FromString(json_to_protobuf("traces", _example("trace.json")))
    span = msg.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")  # hex, not base64
    assert span.span_id == bytes.fromhex("eee19b7ec3c1b174")
    assert span.parent_span_id == bytes.fromhex("eee19b7ec3c1b173")
    assert span.name == "I'm a server span"
    assert span.kind == 2
    assert span.end_time_unix_nano - span.start_time_unix_nano == 1_000_000_000
    out = message_to_otlp_json(msg)
    out_span = out["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert out_span["traceId"] == "5b8efff798038103d269b633813fc60c"
    assert out_span["parentSpanId"] == "eee19b7ec3c1b173"
    assert out_span["startTimeUnixNano"] == "1544712660000000000"
    assert out_span["kind"] == 2


def test_logs_example_values() -> None:
    msg = ExportLogsServiceRequest.FromString(json_to_protobuf("logs", _example("logs.json")))
    record = msg.resource_logs[0].scope_logs[0].log_records[0]
    assert record.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert record.span_id == bytes.fromhex("eee19b7ec3c1b174")
    assert record.body.string_value == "Example log record"
    attrs = {kv.key: kv.value for kv in record.attributes}
    assert attrs["int.attribute"].int_value == 10
    assert attrs["int.attribute"].WhichOneof("value") == "int_value"
    assert [v.string_value for v in attrs["array.attribute"].array_value.values] == ["many", "values"]


def test_metrics_example_values() -> None:
    msg = ExportMetricsServiceRequest.FromString(json_to_protobuf("metrics", _example("metrics.json")))
    names = [m.name for m in msg.resource_metrics[0].scope_metrics[0].metrics]
    assert names == ["my.counter", "my.gauge", "my.histogram", "my.exponential.histogram"]
    hist = msg.resource_metrics[0].scope_metrics[0].metrics[2].histogram.data_points[0]
    assert list(hist.bucket_counts) == [1, 1] and hist.count == 2


SPAN_JSON = {
    "resource_spans": [  # snake_case keys are accepted too
        {
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "span_id": "eee19b7ec3c1b174",
                            "parentSpanId": "",
                            "name": "x",
                            "kind": "SPAN_KIND_CLIENT",  # enum by name
                            "startTimeUnixNano": 1544712660000000000,  # int64 as a number
                            "endTimeUnixNano": "18446744073709551615",  # max fixed64 as a string
                            "status": {"code": "STATUS_CODE_ERROR"},
                            "someFutureField": {"x": 1},  # unknown fields are ignored
                            "links": [{"traceId": "00" * 16, "spanId": "01" * 8}],
                            "attributes": [
                                {"key": "big", "value": {"intValue": "-9223372036854775808"}},
                                {"key": "raw", "value": {"bytesValue": "AAE="}},  # base64 stays base64
                            ],
                        }
                    ]
                }
            ]
        }
    ]
}


def test_lenient_input() -> None:
    msg = ExportTraceServiceRequest.FromString(json_to_protobuf("traces", json.dumps(SPAN_JSON).encode()))
    span = msg.resource_spans[0].scope_spans[0].spans[0]
    assert span.span_id == bytes.fromhex("eee19b7ec3c1b174")
    assert span.parent_span_id == b""
    assert span.kind == 3
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.end_time_unix_nano == 2**64 - 1
    assert span.status.code == 2
    assert span.links[0].trace_id == bytes(16) and span.links[0].span_id == b"\x01" * 8
    assert span.attributes[0].value.int_value == -(2**63)
    assert span.attributes[1].value.bytes_value == b"\x00\x01"
    out = message_to_otlp_json(msg)
    out_span = out["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert out_span["endTimeUnixNano"] == "18446744073709551615"
    assert out_span["links"][0]["spanId"] == "0101010101010101"
    assert out_span["status"] == {"code": 2}
    assert out_span["attributes"][0]["value"] == {"intValue": "-9223372036854775808"}
    assert out_span["attributes"][1]["value"] == {"bytesValue": "AAE="}
    assert "parentSpanId" not in out_span  # defaults omitted


def test_log_and_exemplar_ids_are_hex() -> None:
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "ab" * 16, "spanId": "cd" * 8}]}]}]}
    msg = ExportLogsServiceRequest.FromString(json_to_protobuf("logs", json.dumps(logs).encode()))
    assert msg.resource_logs[0].scope_logs[0].log_records[0].trace_id == b"\xab" * 16
    metrics = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "m",
                                "gauge": {
                                    "dataPoints": [
                                        {
                                            "asDouble": 1,
                                            "exemplars": [{"traceId": "ab" * 16, "spanId": "cd" * 8}],
                                        }
                                    ]
                                },
                            }
                        ]
                    }
                ]
            }
        ]
    }
    pb = json_to_protobuf("metrics", json.dumps(metrics).encode())
    msg = ExportMetricsServiceRequest.FromString(pb)
    exemplar = msg.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].exemplars[0]
    assert exemplar.trace_id == b"\xab" * 16 and exemplar.span_id == b"\xcd" * 8
    out = message_to_otlp_json(msg)
    point = out["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"][0]
    assert point == {"asDouble": 1.0, "exemplars": [{"traceId": "ab" * 16, "spanId": "cd" * 8}]}
    assert json_to_protobuf("metrics", json.dumps(out).encode()) == pb


def _spans_body(**span: object) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "ok"}, span]}]}]}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"resourceSpans": [}', r"invalid JSON at line 1 column 20: "),
        (b"\xff\xfe", r"invalid JSON"),
        (b"[1, 2]", r"expected an object at the top level, got list"),
        (
            _spans_body(spanId="xyz"),
            r"resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[1\]\.spanId: expected 16 hex characters, got 'xyz'",
        ),
        (_spans_body(traceId="zz" * 16), r"spans\[1\]\.traceId: expected 32 hex characters, got 'zzzz"),
        (_spans_body(traceId="ab" * 15), r"spans\[1\]\.traceId: expected 32 hex characters"),
        (_spans_body(parentSpanId="ab ab ab ab ab ab ab"), r"spans\[1\]\.parentSpanId: expected 16 hex"),
        (_spans_body(name=5), r"invalid OTLP/JSON ExportTraceServiceRequest: .*name"),
        (_spans_body(kind=[1]), r"invalid OTLP/JSON ExportTraceServiceRequest: .*kind"),
        (
            _spans_body(startTimeUnixNano="12x"),
            r"invalid OTLP/JSON ExportTraceServiceRequest: .*startTimeUnixNano",
        ),
    ],
)
def test_errors(body: bytes, message: str) -> None:
    with pytest.raises(OtlpDecodeError, match=message):
        json_to_protobuf("traces", body)


def test_unknown_enum_name_is_ignored_like_an_unknown_field() -> None:
    pb = json_to_protobuf("traces", _spans_body(kind="SPAN_KIND_FROM_THE_FUTURE", name="n"))
    assert ExportTraceServiceRequest.FromString(pb).resource_spans[0].scope_spans[0].spans[1].kind == 0


def test_unknown_signal() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        json_to_protobuf("profiles", b"{}")


def test_empty_request() -> None:
    assert json_to_protobuf("traces", b"{}") == b""
    assert message_to_otlp_json(ExportTraceServiceRequest()) == {}
