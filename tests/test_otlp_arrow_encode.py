"""ptars-shaped Arrow → protobuf bytes (lookout.otlp.arrow_encode) against upb.

Every case decodes upb-serialized bytes with ptars and re-encodes them; the result must parse to
an equal message and, since the input is upb's canonical serialization and the encoder follows
upb's field order and default-skipping, be byte-identical to it.
"""

from __future__ import annotations

import random
from functools import cache

import ptars
import pyarrow as pa
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as mpb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from lookout.otlp.arrow_encode import encode_messages, encode_record_batch, encode_request


@cache
def _handler(descriptor):
    return ptars.HandlerPool([descriptor.file]).get_for_message(descriptor)


def _roundtrip(msg: Message) -> bytes:
    """Encode ``msg`` via ptars + encode_request; assert parse and byte equality."""
    descriptor = msg.DESCRIPTOR
    data = msg.SerializeToString()
    batch = _handler(descriptor).list_to_record_batch([data])
    out = encode_request(batch.column(0), descriptor)
    assert type(msg).FromString(out) == msg
    assert out == data
    return out


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _nested_attrs() -> list[KeyValue]:
    """Attributes covering every AnyValue case, including the recursive ones ptars cuts."""
    inner = KeyValueList(values=[_kv("a", AnyValue(int_value=1)), _kv("b", AnyValue())])
    return [
        _kv("s", AnyValue(string_value="héllo ✓")),
        _kv("empty_s", AnyValue(string_value="")),
        _kv("i", AnyValue(int_value=-(2**63))),
        _kv("zero", AnyValue(int_value=0)),
        _kv("d", AnyValue(double_value=-0.0)),
        _kv("b", AnyValue(bool_value=False)),
        _kv("bytes", AnyValue(bytes_value=b"\x00\xff")),
        _kv("empty_bytes", AnyValue(bytes_value=b"")),
        _kv("unset", AnyValue()),
        _kv("arr", AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="x")] * 3))),
        _kv("empty_arr", AnyValue(array_value=ArrayValue())),
        _kv("kvl", AnyValue(kvlist_value=inner)),
        _kv(
            "deep",
            AnyValue(array_value=ArrayValue(values=[AnyValue(kvlist_value=inner), AnyValue(array_value=ArrayValue())])),
        ),
        _kv("", AnyValue(string_value="empty key")),
    ]


# ----------------------------------------------------------------------------------------------
# The bug this module exists for
# ----------------------------------------------------------------------------------------------


def test_ptars_own_encoder_drops_recursive_fields_and_ours_does_not():
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                name="a",
                                attributes=[
                                    _kv(
                                        "k",
                                        AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="x")])),
                                    )
                                ],
                            )
                        ]
                    )
                ]
            )
        ]
    )
    handler = _handler(ExportTraceServiceRequest.DESCRIPTOR)
    batch = handler.list_to_record_batch([req.SerializeToString()])
    theirs = ExportTraceServiceRequest.FromString(handler.record_batch_to_array(batch)[0].as_py())
    assert theirs != req  # ptars writes array_value {} — if this starts passing, ptars fixed it
    _roundtrip(req)


# ----------------------------------------------------------------------------------------------
# Traces, logs, metrics
# ----------------------------------------------------------------------------------------------


def test_empty_requests():
    for cls in (ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest):
        assert _roundtrip(cls()) == b""


def test_traces_full():
    span = Span(
        trace_id=bytes(range(16)),
        span_id=b"\x01" * 8,
        parent_span_id=b"",
        trace_state="k=v",
        name="GET /ü",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=2**64 - 1,
        end_time_unix_nano=1,
        attributes=_nested_attrs(),
        dropped_attributes_count=3,
        events=[
            Span.Event(time_unix_nano=5, name="ev", attributes=_nested_attrs()[:4]),
            Span.Event(),
        ],
        dropped_events_count=1,
        links=[
            Span.Link(trace_id=b"\x02" * 16, span_id=b"\x03" * 8, flags=0x301, attributes=_nested_attrs()[9:]),
            Span.Link(),
        ],
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
        flags=0x100,
    )
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=_nested_attrs(), dropped_attributes_count=2),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name="lib", version="1", attributes=_nested_attrs()),
                        spans=[span, Span(name="second", status=Status())],
                        schema_url="https://s",
                    ),
                    ScopeSpans(spans=[Span()]),  # an all-default span: written as tag + len 0
                    ScopeSpans(),
                ],
                schema_url="https://r",
            ),
            ResourceSpans(resource=Resource()),  # present-but-empty resource is kept
            ResourceSpans(),
        ]
    )
    _roundtrip(req)


def test_traces_many_resources_and_scopes():
    rng = random.Random(7)
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[_kv("service.name", AnyValue(string_value=f"s{r}"))]),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name=f"scope{s}"),
                        spans=[
                            Span(name=f"op{i}", span_id=rng.randbytes(8), kind=rng.randrange(6))
                            for i in range(rng.randrange(4))
                        ],
                    )
                    for s in range(rng.randrange(1, 4))
                ],
            )
            for r in range(10)
        ]
    )
    _roundtrip(req)


def test_logs():
    bodies = [
        AnyValue(string_value="hello"),
        AnyValue(int_value=42),
        AnyValue(kvlist_value=KeyValueList(values=_nested_attrs())),
        AnyValue(array_value=ArrayValue(values=[AnyValue(bytes_value=b"x"), AnyValue()])),
        AnyValue(),
    ]
    records = [
        LogRecord(
            time_unix_nano=1_700_000_000_000_000_000 + i,
            observed_time_unix_nano=1_700_000_000_000_000_001 + i,
            severity_number=i % 25,
            severity_text="WARN" if i % 2 else "",
            body=body,
            attributes=_nested_attrs()[i:],
            dropped_attributes_count=i,
            flags=1,
            trace_id=bytes([i]) * 16,
            span_id=bytes([i + 1]) * 8,
            event_name="ev" if i == 1 else "",
        )
        for i, body in enumerate(bodies)
    ]
    req = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=_nested_attrs()[:2]),
                scope_logs=[ScopeLogs(scope=InstrumentationScope(name="l"), log_records=records)],
            ),
            ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord()])]),
        ]
    )
    _roundtrip(req)


def _exemplars() -> list[mpb.Exemplar]:
    return [
        mpb.Exemplar(
            time_unix_nano=9,
            as_double=1.5,
            span_id=b"\x01" * 8,
            trace_id=b"\x02" * 16,
            filtered_attributes=_nested_attrs()[:3],
        ),
        mpb.Exemplar(as_int=0),  # oneof member set to its default is still written
        mpb.Exemplar(),
    ]


def test_metrics():
    attrs = _nested_attrs()[:5]
    metrics = [
        mpb.Metric(
            name="g_int",
            unit="1",
            gauge=mpb.Gauge(
                data_points=[
                    mpb.NumberDataPoint(time_unix_nano=1, as_int=-5, attributes=attrs),
                    mpb.NumberDataPoint(time_unix_nano=2, as_int=0),
                ]
            ),
        ),
        mpb.Metric(
            name="g_dbl",
            description="d",
            gauge=mpb.Gauge(
                data_points=[
                    mpb.NumberDataPoint(
                        start_time_unix_nano=1, time_unix_nano=2, as_double=0.0, exemplars=_exemplars(), flags=1
                    ),
                    mpb.NumberDataPoint(as_double=float("inf")),
                    mpb.NumberDataPoint(),  # value oneof unset
                ]
            ),
        ),
        mpb.Metric(
            name="sum",
            sum=mpb.Sum(
                aggregation_temporality=mpb.AGGREGATION_TEMPORALITY_CUMULATIVE,
                is_monotonic=True,
                data_points=[mpb.NumberDataPoint(as_int=2**63 - 1)],
            ),
        ),
        mpb.Metric(name="sum_empty", sum=mpb.Sum()),
        mpb.Metric(
            name="hist",
            histogram=mpb.Histogram(
                aggregation_temporality=mpb.AGGREGATION_TEMPORALITY_DELTA,
                data_points=[
                    mpb.HistogramDataPoint(
                        count=6,
                        sum=0.0,
                        min=-1.0,
                        max=2.5,
                        bucket_counts=[1, 0, 2**64 - 1],
                        explicit_bounds=[0.0, 1.5],
                        exemplars=_exemplars(),
                        attributes=attrs,
                    ),
                    mpb.HistogramDataPoint(count=1, bucket_counts=[1]),  # no sum/min/max
                    mpb.HistogramDataPoint(),
                ],
            ),
        ),
        mpb.Metric(
            name="exp",
            exponential_histogram=mpb.ExponentialHistogram(
                aggregation_temporality=mpb.AGGREGATION_TEMPORALITY_CUMULATIVE,
                data_points=[
                    mpb.ExponentialHistogramDataPoint(
                        count=10,
                        sum=3.0,
                        scale=-3,
                        zero_count=2,
                        zero_threshold=1e-9,
                        min=0.0,
                        max=9.0,
                        positive=mpb.ExponentialHistogramDataPoint.Buckets(offset=-2, bucket_counts=[1, 2, 3]),
                        negative=mpb.ExponentialHistogramDataPoint.Buckets(),
                        exemplars=_exemplars()[:1],
                    ),
                    mpb.ExponentialHistogramDataPoint(scale=20),
                ],
            ),
        ),
        mpb.Metric(
            name="summary",
            summary=mpb.Summary(
                data_points=[
                    mpb.SummaryDataPoint(
                        count=3,
                        sum=6.0,
                        quantile_values=[
                            mpb.SummaryDataPoint.ValueAtQuantile(quantile=0.0, value=1.0),
                            mpb.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=0.0),
                        ],
                    ),
                    mpb.SummaryDataPoint(),
                ]
            ),
        ),
        mpb.Metric(name="no_data", metadata=_nested_attrs()[-4:]),
    ]
    req = ExportMetricsServiceRequest(
        resource_metrics=[
            mpb.ResourceMetrics(
                resource=Resource(attributes=attrs),
                scope_metrics=[
                    mpb.ScopeMetrics(scope=InstrumentationScope(name="m"), metrics=metrics),
                    mpb.ScopeMetrics(metrics=metrics[::-1]),
                ],
            ),
            mpb.ResourceMetrics(),
        ]
    )
    _roundtrip(req)


# ----------------------------------------------------------------------------------------------
# Randomized against upb
# ----------------------------------------------------------------------------------------------


def _rand_str(rng: random.Random) -> str:
    return "".join(rng.choice("ab€\x00 ✓z") for _ in range(rng.choice((0, 0, 1, 3, 20, 200))))


def _rand_any(rng: random.Random, depth: int = 0) -> AnyValue:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return AnyValue(string_value=_rand_str(rng))
    if kind == 1:
        return AnyValue(int_value=rng.choice((0, 1, -1, 2**63 - 1, -(2**63), rng.getrandbits(40))))
    if kind == 2:
        return AnyValue(double_value=rng.choice((0.0, -0.0, 1.5, float("nan"), -1e300)))
    if kind == 3:
        return AnyValue(bool_value=rng.random() < 0.5)
    if kind == 4:
        return AnyValue(bytes_value=rng.randbytes(rng.choice((0, 1, 16, 300))))
    if kind == 5:
        return AnyValue()
    if kind in (6, 7):
        return AnyValue(array_value=ArrayValue(values=[_rand_any(rng, depth + 1) for _ in range(rng.randrange(4))]))
    return AnyValue(kvlist_value=KeyValueList(values=_rand_attrs(rng, depth + 1)))


def _rand_attrs(rng: random.Random, depth: int = 0) -> list[KeyValue]:
    return [_kv(_rand_str(rng), _rand_any(rng, depth)) for _ in range(rng.choice((0, 1, 3, 8)))]


def _rand_u64(rng: random.Random) -> int:
    return rng.choice((0, 1, 127, 128, 2**32, 2**64 - 1, rng.getrandbits(64)))


def _rand_resource(rng: random.Random) -> dict:
    out: dict = {}
    if rng.random() < 0.8:
        out["resource"] = Resource(attributes=_rand_attrs(rng), dropped_attributes_count=rng.choice((0, 0, 5)))
    if rng.random() < 0.3:
        out["schema_url"] = _rand_str(rng)
    return out


def _rand_scope(rng: random.Random) -> dict:
    if rng.random() < 0.3:
        return {}
    return {"scope": InstrumentationScope(name=_rand_str(rng), version=_rand_str(rng), attributes=_rand_attrs(rng))}


def _rand_span(rng: random.Random) -> Span:
    return Span(
        trace_id=rng.randbytes(rng.choice((0, 16))),
        span_id=rng.randbytes(8),
        parent_span_id=rng.randbytes(rng.choice((0, 8))),
        trace_state=_rand_str(rng),
        name=_rand_str(rng),
        kind=rng.randrange(6),
        start_time_unix_nano=_rand_u64(rng),
        end_time_unix_nano=_rand_u64(rng),
        attributes=_rand_attrs(rng),
        dropped_attributes_count=rng.choice((0, 2**32 - 1)),
        events=[
            Span.Event(time_unix_nano=_rand_u64(rng), name=_rand_str(rng), attributes=_rand_attrs(rng))
            for _ in range(rng.randrange(3))
        ],
        links=[
            Span.Link(
                trace_id=rng.randbytes(16),
                span_id=rng.randbytes(8),
                attributes=_rand_attrs(rng),
                flags=rng.choice((0, 256)),
            )
            for _ in range(rng.randrange(2))
        ],
        status=rng.choice((None, Status(), Status(code=2, message=_rand_str(rng)))),
        flags=rng.choice((0, 1, 2**32 - 1)),
    )


def _rand_traces(rng: random.Random) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                **_rand_resource(rng),
                scope_spans=[
                    ScopeSpans(**_rand_scope(rng), spans=[_rand_span(rng) for _ in range(rng.randrange(4))])
                    for _ in range(rng.randrange(3))
                ],
            )
            for _ in range(rng.randrange(3))
        ]
    )


def _rand_logs(rng: random.Random) -> ExportLogsServiceRequest:
    def record() -> LogRecord:
        return LogRecord(
            time_unix_nano=_rand_u64(rng),
            observed_time_unix_nano=_rand_u64(rng),
            severity_number=rng.randrange(25),
            severity_text=_rand_str(rng),
            body=rng.choice((None, _rand_any(rng))),
            attributes=_rand_attrs(rng),
            flags=rng.choice((0, 1)),
            trace_id=rng.randbytes(rng.choice((0, 16))),
            span_id=rng.randbytes(rng.choice((0, 8))),
            event_name=_rand_str(rng),
        )

    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                **_rand_resource(rng),
                scope_logs=[
                    ScopeLogs(**_rand_scope(rng), log_records=[record() for _ in range(rng.randrange(4))])
                    for _ in range(rng.randrange(3))
                ],
            )
            for _ in range(rng.randrange(3))
        ]
    )


def _rand_double(rng: random.Random) -> float:
    return rng.choice((0.0, -0.0, 1.0, 2.5e-300, float("inf"), rng.uniform(-1e9, 1e9)))


def _rand_metric(rng: random.Random) -> mpb.Metric:
    def common() -> dict:
        return {
            "start_time_unix_nano": _rand_u64(rng),
            "time_unix_nano": _rand_u64(rng),
            "attributes": _rand_attrs(rng),
            "flags": rng.choice((0, 1)),
            "exemplars": [
                mpb.Exemplar(time_unix_nano=_rand_u64(rng), **rng.choice(({}, {"as_int": -3}, {"as_double": 0.0})))
                for _ in range(rng.randrange(2))
            ],
        }

    def optional_stats() -> dict:
        return {k: _rand_double(rng) for k in ("sum", "min", "max") if rng.random() < 0.5}

    def number() -> mpb.NumberDataPoint:
        value = rng.choice(({}, {"as_int": rng.choice((0, -1, 2**62))}, {"as_double": _rand_double(rng)}))
        return mpb.NumberDataPoint(**common(), **value)

    points = range(rng.randrange(3))
    kind = rng.randrange(6)
    base = {"name": _rand_str(rng), "description": _rand_str(rng), "unit": _rand_str(rng)}
    if rng.random() < 0.2:
        base["metadata"] = _rand_attrs(rng)
    if kind == 0:
        return mpb.Metric(**base, gauge=mpb.Gauge(data_points=[number() for _ in points]))
    if kind == 1:
        return mpb.Metric(
            **base,
            sum=mpb.Sum(
                data_points=[number() for _ in points],
                aggregation_temporality=rng.randrange(3),
                is_monotonic=rng.random() < 0.5,
            ),
        )
    if kind == 2:
        return mpb.Metric(
            **base,
            histogram=mpb.Histogram(
                aggregation_temporality=rng.randrange(3),
                data_points=[
                    mpb.HistogramDataPoint(
                        **common(),
                        **optional_stats(),
                        count=_rand_u64(rng),
                        bucket_counts=[_rand_u64(rng) for _ in range(rng.randrange(4))],
                        explicit_bounds=[_rand_double(rng) for _ in range(rng.randrange(3))],
                    )
                    for _ in points
                ],
            ),
        )
    if kind == 3:

        def buckets() -> mpb.ExponentialHistogramDataPoint.Buckets:
            return mpb.ExponentialHistogramDataPoint.Buckets(
                offset=rng.choice((0, -5, 7)), bucket_counts=[_rand_u64(rng) for _ in range(rng.randrange(4))]
            )

        return mpb.Metric(
            **base,
            exponential_histogram=mpb.ExponentialHistogram(
                aggregation_temporality=rng.randrange(3),
                data_points=[
                    mpb.ExponentialHistogramDataPoint(
                        **common(),
                        **optional_stats(),
                        count=_rand_u64(rng),
                        scale=rng.choice((0, -10, 20)),
                        zero_count=_rand_u64(rng),
                        zero_threshold=_rand_double(rng),
                        **({"positive": buckets()} if rng.random() < 0.7 else {}),
                        **({"negative": buckets()} if rng.random() < 0.5 else {}),
                    )
                    for _ in points
                ],
            ),
        )
    if kind == 4:
        return mpb.Metric(
            **base,
            summary=mpb.Summary(
                data_points=[
                    mpb.SummaryDataPoint(
                        start_time_unix_nano=_rand_u64(rng),
                        time_unix_nano=_rand_u64(rng),
                        count=_rand_u64(rng),
                        sum=_rand_double(rng),
                        attributes=_rand_attrs(rng),
                        quantile_values=[
                            mpb.SummaryDataPoint.ValueAtQuantile(quantile=_rand_double(rng), value=_rand_double(rng))
                            for _ in range(rng.randrange(3))
                        ],
                    )
                    for _ in points
                ]
            ),
        )
    return mpb.Metric(**base)


def _rand_metrics(rng: random.Random) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            mpb.ResourceMetrics(
                **_rand_resource(rng),
                scope_metrics=[
                    mpb.ScopeMetrics(**_rand_scope(rng), metrics=[_rand_metric(rng) for _ in range(rng.randrange(4))])
                    for _ in range(rng.randrange(3))
                ],
            )
            for _ in range(rng.randrange(3))
        ]
    )


@pytest.mark.parametrize("make", [_rand_traces, _rand_logs, _rand_metrics])
def test_randomized_matches_upb(make):
    """300 random requests per signal, encoded together as one 300-row batch and one by one."""
    rng = random.Random(f"arrow-encode-{make.__name__}")
    msgs = [make(rng) for _ in range(300)]
    descriptor = msgs[0].DESCRIPTOR
    datas = [m.SerializeToString() for m in msgs]
    out = encode_record_batch(_handler(descriptor).list_to_record_batch(datas), descriptor)
    assert out.to_pylist() == datas
    for msg in msgs[:50]:
        _roundtrip(msg)


# ----------------------------------------------------------------------------------------------
# Generic descriptors: every scalar kind, oneofs, optional, packed/unpacked, maps, recursion
# ----------------------------------------------------------------------------------------------

_EVERYTHING = r"""
name: "lookout_test/arrow_encode_everything.proto"
package: "lookout_test.arrow_encode"
syntax: "proto3"
enum_type { name: "Color" value { name: "C0" number: 0 } value { name: "RED" number: 1 }
            value { name: "NEG" number: -3 } }
message_type {
  name: "Sub"
  field { name: "s" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "i" number: 2 label: LABEL_OPTIONAL type: TYPE_INT32 }
}
message_type {
  name: "Everything"
  field { name: "f_double" number: 1 label: LABEL_OPTIONAL type: TYPE_DOUBLE }
  field { name: "f_float" number: 2 label: LABEL_OPTIONAL type: TYPE_FLOAT }
  field { name: "f_int64" number: 3 label: LABEL_OPTIONAL type: TYPE_INT64 }
  field { name: "f_uint64" number: 4 label: LABEL_OPTIONAL type: TYPE_UINT64 }
  field { name: "f_int32" number: 5 label: LABEL_OPTIONAL type: TYPE_INT32 }
  field { name: "f_fixed64" number: 6 label: LABEL_OPTIONAL type: TYPE_FIXED64 }
  field { name: "f_fixed32" number: 7 label: LABEL_OPTIONAL type: TYPE_FIXED32 }
  field { name: "f_bool" number: 8 label: LABEL_OPTIONAL type: TYPE_BOOL }
  field { name: "f_string" number: 9 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "f_sub" number: 11 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".lookout_test.arrow_encode.Sub" }
  field { name: "f_bytes" number: 12 label: LABEL_OPTIONAL type: TYPE_BYTES }
  field { name: "f_uint32" number: 13 label: LABEL_OPTIONAL type: TYPE_UINT32 }
  field { name: "f_enum" number: 14 label: LABEL_OPTIONAL type: TYPE_ENUM
          type_name: ".lookout_test.arrow_encode.Color" }
  field { name: "f_sfixed32" number: 15 label: LABEL_OPTIONAL type: TYPE_SFIXED32 }
  field { name: "f_sfixed64" number: 16 label: LABEL_OPTIONAL type: TYPE_SFIXED64 }
  field { name: "f_sint32" number: 17 label: LABEL_OPTIONAL type: TYPE_SINT32 }
  field { name: "f_sint64" number: 18 label: LABEL_OPTIONAL type: TYPE_SINT64 }
  field { name: "o_int64" number: 20 label: LABEL_OPTIONAL type: TYPE_INT64
          proto3_optional: true oneof_index: 1 }
  field { name: "o_string" number: 21 label: LABEL_OPTIONAL type: TYPE_STRING
          proto3_optional: true oneof_index: 2 }
  field { name: "c_int32" number: 22 label: LABEL_OPTIONAL type: TYPE_INT32 oneof_index: 0 }
  field { name: "c_sub" number: 23 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".lookout_test.arrow_encode.Sub" oneof_index: 0 }
  field { name: "c_bytes" number: 24 label: LABEL_OPTIONAL type: TYPE_BYTES oneof_index: 0 }
  field { name: "r_double" number: 31 label: LABEL_REPEATED type: TYPE_DOUBLE }
  field { name: "r_float" number: 32 label: LABEL_REPEATED type: TYPE_FLOAT }
  field { name: "r_int64" number: 33 label: LABEL_REPEATED type: TYPE_INT64 }
  field { name: "r_uint64" number: 34 label: LABEL_REPEATED type: TYPE_UINT64 }
  field { name: "r_int32" number: 35 label: LABEL_REPEATED type: TYPE_INT32 }
  field { name: "r_fixed64" number: 36 label: LABEL_REPEATED type: TYPE_FIXED64 }
  field { name: "r_fixed32" number: 37 label: LABEL_REPEATED type: TYPE_FIXED32 }
  field { name: "r_bool" number: 38 label: LABEL_REPEATED type: TYPE_BOOL }
  field { name: "r_string" number: 39 label: LABEL_REPEATED type: TYPE_STRING }
  field { name: "r_sub" number: 41 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".lookout_test.arrow_encode.Sub" }
  field { name: "r_bytes" number: 42 label: LABEL_REPEATED type: TYPE_BYTES }
  field { name: "r_uint32" number: 43 label: LABEL_REPEATED type: TYPE_UINT32 }
  field { name: "r_enum" number: 44 label: LABEL_REPEATED type: TYPE_ENUM
          type_name: ".lookout_test.arrow_encode.Color" }
  field { name: "r_sfixed32" number: 45 label: LABEL_REPEATED type: TYPE_SFIXED32 }
  field { name: "r_sfixed64" number: 46 label: LABEL_REPEATED type: TYPE_SFIXED64 }
  field { name: "r_sint32" number: 47 label: LABEL_REPEATED type: TYPE_SINT32 }
  field { name: "r_sint64" number: 48 label: LABEL_REPEATED type: TYPE_SINT64 }
  field { name: "u_int32" number: 50 label: LABEL_REPEATED type: TYPE_INT32
          options { packed: false } }
  field { name: "u_double" number: 51 label: LABEL_REPEATED type: TYPE_DOUBLE
          options { packed: false } }
  field { name: "m_str_int" number: 60 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".lookout_test.arrow_encode.Everything.MStrIntEntry" }
  field { name: "m_int_sub" number: 61 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".lookout_test.arrow_encode.Everything.MIntSubEntry" }
  field { name: "self" number: 70 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".lookout_test.arrow_encode.Everything" }
  field { name: "selves" number: 71 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".lookout_test.arrow_encode.Everything" }
  field { name: "big_number" number: 100000 label: LABEL_OPTIONAL type: TYPE_STRING }
  nested_type { name: "MStrIntEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_INT32 } }
  nested_type { name: "MIntSubEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_INT32 }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".lookout_test.arrow_encode.Sub" } }
  oneof_decl { name: "choice" }
  oneof_decl { name: "_o_int64" }
  oneof_decl { name: "_o_string" }
}
"""


@cache
def _everything() -> tuple[type, type]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(text_format.Parse(_EVERYTHING, descriptor_pb2.FileDescriptorProto()))
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("lookout_test.arrow_encode.Everything")),
        get(pool.FindMessageTypeByName("lookout_test.arrow_encode.Sub")),
    )


def _everything_messages() -> list[Message]:
    everything, sub = _everything()
    return [
        everything(),
        everything(
            f_int32=-5,
            o_int64=0,
            c_int32=0,
            r_int32=[1, -2],
            m_str_int={"a": 1},
            m_int_sub={3: sub(s="x")},
            self=everything(f_string="in", r_sint32=[-1]),
            selves=[everything(f_int32=1), everything()],
            big_number="b",
            f_enum=-3,
        ),
        everything(
            f_double=-0.0,
            f_float=1.5,
            f_int64=-1,
            f_uint64=2**64 - 1,
            f_fixed64=2**64 - 1,
            f_fixed32=7,
            f_bool=True,
            f_string="héllo",
            f_sub=sub(),
            f_bytes=b"\0\1",
            f_uint32=2**32 - 1,
            f_sfixed32=-2,
            f_sfixed64=-3,
            f_sint32=-(2**31),
            f_sint64=-(2**63),
            o_string="",
            c_sub=sub(),
            r_double=[0.0, -1.5, float("inf")],
            r_float=[1, 2],
            r_int64=[-1, 2**63 - 1],
            r_uint64=[0, 2**64 - 1],
            r_fixed64=[1, 2],
            r_fixed32=[3],
            r_bool=[True, False],
            r_string=["", "a"],
            r_sub=[sub(), sub(i=-1)],
            r_bytes=[b"", b"x"],
            r_uint32=[5],
            r_enum=[1, -3, 0],
            r_sfixed32=[-1],
            r_sfixed64=[-5],
            r_sint32=[-1, 1],
            r_sint64=[-(2**63)],
            u_int32=[1, -1, 0],
            u_double=[0.0, 2.0],
        ),
        everything(c_bytes=b""),
        everything(c_int32=-7, m_int_sub={0: sub()}, m_str_int={"": 0}),
    ]


def test_generic_descriptor_every_field_kind():
    everything, _ = _everything()
    msgs = _everything_messages()
    datas = [m.SerializeToString() for m in msgs]
    batch = _handler(everything.DESCRIPTOR).list_to_record_batch(datas)
    out = encode_record_batch(batch, everything.DESCRIPTOR)
    assert [everything.FromString(b) for b in out.to_pylist()] == msgs
    assert out.to_pylist() == datas


def test_encode_messages_sliced_and_null_rows():
    everything, _ = _everything()
    msgs = _everything_messages()
    batch = _handler(everything.DESCRIPTOR).list_to_record_batch([m.SerializeToString() for m in msgs])
    struct = pa.StructArray.from_arrays(batch.columns, fields=list(batch.schema))
    sliced = struct.slice(1, 3)
    assert encode_messages(sliced, everything.DESCRIPTOR).to_pylist() == [m.SerializeToString() for m in msgs[1:4]]
    mask = pa.array([False, True, False, True, False])
    with_nulls = pa.StructArray.from_arrays(struct.flatten(), fields=list(struct.type), mask=mask)
    out = encode_messages(with_nulls, everything.DESCRIPTOR).to_pylist()
    assert out == [b"" if m else msg.SerializeToString() for m, msg in zip(mask.to_pylist(), msgs, strict=True)]


def test_sliced_list_column_encode_request():
    """Column 0 of a multi-payload batch, sliced to one row, encodes that payload alone."""
    rng = random.Random(3)
    msgs = [_rand_traces(rng) for _ in range(5)]
    handler = _handler(ExportTraceServiceRequest.DESCRIPTOR)
    column = handler.list_to_record_batch([m.SerializeToString() for m in msgs]).column(0)
    for i, msg in enumerate(msgs):
        out = encode_request(column.slice(i, 1), ExportTraceServiceRequest.DESCRIPTOR)
        assert out == msg.SerializeToString()
    with pytest.raises(ValueError):
        encode_request(column, ExportTraceServiceRequest.DESCRIPTOR)


def test_unsupported_arrow_type_is_a_clear_error():
    struct = pa.StructArray.from_arrays([pa.array(["x"])], names=["resource_spans"])
    with pytest.raises(TypeError, match="resource_spans"):
        encode_messages(struct, ExportTraceServiceRequest.DESCRIPTOR)
