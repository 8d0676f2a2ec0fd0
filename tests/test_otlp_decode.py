"""The span decoders: vectorized == reference on varied requests; decode→encode round-trips."""

from __future__ import annotations

import random

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

from lookout.otlp import OtlpDecodeError, decode_traces, decode_traces_reference, spans_to_request
from lookout.traces.schema import SPAN_SCHEMA


def _any(rng: random.Random, depth: int = 0) -> AnyValue:
    kind = rng.choice(
        ["str", "int", "dbl", "bool", "bytes", "empty", "long", "arr", "kv"] if depth < 2 else ["str", "int"]
    )
    if kind == "str":
        return AnyValue(string_value=rng.choice(["", "a", "GET /api", "ünïcødé"]))
    if kind == "long":
        return AnyValue(string_value="x" * rng.choice([127, 128, 300, 20000]))
    if kind == "int":
        return AnyValue(int_value=rng.choice([0, -1, 42, 2**63 - 1, -(2**63)]))
    if kind == "dbl":
        return AnyValue(double_value=rng.choice([0.0, -1.5, 3.25, 1e300]))
    if kind == "bool":
        return AnyValue(bool_value=rng.choice([True, False]))
    if kind == "bytes":
        return AnyValue(bytes_value=rng.choice([b"", b"\x00\xff", bytes(200)]))
    if kind == "empty":
        return AnyValue()
    if kind == "arr":
        return AnyValue(
            array_value=ArrayValue(values=[_any(rng, depth + 1) for _ in range(rng.randint(0, 3))])
        )
    return AnyValue(
        kvlist_value=KeyValueList(
            values=[KeyValue(key=f"k{i}", value=_any(rng, depth + 1)) for i in range(rng.randint(0, 3))]
        )
    )


def _attrs(rng: random.Random, n: int, prefix: str = "a") -> list[KeyValue]:
    return [KeyValue(key=f"{prefix}.{i}", value=_any(rng)) for i in range(n)]


def _span(rng: random.Random, trace_id: bytes, parent: bytes) -> Span:
    start = rng.randint(0, 2**62)
    span = Span(
        trace_id=trace_id,
        span_id=rng.randbytes(8),
        parent_span_id=parent,
        trace_state=rng.choice(["", "vendor=1,other=x"]),
        flags=rng.choice([0, 1, 0x301]),
        name=rng.choice(["GET /", "db.query", ""]),
        kind=rng.randint(0, 5),
        start_time_unix_nano=start,
        end_time_unix_nano=start + rng.randint(0, 10**10),
        attributes=_attrs(rng, rng.randint(0, 12)),
        dropped_attributes_count=rng.choice([0, 3]),
        dropped_events_count=rng.choice([0, 1]),
        dropped_links_count=rng.choice([0, 2]),
    )
    if rng.random() < 0.5:
        span.status.CopyFrom(Status(code=rng.randint(0, 2), message=rng.choice(["", "boom"])))
    for _ in range(rng.randint(0, 2)):
        span.events.add(
            time_unix_nano=start + 5,
            name="exception",
            attributes=_attrs(rng, rng.randint(0, 3), "ev"),
            dropped_attributes_count=rng.choice([0, 1]),
        )
    for _ in range(rng.randint(0, 2)):
        span.links.add(
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
            trace_state=rng.choice(["", "k=v"]),
            flags=rng.choice([0, 0x100]),
            attributes=_attrs(rng, rng.randint(0, 3), "ln"),
            dropped_attributes_count=rng.choice([0, 4]),
        )
    return span


def make_request(seed: int, n_resources: int = 4) -> ExportTraceServiceRequest:
    """A varied request: every attribute type, missing resource/scope/service.name, etc."""
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    for r in range(n_resources):
        rs = ResourceSpans(schema_url=rng.choice(["", "https://opentelemetry.io/schemas/1.21.0"]))
        if r % 4 != 3:  # every fourth resource is absent entirely
            attrs = _attrs(rng, rng.randint(0, 4), "res")
            if r % 4 == 0:
                attrs.insert(
                    rng.randint(0, len(attrs)),
                    KeyValue(key="service.name", value=AnyValue(string_value=f"svc-{r}")),
                )
            elif r % 4 == 1:  # a non-string service.name does not count
                attrs.append(KeyValue(key="service.name", value=AnyValue(int_value=7)))
            rs.resource.CopyFrom(Resource(attributes=attrs, dropped_attributes_count=rng.choice([0, 2])))
        for s in range(rng.randint(1, 3)):
            ss = ScopeSpans(schema_url=rng.choice(["", "https://example.com/scope"]))
            if s != 1:  # the second scope is absent
                ss.scope.CopyFrom(
                    InstrumentationScope(
                        name=f"lib{s}",
                        version=rng.choice(["", "1.2.3"]),
                        attributes=_attrs(rng, rng.randint(0, 3), "sc"),
                        dropped_attributes_count=rng.choice([0, 1]),
                    )
                )
            for _ in range(rng.randint(0, 6)):
                trace_id = rng.randbytes(16)
                root = _span(rng, trace_id, b"")
                ss.spans.append(root)
                for _ in range(rng.randint(0, 3)):
                    ss.spans.append(_span(rng, trace_id, root.span_id))
            rs.scope_spans.append(ss)
        request.resource_spans.append(rs)
    return request


def _assert_tables_equal(a: pa.Table, b: pa.Table) -> None:
    assert a.schema == SPAN_SCHEMA and b.schema == SPAN_SCHEMA
    if not a.equals(b):
        for name in SPAN_SCHEMA.names:
            assert a.column(name).to_pylist() == b.column(name).to_pylist(), name
        raise AssertionError("tables differ")


@pytest.mark.parametrize("seed", range(12))
def test_vectorized_equals_reference(seed: int) -> None:
    payload = make_request(seed).SerializeToString()
    table = decode_traces([payload])
    _assert_tables_equal(table, decode_traces_reference([payload]))
    assert table.num_rows == sum(
        len(ss.spans) for rs in make_request(seed).resource_spans for ss in rs.scope_spans
    )


def test_concatenated_payloads_equal_reference_and_keep_order() -> None:
    payloads = [make_request(seed, n_resources=2).SerializeToString() for seed in range(5)]
    table = decode_traces(payloads)
    _assert_tables_equal(table, decode_traces_reference(payloads))
    singles = pa.concat_tables([decode_traces([p]) for p in payloads])
    assert table.equals(singles)


def test_empty_inputs() -> None:
    for payloads in (
        [],
        [b""],
        [ExportTraceServiceRequest(resource_spans=[ResourceSpans()]).SerializeToString()],
    ):
        assert decode_traces(payloads).equals(SPAN_SCHEMA.empty_table())
        assert decode_traces_reference(payloads).equals(SPAN_SCHEMA.empty_table())


def test_field_values() -> None:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="checkout"))
    rs.resource.attributes.add(key="host.cpus", value=AnyValue(int_value=8))
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    span = ss.spans.add(
        trace_id=bytes(range(16)),
        span_id=bytes(range(8)),
        name="GET /",
        kind=2,
        start_time_unix_nano=1_000,
        end_time_unix_nano=3_500,
    )
    span.status.code = 2
    span.attributes.add(key="s", value=AnyValue(string_value="v"))
    span.attributes.add(key="i", value=AnyValue(int_value=-3))
    span.attributes.add(key="d", value=AnyValue(double_value=0.5))
    span.attributes.add(key="b", value=AnyValue(bool_value=True))
    arr = AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="x"), AnyValue(int_value=1)]))
    span.attributes.add(key="arr", value=arr)
    span.attributes.add(key="empty", value=AnyValue())
    row = decode_traces([request.SerializeToString()]).to_pylist()[0]
    assert row["service_name"] == "checkout"
    assert row["duration_nano"] == 2_500
    assert row["kind"] == 2 and row["status_code"] == 2
    assert row["attrs_str"] == [("s", "v")]
    assert row["attrs_int"] == [("i", -3)]
    assert row["attrs_dbl"] == [("d", 0.5)]
    assert row["attrs_bool"] == [("b", True)]
    assert row["attrs_other"] == [("arr", arr.SerializeToString()), ("empty", b"")]
    assert row["res_attrs_int"] == [("host.cpus", 8)]
    assert row["parent_span_id"] == b""


def _bad_request(**span_fields: object) -> bytes:
    request = ExportTraceServiceRequest()
    ss = request.resource_spans.add().scope_spans.add()
    ss.spans.add(trace_id=bytes(16), span_id=bytes(8))
    fields = {"trace_id": bytes(16), "span_id": bytes(8), **span_fields}
    ss.spans.add(**fields)
    return request.SerializeToString()


@pytest.mark.parametrize("decode", [decode_traces, decode_traces_reference])
def test_decode_errors(decode) -> None:
    with pytest.raises(
        OtlpDecodeError,
        match=r"resource_spans\[0\]\.scope_spans\[0\]\.spans\[1\]\.trace_id: "
        r"expected 16 bytes, got 15",
    ):
        decode([_bad_request(trace_id=bytes(15))])
    with pytest.raises(OtlpDecodeError, match=r"spans\[1\]\.span_id: expected 8 bytes, got 0"):
        decode([_bad_request(span_id=b"")])
    with pytest.raises(OtlpDecodeError, match=r"spans\[1\]\.start_time_unix_nano: .* out of int64 range"):
        decode([_bad_request(start_time_unix_nano=2**64 - 1)])
    with pytest.raises(OtlpDecodeError, match=r"spans\[1\]\.kind: 300 is out of range"):
        decode([_bad_request(kind=300)])
    with pytest.raises(OtlpDecodeError, match="invalid protobuf"):
        decode([make_request(1).SerializeToString()[:-3]])


# ---------------------------------------------------------------------------- encode round trip


def _normalised_spans(request: ExportTraceServiceRequest) -> list[tuple[bytes, bytes, bytes, bytes]]:
    """(resource, scope, schema urls, span) bytes per span, attributes sorted by key."""

    def sort_attrs(container) -> None:
        items = sorted(container, key=lambda kv: kv.key)
        copies = [KeyValue().__class__.FromString(kv.SerializeToString()) for kv in items]
        del container[:]
        container.extend(copies)

    out = []
    for rs in request.resource_spans:
        resource = Resource.FromString(rs.resource.SerializeToString())
        sort_attrs(resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                span = Span.FromString(span.SerializeToString())
                sort_attrs(span.attributes)
                if not span.HasField("status") or span.status == Status():
                    span.ClearField("status")
                out.append(
                    (
                        resource.SerializeToString(deterministic=True),
                        ss.scope.SerializeToString(deterministic=True),
                        f"{rs.schema_url}|{ss.schema_url}".encode(),
                        span.SerializeToString(deterministic=True),
                    )
                )
    return out


@pytest.mark.parametrize("seed", range(8))
def test_decode_encode_round_trip(seed: int) -> None:
    original = make_request(seed)
    table = decode_traces([original.SerializeToString()])
    rebuilt = spans_to_request(table)
    # identical resources are merged into one ResourceSpans, which may reorder spans: compare sets
    assert sorted(_normalised_spans(rebuilt)) == sorted(_normalised_spans(original))
    assert len(_normalised_spans(rebuilt)) == table.num_rows
    # and the rebuilt request decodes to the same table (typed maps keep their order)
    keys = [("trace_id", "ascending"), ("span_id", "ascending")]
    assert decode_traces([rebuilt.SerializeToString()]).sort_by(keys).equals(table.sort_by(keys))


def test_encode_groups_resources_and_scopes_in_first_seen_order() -> None:
    request = ExportTraceServiceRequest()
    for service in ("a", "b", "a"):  # the third ResourceSpans repeats the first resource
        rs = request.resource_spans.add()
        rs.resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
        for scope in ("s1", "s2"):
            ss = rs.scope_spans.add()
            ss.scope.name = scope
            ss.spans.add(
                trace_id=bytes(16),
                span_id=f"{service}{scope}{len(request.resource_spans)}".encode()[:8].ljust(8),
            )
    rebuilt = spans_to_request(decode_traces([request.SerializeToString()]))
    shape = [
        (
            rs.resource.attributes[0].value.string_value,
            [(ss.scope.name, len(ss.spans)) for ss in rs.scope_spans],
        )
        for rs in rebuilt.resource_spans
    ]
    assert shape == [("a", [("s1", 2), ("s2", 2)]), ("b", [("s1", 1), ("s2", 1)])]
    # within a scope, spans keep row order
    assert [sp.span_id for sp in rebuilt.resource_spans[0].scope_spans[0].spans] == [b"as11    ", b"as13    "]


def test_encode_empty_table() -> None:
    assert spans_to_request(SPAN_SCHEMA.empty_table()) == ExportTraceServiceRequest()
