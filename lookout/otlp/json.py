"""OTLP/JSON ⇄ protobuf.

OTLP/JSON is the proto3 JSON mapping with one incompatible twist: trace and span ids are hex
strings, not base64 (every other ``bytes`` field, e.g. ``AnyValue.bytesValue``, stays base64).
So both directions run ``google.protobuf.json_format`` (which already handles int64 as string or
number, enums as names or ints, both field-name spellings, and unknown fields) and rewrite only
the id fields around it. The receiver converts a JSON body once to protobuf bytes, so everything
downstream (the log, the decoders) sees only protobuf.

The id fields are recognised by key anywhere in the tree: in OTLP every JSON object key
``traceId``/``spanId``/``parentSpanId`` (or snake_case) is such an id field — spans, links, log
records, exemplars — because attribute keys are values (``{"key": ..., "value": ...}``), never
object keys.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lookout.otlp.errors import OtlpDecodeError

_REQUESTS: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}

# JSON key (either spelling) → id length in bytes.
_ID_FIELDS = {
    "traceId": 16,
    "trace_id": 16,
    "spanId": 8,
    "span_id": 8,
    "parentSpanId": 8,
    "parent_span_id": 8,
}


def _hex_ids_to_base64(node: Any, path: str) -> Any:
    """Copy of a parsed OTLP/JSON tree with hex id strings replaced by base64 for json_format."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            where = f"{path}.{key}" if path else key
            size = _ID_FIELDS.get(key)
            if size is not None and isinstance(value, str):
                out[key] = _hex_to_base64(value, size, where)
            else:
                out[key] = _hex_ids_to_base64(value, where)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(item, f"{path}[{i}]") for i, item in enumerate(node)]
    return node


def _hex_to_base64(value: str, size: int, where: str) -> str:
    if value == "":  # an empty id means "absent" (e.g. a root span's parentSpanId)
        return ""
    try:
        if len(value) != 2 * size:
            raise ValueError
        raw = bytes.fromhex(value)
        if len(raw) != size:  # fromhex skips whitespace
            raise ValueError
    except ValueError:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise OtlpDecodeError(f"{where}: expected {2 * size} hex characters, got {shown!r}") from None
    return base64.b64encode(raw).decode("ascii")


def json_to_protobuf(signal: str, body: bytes) -> bytes:
    """An OTLP/JSON request body → the serialized ``Export*ServiceRequest`` protobuf.

    ``signal`` is ``"traces"``, ``"metrics"`` or ``"logs"``. Raises :class:`OtlpDecodeError`
    for invalid JSON (with line and column), a non-hex or wrong-length id (naming the field
    path, e.g. ``resourceSpans[0].scopeSpans[0].spans[3].spanId``), or a value json_format
    rejects (its message names the field). Unknown fields are ignored.
    """
    try:
        cls = _REQUESTS[signal]
    except KeyError:
        raise ValueError(f"unknown signal {signal!r}; expected one of {sorted(_REQUESTS)}") from None
    try:
        tree = json.loads(body)
    except json.JSONDecodeError as exc:
        raise OtlpDecodeError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise OtlpDecodeError(f"invalid JSON: body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if not isinstance(tree, dict):
        raise OtlpDecodeError(
            f"invalid OTLP/JSON: expected an object at the top level, got {type(tree).__name__}"
        )
    message = cls()
    try:
        json_format.ParseDict(_hex_ids_to_base64(tree, ""), message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise OtlpDecodeError(f"invalid OTLP/JSON {cls.DESCRIPTOR.name}: {exc}") from exc
    return message.SerializeToString()


def _base64_ids_to_hex(node: Any) -> Any:
    """In place: base64 id strings from json_format → lowercase hex (OTLP/JSON)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _base64_ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _base64_ids_to_hex(item)
    return node


def message_to_otlp_json(msg: Message) -> dict[str, Any]:
    """A protobuf message (any OTLP message) → its OTLP/JSON object.

    lowerCamelCase keys, ids as lowercase hex, 64-bit integers as decimal strings, enums as
    ints, other bytes as base64, default values omitted. ``json_to_protobuf`` of its
    ``json.dumps`` gives back the same protobuf.
    """
    tree = json_format.MessageToDict(msg, use_integers_for_enums=True)
    return _base64_ids_to_hex(tree)
