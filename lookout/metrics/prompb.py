"""Prometheus remote write 1.0 protobuf messages, built at run time.

No PyPI package ships ``prompb``, and generating ``_pb2`` files would add a build step, so the
messages are declared here as a ``FileDescriptorProto`` with the field numbers of Prometheus'
``prompb/types.proto`` and ``prompb/remote.proto``, added to a private descriptor pool (so they
cannot clash with anybody else's ``prometheus.*`` registration in the default pool).

One deliberate difference: every ``string`` field is declared ``bytes``. On the wire the two are
identical, but a ``string`` field makes the parser fail the whole request with a generic message
on invalid UTF-8, while ``bytes`` lets the decoder validate and say *which* label is broken.
"""

from __future__ import annotations

from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.message import Message

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# MetricMetadata.MetricType numbers, by the Prometheus type names MetricMetadata.type uses.
METRIC_TYPES: dict[str, int] = {
    "unknown": 0,
    "counter": 1,
    "gauge": 2,
    "histogram": 3,
    "gaugehistogram": 4,
    "summary": 5,
    "info": 6,
    "stateset": 7,
}
METRIC_TYPE_NAMES: dict[int, str] = {v: k for k, v in METRIC_TYPES.items()}


def _field(name: str, number: int, ftype: int, label: int = _OPT, type_name: str = "", oneof: int | None = None):
    field = _F(name=name, number=number, type=ftype, label=label)
    if type_name:
        field.type_name = type_name
    if oneof is not None:
        field.oneof_index = oneof
    return field


def _file_proto() -> descriptor_pb2.FileDescriptorProto:
    """``prometheus.WriteRequest`` and what it contains (types.proto + remote.proto, v1)."""
    fdp = descriptor_pb2.FileDescriptorProto(name="lookout/prompb/remote.proto", package="prometheus", syntax="proto3")
    b, d, i64, u64, s32, s64, u32, enum, msg = (
        _F.TYPE_BYTES, _F.TYPE_DOUBLE, _F.TYPE_INT64, _F.TYPE_UINT64, _F.TYPE_SINT32,
        _F.TYPE_SINT64, _F.TYPE_UINT32, _F.TYPE_ENUM, _F.TYPE_MESSAGE,
    )  # fmt: skip

    def message(name: str, *fields: _F, oneofs: tuple[str, ...] = ()) -> descriptor_pb2.DescriptorProto:
        m = fdp.message_type.add(name=name)
        m.field.extend(fields)
        for oneof in oneofs:
            m.oneof_decl.add(name=oneof)
        return m

    meta = message(
        "MetricMetadata",
        _field("type", 1, enum, type_name=".prometheus.MetricMetadata.MetricType"),
        _field("metric_family_name", 2, b),
        _field("help", 4, b),
        _field("unit", 5, b),
    )
    mtype = meta.enum_type.add(name="MetricType")
    for name, number in METRIC_TYPES.items():
        mtype.value.add(name=name.upper(), number=number)
    message("Sample", _field("value", 1, d), _field("timestamp", 2, i64))
    message(
        "Exemplar",
        _field("labels", 1, msg, _REP, ".prometheus.Label"),
        _field("value", 2, d),
        _field("timestamp", 3, i64),
    )
    hist = message(
        "Histogram",
        _field("count_int", 1, u64, oneof=0),
        _field("count_float", 2, d, oneof=0),
        _field("sum", 3, d),
        _field("schema", 4, s32),
        _field("zero_threshold", 5, d),
        _field("zero_count_int", 6, u64, oneof=1),
        _field("zero_count_float", 7, d, oneof=1),
        _field("negative_spans", 8, msg, _REP, ".prometheus.BucketSpan"),
        _field("negative_deltas", 9, s64, _REP),
        _field("negative_counts", 10, d, _REP),
        _field("positive_spans", 11, msg, _REP, ".prometheus.BucketSpan"),
        _field("positive_deltas", 12, s64, _REP),
        _field("positive_counts", 13, d, _REP),
        _field("reset_hint", 14, enum, type_name=".prometheus.Histogram.ResetHint"),
        _field("timestamp", 15, i64),
        _field("custom_values", 16, d, _REP),
        oneofs=("count", "zero_count"),
    )
    hint = hist.enum_type.add(name="ResetHint")
    for number, name in enumerate(("UNKNOWN", "YES", "NO", "GAUGE")):
        hint.value.add(name=name, number=number)
    message("BucketSpan", _field("offset", 1, s32), _field("length", 2, u32))
    message(
        "TimeSeries",
        _field("labels", 1, msg, _REP, ".prometheus.Label"),
        _field("samples", 2, msg, _REP, ".prometheus.Sample"),
        _field("exemplars", 3, msg, _REP, ".prometheus.Exemplar"),
        _field("histograms", 4, msg, _REP, ".prometheus.Histogram"),
    )
    message("Label", _field("name", 1, b), _field("value", 2, b))
    # field 2 is reserved in remote.proto (it was never used on the wire by v1 senders)
    message(
        "WriteRequest",
        _field("timeseries", 1, msg, _REP, ".prometheus.TimeSeries"),
        _field("metadata", 3, msg, _REP, ".prometheus.MetricMetadata"),
    )
    return fdp


@cache
def file_descriptor() -> FileDescriptor:
    """The ``FileDescriptor`` holding the messages (for ptars ``HandlerPool``)."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_proto())
    return pool.FindFileByName("lookout/prompb/remote.proto")


def descriptor(name: str) -> Descriptor:
    """Descriptor of ``prometheus.<name>``."""
    return file_descriptor().message_types_by_name[name]


@cache
def message_class(name: str) -> type[Message]:
    """A upb message class for ``prometheus.<name>`` (``WriteRequest``, ``TimeSeries``, ...)."""
    return message_factory.GetMessageClass(descriptor(name))
