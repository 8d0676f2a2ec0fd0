"""OTLP logs → LogBatch, following Loki's OTLP ingestion mapping."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from lookout.logs.anyvalue import go_float, normalize_label
from lookout.logs.ingest import LogsIngestOptions
from lookout.logs.model import ENTRY_SCHEMA, stream_id
from lookout.logs.otlp_logs import decode_logs
from lookout.otlp import OtlpDecodeError, json_to_protobuf

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "otlp" / "examples"
TID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SID = bytes.fromhex("eee19b7ec3c1b174")


def kv(key: str, **value) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def request(resource: list[KeyValue], records: list[dict], scope: dict | None = None) -> bytes:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(resource)
    sl = rl.scope_logs.add()
    for k, v in (scope or {}).items():
        if k == "attributes":
            sl.scope.attributes.extend(v)
        else:
            setattr(sl.scope, k, v)
    for r in records:
        lr = sl.log_records.add()
        for k, v in r.items():
            if k == "attributes":
                lr.attributes.extend(v)
            elif k == "body":
                lr.body.CopyFrom(v)
            else:
                setattr(lr, k, v)
    return req.SerializeToString()


def one(data: bytes, **kw) -> tuple[dict, dict]:
    batch = decode_logs(data, **kw)
    assert batch.entries.schema == ENTRY_SCHEMA
    rows = batch.entries.to_pylist()
    assert len(rows) == 1
    return batch.streams[rows[0]["stream_id"]], rows[0]


def test_conformance_example():
    body = json_to_protobuf("logs", (EXAMPLES / "logs.json").read_bytes())
    labels, row = one(body)
    assert labels == {"service_name": "my.service"}
    assert row["line"] == "Example log record"
    md = dict(row["metadata"])
    assert md["int_attribute"] == "10" and md["boolean_attribute"] == "true"
    assert md["double_attribute"] == "637.704"
    assert md["array_attribute"] == '["many","values"]'
    assert md["map_attribute_some_map_key"] == "some value"
    assert md["trace_id"] == "5b8efff798038103d269b633813fc60c" and md["span_id"] == "eee19b7ec3c1b174"
    assert md["severity_text"] == "Information" and md["severity_number"] == "10"
    assert md["scope_name"] == "my.library" and md["scope_version"] == "1.0.0"
    assert md["my_scope_attribute"] == "some scope attribute"
    assert row["ts"] == 1544712660300000000


def test_event_body_kvlist_is_go_json():
    body = json_to_protobuf("logs", (EXAMPLES / "events.json").read_bytes())
    _, row = one(body)
    assert row["line"].startswith('{"referrer":"https://wwww.google.com",')
    assert json.loads(row["line"])["type"] == 0
    assert dict(row["metadata"])["event_name"] == "browser.page_view"


@pytest.mark.parametrize("value, line", [
    (AnyValue(string_value="plain <text>"), "plain <text>"),
    (AnyValue(int_value=-42), "-42"),
    (AnyValue(double_value=1.0), "1"),
    (AnyValue(double_value=1e16), "10000000000000000"),
    (AnyValue(double_value=1e21), "1e+21"),
    (AnyValue(double_value=1e-7), "1e-7"),
    (AnyValue(double_value=0.1), "0.1"),
    (AnyValue(bool_value=True), "true"),
    (AnyValue(bytes_value=b"\x00\xffhi"), "AP9oaQ=="),
    (AnyValue(), ""),
    (AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="a&b"),
                                             AnyValue(double_value=2.5), AnyValue()])),
     '[1,"a\\u0026b",2.5,null]'),
    (AnyValue(kvlist_value=KeyValueList(values=[kv("z", int_value=1), kv("a", bool_value=False),
                                                kv("m", bytes_value=b"x")])),
     '{"a":false,"m":"eA==","z":1}'),
    (AnyValue(kvlist_value=KeyValueList(values=[kv("n", double_value=math.nan)])), ""),
])
def test_every_body_type(value, line):
    _, row = one(request([kv("service.name", string_value="s")], [{"time_unix_nano": 5, "body": value}]))
    assert row["line"] == line


def test_go_float_matches_ecmascript():
    assert [go_float(x) for x in (0.0, -0.0, 123456789.125, 1e20, 2.5e-7, 1e-6)] == [
        "0", "-0", "123456789.125", "100000000000000000000", "2.5e-7", "0.000001"]


def test_label_promotion_and_sanitization():
    res = [kv("service.name", string_value="api"), kv("k8s.namespace.name", string_value="prod"),
           kv("deployment.environment.name", string_value="staging"), kv("host.name", string_value="n1"),
           kv("k8s.pod.uid", string_value="u-1"), kv("service.namespace", string_value="")]
    labels, row = one(request(res, [{"time_unix_nano": 1, "body": AnyValue(string_value="x")}]))
    assert labels == {"service_name": "api", "k8s_namespace_name": "prod", "deployment_environment_name": "staging"}
    md = dict(row["metadata"])
    assert md["host_name"] == "n1" and md["k8s_pod_uid"] == "u-1"
    assert "service_name" not in md and "k8s_namespace_name" not in md
    assert row["stream_id"] == stream_id(labels)


def test_only_configured_attributes_become_labels():
    res = [kv("service.name", string_value="api"), kv("user.id", string_value="u1")]
    opts = LogsIngestOptions(stream_label_attributes=("service.name", "user.id"))
    labels, _ = one(request(res, [{"time_unix_nano": 1}]), options=opts)
    assert labels == {"service_name": "api", "user_id": "u1"}
    labels, row = one(request(res, [{"time_unix_nano": 1}]))
    assert labels == {"service_name": "api"} and dict(row["metadata"])["user_id"] == "u1"


def test_unknown_service_and_discovery():
    labels, _ = one(request([kv("k8s.namespace.name", string_value="ns")], [{"time_unix_nano": 1}]))
    assert labels == {"k8s_namespace_name": "ns", "service_name": "unknown_service"}
    labels, _ = one(request([kv("k8s.container.name", string_value="web")], [{"time_unix_nano": 1}]))
    assert labels == {"k8s_container_name": "web", "service_name": "web"}
    labels, _ = one(request([], [{"time_unix_nano": 1}]))
    assert labels == {"service_name": "unknown_service"}


@pytest.mark.parametrize("name, out", [
    ("http.method", "http_method"), ("9lives", "key_9lives"), ("_private", "key_private"),
    ("__keep", "__keep"), ("a-b/c é", "a_b_c__"), ("ok_name", "ok_name"),
])
def test_normalize_label(name, out):
    assert normalize_label(name) == out


def test_structured_metadata_names_and_order():
    rec = {"time_unix_nano": 10, "observed_time_unix_nano": 11, "severity_number": 17, "severity_text": "ERROR",
           "dropped_attributes_count": 2, "flags": 1, "trace_id": TID, "span_id": SID,
           "attributes": [kv("code.line", int_value=7), kv("1st", string_value="a")]}
    scope = {"name": "lib", "version": "1.2", "dropped_attributes_count": 3,
             "attributes": [kv("scope.attr", string_value="s")]}
    _, row = one(request([kv("service.name", string_value="a"), kv("host.name", string_value="h")], [rec], scope))
    assert row["metadata"] == [
        ("code_line", "7"), ("key_1st", "a"), ("observed_timestamp", "11"), ("severity_number", "17"),
        ("severity_text", "ERROR"), ("dropped_attributes_count", "2"), ("flags", "1"),
        ("trace_id", TID.hex()), ("span_id", SID.hex()), ("host_name", "h"), ("scope_attr", "s"),
        ("scope_name", "lib"), ("scope_version", "1.2"), ("scope_dropped_attributes_count", "3")]


def test_timestamp_fallbacks():
    data = request([kv("service.name", string_value="a")], [
        {"time_unix_nano": 0, "observed_time_unix_nano": 99}, {"time_unix_nano": 0}])
    rows = decode_logs(data, now_ns=12345).entries.to_pylist()
    assert [r["ts"] for r in rows] == [99, 12345]
    assert "observed_timestamp" not in dict(rows[0]["metadata"])


def test_zero_ids_are_left_out_and_bad_ids_named():
    _, row = one(request([], [{"time_unix_nano": 1, "trace_id": bytes(16), "span_id": bytes(8)}]))
    assert "trace_id" not in dict(row["metadata"])
    with pytest.raises(OtlpDecodeError, match=r"resource_logs\[0\]\.scope_logs\[0\]\.log_records\[1\]\.trace_id"):
        decode_logs(request([], [{"time_unix_nano": 1}, {"time_unix_nano": 1, "trace_id": b"abc"}]))
    with pytest.raises(OtlpDecodeError, match="invalid protobuf"):
        decode_logs(b"\xff\xff\xff")
    with pytest.raises(OtlpDecodeError, match="out of int64 range"):
        decode_logs(request([], [{"time_unix_nano": 2**64 - 1}]))


def test_several_resources_and_payloads_keep_order():
    a = request([kv("service.name", string_value="a")], [{"time_unix_nano": i, "body": AnyValue(int_value=i)}
                                                         for i in range(3)])
    b = request([kv("service.name", string_value="b")], [{"time_unix_nano": 7}])
    batch = decode_logs([a, b])
    assert [r["line"] for r in batch.entries.to_pylist()] == ["0", "1", "2", ""]
    assert sorted(lb["service_name"] for lb in batch.streams.values()) == ["a", "b"]


def test_limits_refuse_with_reasons():
    big = "x" * 100
    data = request([kv("service.name", string_value="a")], [
        {"time_unix_nano": 1, "body": AnyValue(string_value=big)}, {"time_unix_nano": 2},
        {"time_unix_nano": 3, "attributes": [kv(f"k{i}", int_value=i) for i in range(5)]}])
    batch = decode_logs(data, LogsIngestOptions(max_line_bytes=50, max_structured_metadata_entries=3))
    assert batch.num_entries == 1
    assert batch.refused == {"line_too_long": 1, "structured_metadata_too_many": 1}
    batch = decode_logs(data, LogsIngestOptions(max_line_bytes=50, truncate_lines=True))
    assert batch.entries.column("line")[0].as_py() == "x" * 50
    many = [kv(n, string_value="v") for n in ("service.name", "k8s.pod.name", "k8s.namespace.name")]
    batch = decode_logs(request(many, [{"time_unix_nano": 1}]), LogsIngestOptions(max_label_names_per_series=2))
    assert batch.num_entries == 0 and batch.refused == {"max_label_names_per_series": 1} and batch.streams == {}


def test_real_sdk_exporter_output():
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.common._internal._log_encoder import encode_logs
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs import export as sdk_export
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    exporter = (getattr(sdk_export, "InMemoryLogRecordExporter", None) or sdk_export.InMemoryLogExporter)()
    provider = LoggerProvider(resource=Resource.create({"service.name": "sdk-svc", "k8s.pod.name": "p-1",
                                                        "host.name": "box"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("my.scope", "0.1")
    logger.emit(body="hello from the SDK", severity_number=SeverityNumber.WARN, severity_text="WARN",
                attributes={"user.id": 42, "ok": True, "ratio": 0.5}, timestamp=1_700_000_000_000_000_000)
    logger.emit(body={"structured": [1, 2]}, severity_number=SeverityNumber.INFO, timestamp=1_700_000_000_000_000_001)
    provider.shutdown()
    data = encode_logs(exporter.get_finished_logs()).SerializeToString()
    batch = decode_logs(data)
    rows = batch.entries.to_pylist()
    assert [r["line"] for r in rows] == ["hello from the SDK", '{"structured":[1,2]}']
    labels = batch.streams[rows[0]["stream_id"]]
    assert labels["service_name"] == "sdk-svc" and labels["k8s_pod_name"] == "p-1"
    assert set(labels) <= {"service_name", "k8s_pod_name", "service_instance_id"}  # the SDK may add an instance id
    md = dict(rows[0]["metadata"])
    assert md["user_id"] == "42" and md["ok"] == "true" and md["ratio"] == "0.5"
    assert md["severity_text"] == "WARN" and md["severity_number"] == "13"
    assert md["scope_name"] == "my.scope" and md["scope_version"] == "0.1" and md["host_name"] == "box"
    assert md["telemetry_sdk_language"] == "python"
    assert rows[0]["ts"] == 1_700_000_000_000_000_000
