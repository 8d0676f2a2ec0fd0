"""OTTL over the flat span table: SpanTableContext / SpanEventTableContext on tables decoded from
real ExportTraceServiceRequest protobufs, plus the shared KV_LIST attribute helper."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from lookout.otlp import decode_traces
from lookout.pipeline.ottl import OttlError, compile_condition
from lookout.pipeline.span_table import (
    SpanEventTableContext,
    SpanTableContext,
    attribute_kinds_from_kvlist,
    attribute_values_from_kvlist,
)
from lookout.traces.schema import KV_LIST


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, bytes):
        return KeyValue(key=key, value=AnyValue(bytes_value=value))
    if isinstance(value, list):
        return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v)
                                                                               for v in value])))
    if isinstance(value, dict):
        return KeyValue(key=key, value=AnyValue(kvlist_value=KeyValueList(values=[_kv(k, v)
                                                                                  for k, v in value.items()])))
    if value is None:
        return KeyValue(key=key, value=AnyValue())
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


TRACE = bytes(range(16))


def _request() -> bytes:
    """Two resources; spans modelled on the Collector's tail-sampling OTTL test data."""
    root = Span(
        trace_id=TRACE, span_id=b"\x00" * 7 + b"\x01", name="GET /users", kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_000, end_time_unix_nano=251_000, trace_state="ot=p:8, vendor=abc ",
        status=Status(code=Status.STATUS_CODE_OK), flags=1,
        attributes=[_kv("test_attr_key_1", "test_attr_val_1"), _kv("http.status_code", 200),
                    _kv("ratio", 0.25), _kv("sampled", True), _kv("blob", b"\x01\x02"),
                    _kv("tags", ["a", "b"]), _kv("nested", {"x": 1}), _kv("empty", None)],
        events=[
            Span.Event(name="test_span_event_name", time_unix_nano=5,
                       attributes=[_kv("test_event_attr_key_1", "test_event_attr_val_1")]),
            Span.Event(name="exception", time_unix_nano=6,
                       attributes=[_kv("exception.type", "ValueError"), _kv("tags", ["x"]),
                                   _kv("exception.type", "shadowed"), _kv("n", 3)]),
        ],
    )
    child = Span(
        trace_id=TRACE, span_id=b"\x00" * 7 + b"\x02", parent_span_id=b"\x00" * 7 + b"\x01", name="SELECT",
        kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=2_000, end_time_unix_nano=3_000,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
        attributes=[_kv("test_attr_key_1", "other"), _kv("http.status_code", "200"), _kv("ratio", 2)],
    )
    other = Span(
        trace_id=bytes(16 * [0xAB]), span_id=b"\xff" * 8, name="consume", kind=Span.SPAN_KIND_CONSUMER,
        start_time_unix_nano=5, end_time_unix_nano=10,
        events=[Span.Event(name="test_span_event_name", attributes=[_kv("test_event_attr_key_2", "v")])],
    )
    req = ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(
            resource=Resource(attributes=[_kv("service.name", "api"), _kv("k8s.pod.replicas", 3)]),
            scope_spans=[ScopeSpans(scope=InstrumentationScope(name="io.opentelemetry.http", version="1.2",
                                                               attributes=[_kv("lib", "x")]),
                                    spans=[root, child])],
        ),
        ResourceSpans(
            resource=Resource(attributes=[_kv("service.name", "worker")]),
            scope_spans=[ScopeSpans(scope=InstrumentationScope(name="kafka"), spans=[other])],
        ),
    ])
    return req.SerializeToString()


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return decode_traces([_request()])


def _span(table: pa.Table, text: str) -> list[bool]:
    mask = compile_condition(text, "span").evaluate(SpanTableContext(table))
    assert mask.dtype == np.bool_
    return mask.tolist()


def _event(table: pa.Table, text: str) -> list[bool]:
    return compile_condition(text, "spanevent").evaluate(SpanEventTableContext(table)).tolist()


# The Collector tail-sampling processor's OTTL fixture conditions.
def test_tail_sampling_fixture_conditions(table: pa.Table) -> None:
    assert _span(table, 'attributes["test_attr_key_1"] == "test_attr_val_1"') == [True, False, False]
    assert _span(table, 'attributes["test_attr_key_2"] != "test_attr_val_1"') == [True, True, True]
    assert _event(table, 'name != "test_span_event_name"') == [False, True, False]
    assert _event(table, 'attributes["test_event_attr_key_2"] != "test_event_attr_val_1"') == [True, True, True]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name == "SELECT"', [False, True, False]),
        ('span.name == "SELECT"', [False, True, False]),
        ("kind == SPAN_KIND_SERVER", [True, False, False]),
        ("kind >= SPAN_KIND_CLIENT", [False, True, True]),
        ('kind.string == "Consumer"', [False, False, True]),
        ('kind.deprecated_string == "SPAN_KIND_CLIENT"', [False, True, False]),
        ("status.code == STATUS_CODE_ERROR", [False, True, False]),
        ('status.message == "boom"', [False, True, False]),
        ("status.code != STATUS_CODE_UNSET", [True, True, False]),
        ("flags == 1", [True, False, False]),
        ("end_time_unix_nano - start_time_unix_nano > 100000", [True, False, False]),
        ("end_time_unix_nano == 3000", [False, True, False]),
        ("start_time_unix_nano < 2000", [True, False, True]),
        ('attributes["http.status_code"] == 200', [True, False, False]),
        ('attributes["http.status_code"] == "200"', [False, True, False]),
        ('Int(attributes["http.status_code"]) == 200', [True, True, False]),
        ('IsMatch(attributes["http.status_code"], "^2")', [True, True, False]),
        ('attributes["ratio"] < 1', [True, False, False]),
        ('attributes["ratio"] >= 0.25', [True, True, False]),
        ('attributes["sampled"] == true', [True, False, False]),
        ('attributes["blob"] == 0x0102', [True, False, False]),
        ('String(attributes["blob"]) == "0102"', [True, False, False]),
        ('IsList(attributes["tags"])', [True, False, False]),
        ('IsMap(attributes["nested"])', [True, False, False]),
        ('IsMap(attributes["tags"]) or IsList(attributes["nested"])', [False, False, False]),
        ('attributes["tags"] != nil', [True, False, False]),
        ('attributes["empty"] == nil', [True, True, True]),
        ("IsMap(attributes)", [True, True, True]),
        ('attributes["missing"] == nil', [True, True, True]),
        ('resource.attributes["service.name"] == "api"', [True, True, False]),
        ('resource.attributes["k8s.pod.replicas"] > 2', [True, True, False]),
        ('instrumentation_scope.name == "kafka"', [False, False, True]),
        ('scope.version == "1.2"', [True, True, False]),
        ('instrumentation_scope.attributes["lib"] == "x"', [True, True, False]),
        ("IsRootSpan()", [True, False, True]),
        ('parent_span_id.string == ""', [True, False, True]),
        ('span_id.string == "0000000000000002"', [False, True, False]),
        ('trace_id.string == "000102030405060708090a0b0c0d0e0f"', [True, True, False]),
        ("trace_id == TraceID(0x000102030405060708090a0b0c0d0e0f)", [True, True, False]),
        ("span_id == SpanID(0xffffffffffffffff)", [False, False, True]),
        ("parent_span_id == 0x0000000000000001", [False, True, False]),
        ('trace_state["ot"] == "p:8"', [True, False, False]),
        ('trace_state["vendor"] == "abc"', [True, False, False]),
        ('trace_state["missing"] == nil', [True, True, True]),
        ("dropped_attributes_count == 0 and dropped_events_count == 0", [True, True, True]),
        ('HasPrefix(name, "GET") or HasSuffix(name, "ume")', [True, False, True]),
        ('Len(name) == 6 and ToLowerCase(name) == "select"', [False, True, False]),
    ],
)
def test_span_paths(table: pa.Table, text: str, expected: list[bool]) -> None:
    assert _span(table, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name == "exception"', [False, True, False]),
        ("time_unix_nano == 6", [False, True, False]),
        ("event_index == 1", [False, True, False]),
        ('attributes["exception.type"] == "ValueError"', [False, True, False]),  # first of a repeated key
        ('attributes["n"] == 3 and IsInt(attributes["n"])', [False, True, False]),
        ('IsList(attributes["tags"])', [False, True, False]),
        ('attributes["test_event_attr_key_2"] == "v"', [False, False, True]),
        ('span.name == "GET /users"', [True, True, False]),
        ("span.kind == SPAN_KIND_CONSUMER", [False, False, True]),
        ('span.attributes["test_attr_key_1"] == "test_attr_val_1"', [True, True, False]),
        ('resource.attributes["service.name"] == "worker"', [False, False, True]),
        ('instrumentation_scope.name == "io.opentelemetry.http"', [True, True, False]),
        ('span.trace_id.string == "abababababababababababababababab"', [False, False, True]),
        ('spanevent.name == "exception" and span.status.code == STATUS_CODE_OK', [False, True, False]),
    ],
)
def test_spanevent_paths(table: pa.Table, text: str, expected: list[bool]) -> None:
    assert _event(table, text) == expected


def test_spanevent_context_on_spans_without_events(table: pa.Table) -> None:
    ctx = SpanEventTableContext(table.slice(1, 1))
    assert len(ctx) == 0
    assert compile_condition('name == "x"', "spanevent").evaluate(ctx).tolist() == []
    sliced = SpanEventTableContext(table.slice(1, 2))
    assert compile_condition('event_index == 0 and span.name == "consume"', "spanevent").evaluate(sliced).tolist() == [
        True]


def test_static_validation_for_span_kinds() -> None:
    with pytest.raises(OttlError, match="not valid in the span context"):
        compile_condition('body == "x"', "span")
    with pytest.raises(OttlError, match="not valid in the spanevent context"):
        compile_condition("kind == 1", "spanevent")
    with pytest.raises(OttlError, match="IsRootSpan\\(\\) is not available in the spanevent context"):
        compile_condition("IsRootSpan()", "spanevent")


def test_nested_keys_are_a_path_error_with_position(table: pa.Table) -> None:
    with pytest.raises(OttlError, match="condition 1:1: .*nested map keys"):
        _span(table, 'attributes["nested"]["x"] == 1')


def test_attribute_values_from_kvlist_generic_struct() -> None:
    # Another context's value struct: extra and missing fields, nulls, repeated keys, empty lists.
    value = pa.struct([("string_value", pa.string()), ("int_value", pa.int64()), ("double_value", pa.float64()),
                       ("bool_value", pa.bool_()), ("bytes_value", pa.binary()), ("extra", pa.int32())])
    typ = pa.list_(pa.struct([("key", pa.string()), ("value", value)]))
    rows = [
        [{"key": "k", "value": {"int_value": 5}}, {"key": "k", "value": {"string_value": "later"}}],
        [],
        None,
        [{"key": "x", "value": {"string_value": "no"}}, {"key": "k", "value": {"bytes_value": b"\x01"}}],
        [{"key": "k", "value": {}}],
        [{"key": "k", "value": {"extra": 1}}],
        [{"key": "k", "value": {"double_value": 1.5}}, {"key": "k", "value": {"bool_value": True}}],
    ]
    arr = pa.array(rows, typ)
    v = attribute_values_from_kvlist(arr, "k")
    assert v.n == 7
    assert v.int.to_pylist() == [5, None, None, None, None, None, None]
    assert v.str.to_pylist() == [None] * 7
    assert v.dbl.to_pylist() == [None] * 6 + [1.5]
    assert v.bool.to_pylist() == [None] * 7
    assert v.present.tolist() == [True, False, False, True, False, True, True]
    # sliced and chunked input
    sliced = attribute_values_from_kvlist(arr.slice(3, 4), "k")
    assert sliced.present.tolist() == [True, False, True, True]
    chunked = attribute_values_from_kvlist(pa.chunked_array([arr.slice(0, 2), arr.slice(2)]), "k")
    assert chunked.int.to_pylist() == v.int.to_pylist()
    kinds = attribute_kinds_from_kvlist(arr, "k")
    assert kinds.bytes.to_pylist() == [None, None, None, b"\x01", None, None, None]


def test_attribute_values_from_kvlist_minimal_struct() -> None:
    value = pa.struct([("string_value", pa.string()), ("int_value", pa.int64()), ("double_value", pa.float64()),
                       ("bool_value", pa.bool_())])
    arr = pa.array([[{"key": "a", "value": {"string_value": "s"}}], [{"key": "b", "value": {"int_value": 1}}]],
                   pa.list_(pa.struct([("key", pa.string()), ("value", value)])))
    v = attribute_values_from_kvlist(arr, "a")
    assert v.str.to_pylist() == ["s", None] and v.present.tolist() == [True, False]
    empty = attribute_values_from_kvlist(pa.array([], KV_LIST), "a")
    assert empty.n == 0 and len(empty.str) == 0


def test_large_batch_is_vectorized() -> None:
    """100k spans in well under a second: no per-row Python anywhere on the path."""
    spans = [
        Span(trace_id=i.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name=f"op{i % 10}",
             kind=i % 6, start_time_unix_nano=i, end_time_unix_nano=i + (i % 1000) * 1000,
             attributes=[_kv("http.route", f"/r/{i % 50}"), _kv("code", 200 + i % 5)])
        for i in range(100_000)
    ]
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[_kv("service.name", "svc")]), scope_spans=[ScopeSpans(spans=spans)])])
    table = decode_traces([req.SerializeToString()])
    cond = compile_condition(
        'resource.attributes["service.name"] == "svc" and (IsMatch(attributes["http.route"], "^/r/1") '
        'or attributes["code"] >= 203) and end_time_unix_nano - start_time_unix_nano > 500000 '
        'and not IsRootSpan() == false and kind != SPAN_KIND_INTERNAL', "span")
    started = time.perf_counter()
    mask = cond.evaluate(SpanTableContext(table))
    elapsed = time.perf_counter() - started
    i = np.arange(100_000)
    route_1 = np.isin(i % 50, [1] + list(range(10, 20)))
    expected = (route_1 | (200 + i % 5 >= 203)) & ((i % 1000) * 1000 > 500_000) & (i % 6 != 1)
    assert (mask == expected).all()
    assert elapsed < 1.0, elapsed
