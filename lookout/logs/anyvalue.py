"""OTLP ``AnyValue`` → text exactly as Loki renders it (Go's ``pcommon.Value.AsString``).

Loki turns attribute values and non-string bodies into strings with the OpenTelemetry Collector's
``AsString``: ints in decimal, booleans ``true``/``false``, doubles in the ECMAScript shortest
form (``1``, ``0.1``, ``1e+21``, ``1e-7``), bytes in standard base64, and arrays/maps as Go's
``encoding/json`` output (sorted keys, no spaces, ``<``/``>``/``&`` escaped as ``\\u003c``...).
Matching it byte for byte matters because users paste these values into LogQL filters.

The scalar cases are vectorized (:func:`scalar_strings`); only arrays, maps and bytes — rare in
attributes, occasional in bodies — go through the per-value functions here.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList


class _Unsupported(ValueError):
    """A NaN/Inf inside a composite value: Go's json.Marshal fails and AsString gives ""."""


def go_float(f: float) -> str:
    """Go's ``float64AsString``: ECMAScript-style shortest round-trip text."""
    if math.isnan(f) or math.isinf(f):
        text = "NaN" if math.isnan(f) else ("+Inf" if f > 0 else "-Inf")
        return f"json: unsupported value: {text}"
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        return np.format_float_scientific(f, unique=True, trim="-", exp_digits=1)
    return np.format_float_positional(f, unique=True, trim="-")


def _go_json_str(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)
    if any(c in s for c in "<>&\u2028\u2029"):
        out = (out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
               .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return out


def go_json(obj: Any) -> str:
    """Go ``json.Marshal`` of a value built by :func:`raw` (map keys sorted, compact)."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            raise _Unsupported("unsupported float")
        return go_float(obj)
    if isinstance(obj, str):
        return _go_json_str(obj)
    if isinstance(obj, bytes):
        return '"' + base64.b64encode(obj).decode() + '"'
    if isinstance(obj, dict):
        return "{" + ",".join(f"{_go_json_str(k)}:{go_json(obj[k])}" for k in sorted(obj)) + "}"
    return "[" + ",".join(go_json(v) for v in obj) + "]"


def raw(v: AnyValue) -> Any:
    """``pcommon.Value.AsRaw``: a plain Python value (later duplicate map keys win)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [raw(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: raw(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which)


def as_string(v: AnyValue) -> str:
    """``pcommon.Value.AsString`` of one protobuf value."""
    which = v.WhichOneof("value")
    if which is None:
        return ""
    if which == "string_value":
        return v.string_value
    if which == "bool_value":
        return "true" if v.bool_value else "false"
    if which == "int_value":
        return str(v.int_value)
    if which == "double_value":
        return go_float(v.double_value)
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if which == "string_value_strindex":
        return ""
    try:
        return go_json(raw(v))
    except _Unsupported:
        return ""


def normalize_label(name: str) -> str:
    """Loki's ``otlptranslator.NormalizeLabel``: every character outside ``[a-zA-Z0-9_]``
    becomes ``_``; a leading digit gets ``key_``, a single leading underscore gets ``key``."""
    if not name:
        return name
    out = "".join(c if (c.isascii() and (c.isalnum() or c == "_")) else "_" for c in name)
    if out[0].isdigit():
        return "key_" + out
    if out.startswith("_") and not out.startswith("__"):
        return "key" + out
    return out


def to_labels(key: str, v: AnyValue, prefix: str = "") -> list[tuple[str, str]]:
    """Loki's ``attributeToLabels``: a map value flattens into ``<key>_<subkey>`` pairs,
    recursively; anything else is one pair with ``as_string``."""
    name = normalize_label(f"{prefix}_{key}" if prefix else key)
    if v.WhichOneof("value") == "kvlist_value":
        out: list[tuple[str, str]] = []
        for kv in v.kvlist_value.values:
            out.extend(to_labels(kv.key, kv.value, name))
        return out
    return [(name, as_string(v))]


def from_ptars(value: dict | None, *, body: bool = False) -> AnyValue:
    """A ptars ``AnyValue`` struct (as a Python dict) back to the protobuf message.

    ptars keeps nested values serialized: array items are ``AnyValue`` bytes, attribute kvlist
    items ``KeyValue`` bytes, and body kvlist items ``{key, value: AnyValue bytes}``."""
    if value is None:
        return AnyValue()
    for name in ("string_value", "bool_value", "int_value", "double_value", "bytes_value"):
        if value.get(name) is not None:
            return AnyValue(**{name: value[name]})
    arr = value.get("array_value")
    if arr is not None:
        return AnyValue(array_value=ArrayValue(values=[AnyValue.FromString(b) for b in arr["values"]]))
    kvl = value.get("kvlist_value")
    if kvl is not None:
        if body:
            items = [KeyValue(key=kv["key"], value=AnyValue.FromString(kv["value"] or b"")) for kv in kvl["values"]]
        else:
            items = [KeyValue.FromString(b) for b in kvl["values"]]
        return AnyValue(kvlist_value=KeyValueList(values=items))
    return AnyValue()


# --------------------------------------------------------------------------------------------
# vectorized scalars


def _doubles_as_strings(col: pa.Array) -> pa.Array:
    """Arrow's float→string is ECMAScript-like except for integral values in [1e16, 1e21) and
    NaN/Inf; those few are redone in Python."""
    text = pc.cast(col, pa.string())
    if len(col) == 0:
        return text
    vals = col.to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        fix = ~np.isfinite(vals) | ((np.abs(vals) >= 1e16) & (np.abs(vals) < 1e21))
    fix &= col.is_valid().to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(fix)
    if idx.size == 0:
        return text
    py = text.to_pylist()
    for i in idx.tolist():
        py[i] = go_float(float(vals[i]))
    return pa.array(py, pa.string())


def scalar_strings(values: pa.StructArray) -> tuple[pa.Array, np.ndarray]:
    """``AsString`` of ptars AnyValue structs for the scalar kinds, vectorized.

    Returns the strings (null where the value is not a scalar) and the indices of the values
    that need :func:`from_ptars` + :func:`as_string` (arrays, maps, bytes, empty)."""
    if len(values) == 0:
        return pa.array([], pa.string()), np.empty(0, np.int64)
    s = pc.struct_field(values, "string_value")
    i = pc.cast(pc.struct_field(values, "int_value"), pa.string())
    d = _doubles_as_strings(pc.struct_field(values, "double_value"))
    b = pc.cast(pc.struct_field(values, "bool_value"), pa.string())
    out = pc.coalesce(s, i, d, b)
    rest = np.flatnonzero(~out.is_valid().to_numpy(zero_copy_only=False))
    return out, rest
