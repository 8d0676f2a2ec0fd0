"""Span table rows → ``ExportTraceServiceRequest``: the inverse of :func:`decode_traces`.

The Tempo API returns traces as OTLP, so query results (one trace, or a search page) must become
the exact spans a client sent. This runs at query time over few rows, so it loops in Python over
rows; it stays out of the ingest path.

Grouping: rows with identical resource content (attributes, dropped count, schema URL) share one
``ResourceSpans``, and within it rows with identical scope content share one ``ScopeSpans``, in
first-seen order. Attributes come back grouped by type (str, int, double, bool, other), each
group in stored order; the set of key/values is exactly what was decoded. Absent and empty
sub-messages were decoded alike, so ``resource``/``scope``/``status`` are only set when non-empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
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

_SCALAR_MAPS = (
    ("attrs_str", "string_value"),
    ("attrs_int", "int_value"),
    ("attrs_dbl", "double_value"),
    ("attrs_bool", "bool_value"),
)


def _typed_attributes(row: Mapping[str, Any], prefix: str) -> list[KeyValue]:
    """The typed maps of one row (``prefix`` "" or "res_") back to a KeyValue list."""
    out = []
    for map_name, field in _SCALAR_MAPS:
        for key, value in row[prefix + map_name] or ():
            out.append(KeyValue(key=key, value=AnyValue(**{field: value})))
    for key, value in row[prefix + "attrs_other"] or ():
        out.append(KeyValue(key=key, value=AnyValue.FromString(value or b"")))
    return out


def _any_value(value: Mapping[str, Any] | None) -> AnyValue:
    """A schema ``ANY_VALUE`` dict back to an AnyValue (nested items are serialized protobufs)."""
    if not value:
        return AnyValue()
    for field in ("string_value", "bool_value", "int_value", "double_value", "bytes_value"):
        if value.get(field) is not None:
            return AnyValue(**{field: value[field]})
    if value.get("array_value") is not None:
        items = [AnyValue.FromString(b) for b in value["array_value"]]
        return AnyValue(array_value=ArrayValue(values=items))
    if value.get("kvlist_value") is not None:
        items = [KeyValue.FromString(b) for b in value["kvlist_value"]]
        return AnyValue(kvlist_value=KeyValueList(values=items))
    return AnyValue()


def _kv_list(items: Iterable[Mapping[str, Any]] | None) -> list[KeyValue]:
    return [KeyValue(key=kv["key"] or "", value=_any_value(kv["value"])) for kv in items or ()]


def _span(row: Mapping[str, Any]) -> Span:
    start = row["start_time_unix_nano"]
    span = Span(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"] or b"",
        trace_state=row["trace_state"] or "",
        flags=row["flags"] or 0,
        name=row["name"] or "",
        kind=row["kind"] or 0,
        start_time_unix_nano=start,
        end_time_unix_nano=start + row["duration_nano"],
        attributes=_typed_attributes(row, ""),
        dropped_attributes_count=row["dropped_attributes_count"] or 0,
        dropped_events_count=row["dropped_events_count"] or 0,
        dropped_links_count=row["dropped_links_count"] or 0,
    )
    if row["status_code"] or row["status_message"]:
        span.status.CopyFrom(Status(code=row["status_code"] or 0, message=row["status_message"] or ""))
    for ev in row["events"] or ():
        span.events.add(
            time_unix_nano=ev["time_unix_nano"] or 0,
            name=ev["name"] or "",
            attributes=_kv_list(ev["attributes"]),
            dropped_attributes_count=ev["dropped_attributes_count"] or 0,
        )
    for lk in row["links"] or ():
        span.links.add(
            trace_id=lk["trace_id"] or b"",
            span_id=lk["span_id"] or b"",
            trace_state=lk["trace_state"] or "",
            flags=lk["flags"] or 0,
            attributes=_kv_list(lk["attributes"]),
            dropped_attributes_count=lk["dropped_attributes_count"] or 0,
        )
    return span


def spans_to_request(table: pa.Table) -> ExportTraceServiceRequest:
    """Rows of a ``SPAN_SCHEMA`` table → one request, spans in row order within their scope."""
    request = ExportTraceServiceRequest()
    resources: dict[tuple[bytes, str], ResourceSpans] = {}
    scopes: dict[tuple[bytes, str, bytes, str], ScopeSpans] = {}
    for row in table.to_pylist():
        resource = Resource(
            attributes=_typed_attributes(row, "res_"),
            dropped_attributes_count=row["res_dropped_attributes_count"] or 0,
        )
        res_key = (resource.SerializeToString(deterministic=True), row["res_schema_url"] or "")
        rs = resources.get(res_key)
        if rs is None:
            rs = resources[res_key] = request.resource_spans.add(schema_url=res_key[1])
            if resource != Resource():
                rs.resource.CopyFrom(resource)
        scope = InstrumentationScope(
            name=row["scope_name"] or "",
            version=row["scope_version"] or "",
            attributes=_kv_list(row["scope_attributes"]),
            dropped_attributes_count=row["scope_dropped_attributes_count"] or 0,
        )
        scope_key = (*res_key, scope.SerializeToString(deterministic=True), row["scope_schema_url"] or "")
        ss = scopes.get(scope_key)
        if ss is None:
            ss = scopes[scope_key] = rs.scope_spans.add(schema_url=scope_key[3])
            if scope != InstrumentationScope():
                ss.scope.CopyFrom(scope)
        ss.spans.append(_span(row))
    return request
