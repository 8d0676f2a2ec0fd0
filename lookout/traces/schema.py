"""The span table: one Arrow/Parquet row per span.

Everything that decodes, stores or queries spans agrees on this one schema. It is flat so that
DuckDB filters on plain columns and typed maps (no per-row Python), and it is lossless so that
the Tempo API can rebuild the exact OTLP spans a client sent:

- attribute values are split by type into ``attrs_str``/``attrs_int``/``attrs_dbl``/``attrs_bool``
  maps (queryable); arrays, key-value lists, bytes and empty values go to ``attrs_other`` as the
  serialized ``AnyValue`` protobuf, so they round-trip byte for byte;
- resource attributes use the same five maps with a ``res_`` prefix, repeated per span (runs of
  identical values cost almost nothing after Parquet dictionary/RLE and zstd);
- scope attributes, events and links are rarely filtered on, so they keep the nested ``KV_LIST``
  form that ptars produces (recursive values again serialized ``AnyValue`` bytes);
- ``end_time_unix_nano`` is stored as ``duration_nano`` (smaller after delta encoding, and what
  search filters on).

Rows are sorted by ``(trace_id, start_time_unix_nano)`` in blocks (design doc section 5.2).
"""

from __future__ import annotations

import pyarrow as pa

ANY_VALUE = pa.struct(
    [
        pa.field("string_value", pa.string()),
        pa.field("bool_value", pa.bool_()),
        pa.field("int_value", pa.int64()),
        pa.field("double_value", pa.float64()),
        # Recursive values (array items, kvlist entries) are serialized protobufs.
        pa.field("array_value", pa.list_(pa.binary())),  # serialized AnyValue each
        pa.field("kvlist_value", pa.list_(pa.binary())),  # serialized KeyValue each
        pa.field("bytes_value", pa.binary()),
    ]
)
"""One OTLP ``AnyValue``; exactly one field is non-null (none for an empty value)."""

KV_LIST = pa.list_(pa.struct([pa.field("key", pa.string()), pa.field("value", ANY_VALUE)]))
"""A list of OTLP ``KeyValue`` pairs in their nested form (scope, event and link attributes)."""


def _typed_maps(prefix: str) -> list[pa.Field]:
    return [
        pa.field(f"{prefix}attrs_str", pa.map_(pa.string(), pa.string())),
        pa.field(f"{prefix}attrs_int", pa.map_(pa.string(), pa.int64())),
        pa.field(f"{prefix}attrs_dbl", pa.map_(pa.string(), pa.float64())),
        pa.field(f"{prefix}attrs_bool", pa.map_(pa.string(), pa.bool_())),
        # array / kvlist / bytes / empty values: serialized AnyValue
        pa.field(f"{prefix}attrs_other", pa.map_(pa.string(), pa.binary())),
    ]


EVENT = pa.struct(
    [
        pa.field("time_unix_nano", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("attributes", KV_LIST),
        pa.field("dropped_attributes_count", pa.uint32()),
    ]
)

LINK = pa.struct(
    [
        pa.field("trace_id", pa.binary()),
        pa.field("span_id", pa.binary()),
        pa.field("trace_state", pa.string()),
        pa.field("flags", pa.uint32()),
        pa.field("attributes", KV_LIST),
        pa.field("dropped_attributes_count", pa.uint32()),
    ]
)

SPAN_SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.binary(16), nullable=False),
        pa.field("span_id", pa.binary(8), nullable=False),
        pa.field("parent_span_id", pa.binary()),  # empty bytes for a root span
        pa.field("trace_state", pa.string()),
        pa.field("flags", pa.uint32()),
        pa.field("name", pa.string()),
        pa.field("kind", pa.int8()),  # OTLP SpanKind number, 0..5
        pa.field("start_time_unix_nano", pa.int64(), nullable=False),
        pa.field("duration_nano", pa.int64(), nullable=False),
        pa.field("status_code", pa.int8()),  # 0 unset, 1 ok, 2 error
        pa.field("status_message", pa.string()),
        pa.field("service_name", pa.string()),  # resource service.name, denormalised for search
        *_typed_maps(""),
        pa.field("dropped_attributes_count", pa.uint32()),
        pa.field("events", pa.list_(EVENT)),
        pa.field("dropped_events_count", pa.uint32()),
        pa.field("links", pa.list_(LINK)),
        pa.field("dropped_links_count", pa.uint32()),
        *_typed_maps("res_"),
        pa.field("res_dropped_attributes_count", pa.uint32()),
        pa.field("res_schema_url", pa.string()),
        pa.field("scope_name", pa.string()),
        pa.field("scope_version", pa.string()),
        pa.field("scope_attributes", KV_LIST),
        pa.field("scope_dropped_attributes_count", pa.uint32()),
        pa.field("scope_schema_url", pa.string()),
    ]
)

SORT_KEYS = [("trace_id", "ascending"), ("start_time_unix_nano", "ascending")]
"""Block sort order: a trace's spans are contiguous, so row-group min/max prune trace lookups."""

TIME_COLUMN = "start_time_unix_nano"


def _dictionary_columns() -> list[str]:
    """Low-cardinality leaves get Parquet dictionaries; random ids, times and free-text values
    do not (a dictionary there only adds bytes). Measured on bench/loadgen.py data: 57 -> 48.5
    bytes/span together with byte-stream-split times, before zstd level changes."""
    names = ["trace_id", "name", "service_name", "status_message", "trace_state", "scope_name",
             "scope_version", "res_schema_url", "scope_schema_url", "kind", "status_code"]
    for prefix in ("", "res_"):
        for kind in ("str", "int", "dbl", "bool", "other"):
            names.append(f"{prefix}attrs_{kind}.key_value.key")
        names += [f"{prefix}attrs_str.key_value.value"]
    names += ["res_attrs_int.key_value.value"]
    return names


PARQUET_WRITER_OPTIONS = {
    "use_dictionary": _dictionary_columns(),
    "use_byte_stream_split": ["start_time_unix_nano", "duration_nano"],
}
"""The span block layout, passed to the storage layer (which knows no signal)."""

COMPACTED_ZSTD_LEVEL = 9
"""Compaction rewrites cold data once: zstd 9 buys ~4 % over level 3 at half the write speed,
which only the background compactor pays (L0 flushes keep level 3)."""
