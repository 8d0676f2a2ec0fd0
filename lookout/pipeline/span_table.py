"""OTTL contexts over the flat span table (:data:`lookout.traces.schema.SPAN_SCHEMA`).

Tail sampling holds decoded span tables, so its OTTL conditions read the table directly instead
of going back to OTLP: typed attribute maps answer ``attributes["k"]`` with one ``map_lookup``
per type, scope and event attributes (kept in the nested ``KV_LIST`` form) go through
:func:`attribute_values_from_kvlist`, and the span-event context flattens the events lists once
and reaches span/resource/scope paths through the parent row index.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.pipeline.ottl.evaluate import ValueKinds, hex_strings
from lookout.pipeline.values import PathError, Values

_TYPED = (("str", pa.string()), ("int", pa.int64()), ("dbl", pa.float64()), ("bool", pa.bool_()))
_ANY_FIELDS = (("str", "string_value", pa.string()), ("int", "int_value", pa.int64()),
               ("dbl", "double_value", pa.float64()), ("bool", "bool_value", pa.bool_()))
_KIND_NAMES = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
_KIND_DEPRECATED = [f"SPAN_KIND_{k.upper()}" for k in _KIND_NAMES]

# First byte of a serialized AnyValue in attrs_other: (field number << 3) | wire type 2.
_TAG_ARRAY, _TAG_KVLIST, _TAG_BYTES = b"\x2a", b"\x32", b"\x3a"


def _combine(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _take_null_where_negative(arr: pa.Array, positions: np.ndarray) -> pa.Array:
    """``arr[positions]`` with null where ``positions`` is -1 — how per-parent "first match"
    results are scattered back to one slot per item without a loop."""
    idx = pa.array(positions, type=pa.int64(), mask=positions < 0)
    return pc.take(arr, idx)


def _first_per_parent(kvs: pa.ListArray, key: str) -> tuple[pa.Array, np.ndarray]:
    """The ``value`` structs of the first entry with ``key`` in each list, and per list the
    position of that entry in the result (-1 where none)."""
    n = len(kvs)
    flat = pc.list_flatten(kvs)
    parents = pc.list_parent_indices(kvs).to_numpy()
    hits = np.flatnonzero(pc.equal(pc.struct_field(flat, "key"), key).fill_null(False)
                          .to_numpy(zero_copy_only=False))
    rows, first = np.unique(parents[hits], return_index=True)  # entries are in parent order
    values = pc.take(pc.struct_field(flat, "value"), pa.array(hits[first], type=pa.int64()))
    positions = np.full(n, -1, dtype=np.int64)
    positions[rows] = np.arange(len(rows), dtype=np.int64)
    return values, positions


def attribute_values_from_kvlist(kvs: pa.ListArray | pa.ChunkedArray, key: str) -> Values:
    """``attributes["key"]`` over a list of OTLP ``KeyValue`` structs per item (scope, event or
    link attributes; the nested OTLP contexts' attributes too).

    The value struct needs ``string_value``/``int_value``/``double_value``/``bool_value``; other
    fields (array, kvlist, bytes) are ignored except that a non-null one makes the value present.
    An empty ``AnyValue`` counts as absent, as OTTL treats it as nil. When a key repeats, the
    first entry wins, as in pdata.
    """
    kvs = _combine(kvs)
    n = len(kvs)
    values, positions = _first_per_parent(kvs, key)
    typed: dict[str, pa.Array] = {}
    present = np.zeros(len(values), dtype=np.bool_)
    value_type = values.type
    for i in range(value_type.num_fields):
        name = value_type.field(i).name
        child = pc.struct_field(values, name)
        present |= child.is_valid().to_numpy(zero_copy_only=False)
    for attr, name, typ in _ANY_FIELDS:
        child = pc.struct_field(values, name) if value_type.get_field_index(name) >= 0 else pa.nulls(len(values), typ)
        if child.type != typ:
            child = child.cast(typ)
        typed[attr] = _take_null_where_negative(child, positions)
    item_present = np.zeros(n, dtype=np.bool_)
    has = positions >= 0
    item_present[has] = present[positions[has]]
    return Values(n, typed["str"], typed["int"], typed["dbl"], typed["bool"], item_present)


def attribute_kinds_from_kvlist(kvs: pa.ListArray | pa.ChunkedArray, key: str) -> ValueKinds:
    """Where ``attributes["key"]`` of a ``KV_LIST`` is a list, a map or bytes (companion of
    :func:`attribute_values_from_kvlist` for ``IsMap``/``IsList``/byte comparisons)."""
    kvs = _combine(kvs)
    n = len(kvs)
    values, positions = _first_per_parent(kvs, key)
    value_type = values.type

    def field(name: str, typ: pa.DataType) -> pa.Array:
        if value_type.get_field_index(name) < 0:
            return pa.nulls(n, typ)
        return _take_null_where_negative(pc.struct_field(values, name), positions)

    is_list = field("array_value", pa.list_(pa.binary())).is_valid().to_numpy(zero_copy_only=False)
    is_map = field("kvlist_value", pa.list_(pa.binary())).is_valid().to_numpy(zero_copy_only=False)
    return ValueKinds(is_map=is_map, is_list=is_list, bytes=field("bytes_value", pa.binary()))


def _serialized_kinds(other: pa.Array) -> ValueKinds:
    """Kinds of serialized ``AnyValue`` protobufs (``attrs_other``), from the leading tag byte;
    a bytes value's payload follows a varint length, decoded per length-of-length class."""
    n = len(other)
    head = pc.binary_slice(other, 0, 1)
    is_list = pc.equal(head, pa.scalar(_TAG_ARRAY, pa.binary())).fill_null(False).to_numpy(zero_copy_only=False)
    is_map = pc.equal(head, pa.scalar(_TAG_KVLIST, pa.binary())).fill_null(False).to_numpy(zero_copy_only=False)
    is_bytes = pc.equal(head, pa.scalar(_TAG_BYTES, pa.binary())).fill_null(False).to_numpy(zero_copy_only=False)
    out = pa.nulls(n, pa.binary())
    if is_bytes.any():
        total = pc.binary_length(other).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        for size in range(1, 6):
            length = total - 1 - size
            lo = 0 if size == 1 else 1 << (7 * (size - 1))
            hi = 1 << (7 * size)
            sel = is_bytes & (length >= lo) & (length < hi)
            if sel.any():
                out = pc.if_else(pa.array(sel), pc.binary_slice(other, 1 + size, 2**31 - 1), out)
    return ValueKinds(is_map=is_map, is_list=is_list, bytes=out)


def _take_values(v: Values, idx: np.ndarray) -> Values:
    """A parent's values repeated for each child item (span → its events)."""
    ia = pa.array(idx, type=pa.int64())
    return Values(len(idx), pc.take(v.str, ia), pc.take(v.int, ia), pc.take(v.dbl, ia), pc.take(v.bool, ia),
                  np.asarray(v.present)[idx])


def _take_kinds(k: ValueKinds, idx: np.ndarray) -> ValueKinds:
    return ValueKinds(np.asarray(k.is_map)[idx], np.asarray(k.is_list)[idx],
                      pc.take(k.bytes, pa.array(idx, type=pa.int64())))


def _normalize(fields: tuple[str, ...]) -> tuple[str, ...]:
    if fields and fields[0] == "scope":
        return ("instrumentation_scope", *fields[1:])
    return fields


class SpanTableContext:
    """OTTL ``span`` context: one item per row of a span table."""

    kind = "span"

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._n = table.num_rows
        self._cols: dict[str, pa.Array] = {}

    def __len__(self) -> int:
        return self._n

    def col(self, name: str) -> pa.Array:
        c = self._cols.get(name)
        if c is None:
            c = self._cols[name] = _combine(self.table.column(name))
        return c

    # -- building blocks -------------------------------------------------------------------

    def _always(self, **arrays: pa.Array) -> Values:
        return Values.of(self._n, **arrays, present=np.ones(self._n, dtype=np.bool_))

    def _string(self, name: str) -> Values:
        return self._always(str=self.col(name).fill_null(""))

    def _int(self, name: str) -> Values:
        return self._always(int=self.col(name).cast(pa.int64()).fill_null(0))

    def _typed_map(self, prefix: str, key: str) -> Values:
        arrays = {attr: pc.map_lookup(self.col(f"{prefix}attrs_{attr}"), key, "first").cast(typ)
                  for attr, typ in _TYPED}
        other = pc.map_lookup(self.col(f"{prefix}attrs_other"), key, "first")
        # An empty serialized AnyValue is the empty value, which OTTL reads as nil.
        present = pc.greater(pc.binary_length(other), 0).fill_null(False).to_numpy(zero_copy_only=False)
        for arr in arrays.values():
            present |= arr.is_valid().to_numpy(zero_copy_only=False)
        return Values(self._n, arrays["str"], arrays["int"], arrays["dbl"], arrays["bool"], present)

    def _whole_map(self) -> Values:
        return Values.of(self._n, present=np.ones(self._n, dtype=np.bool_))

    def _bytes_present(self, name: str) -> Values:
        # Ids have no typed slot in Values: present, and compared through ``.string``.
        return Values.of(self._n, present=np.ones(self._n, dtype=np.bool_))

    def _trace_state_member(self, key: str) -> Values:
        pattern = r"(?:^|,)[ \t]*" + re.escape(key) + r"=(?P<v>[^,]*)"
        ts = self.col("trace_state")
        found = pc.extract_regex(ts, pattern=pattern)
        member = pc.utf8_rtrim_whitespace(pc.struct_field(found, "v"))
        return Values.of(self._n, str=member)

    # -- the Context protocol ----------------------------------------------------------------

    def values(self, fields: tuple[str, ...], keys: tuple[str, ...] = ()) -> Values:
        fields = _normalize(fields)
        if fields and fields[0] == "span":
            fields = fields[1:]
        path = ".".join(fields)
        head = fields[:1]
        if head in (("attributes",), ("resource",)) and fields[-1] == "attributes" and len(fields) <= 2:
            if not keys:
                return self._whole_map()
            if len(keys) > 1:
                raise PathError(f"{path}: nested map keys are not supported on the span table")
            return self._typed_map("res_" if head == ("resource",) else "", keys[0])
        if fields == ("instrumentation_scope", "attributes"):
            if not keys:
                return self._whole_map()
            if len(keys) > 1:
                raise PathError(f"{path}: nested map keys are not supported on the span table")
            return attribute_values_from_kvlist(self.col("scope_attributes"), keys[0])
        if fields == ("trace_state",) and keys:
            if len(keys) > 1:
                raise PathError("trace_state takes one key")
            return self._trace_state_member(keys[0])
        if keys:
            raise PathError(f"{path} is not a map")
        simple = _SPAN_FIELDS.get(fields)
        if simple is not None:
            kind, column = simple
            return {"str": self._string, "int": self._int, "bytes": self._bytes_present}[kind](column)
        if len(fields) == 2 and fields[1] == "string" and fields[0] in ("trace_id", "span_id", "parent_span_id"):
            return self._always(str=hex_strings(self.col(fields[0]).cast(pa.binary()).fill_null(b"")))
        if fields == ("end_time_unix_nano",):
            return self._always(int=pc.add(self.col("start_time_unix_nano"), self.col("duration_nano")))
        if fields in (("kind", "string"), ("kind", "deprecated_string")):
            names = pa.array(_KIND_NAMES if fields[1] == "string" else _KIND_DEPRECATED, pa.string())
            kinds = self.col("kind").cast(pa.int64())
            valid = pc.and_(pc.greater_equal(kinds, 0), pc.less(kinds, len(_KIND_NAMES)))
            return self._always(str=pc.take(names, pc.if_else(valid, kinds, pa.scalar(None, pa.int64())))
                                .fill_null(""))
        raise PathError(f"the span context has no path {path!r}")

    def value_kinds(self, fields: tuple[str, ...], keys: tuple[str, ...] = ()) -> ValueKinds:
        """Maps/lists/bytes behind a path (see :class:`ValueKinds`)."""
        fields = _normalize(fields)
        if fields and fields[0] == "span":
            fields = fields[1:]
        n = self._n
        none = np.zeros(n, dtype=np.bool_)
        if fields in (("attributes",), ("resource", "attributes"), ("instrumentation_scope", "attributes")):
            if not keys:
                return ValueKinds(np.ones(n, dtype=np.bool_), none, pa.nulls(n, pa.binary()))
            if fields[0] == "instrumentation_scope":
                return attribute_kinds_from_kvlist(self.col("scope_attributes"), keys[0])
            prefix = "res_" if fields[0] == "resource" else ""
            return _serialized_kinds(pc.map_lookup(self.col(f"{prefix}attrs_other"), keys[0], "first"))
        if fields in (("trace_id",), ("span_id",), ("parent_span_id",)):
            return ValueKinds(none, none, self.col(fields[0]).cast(pa.binary()))
        return ValueKinds(none, none, pa.nulls(n, pa.binary()))


_SPAN_FIELDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("name",): ("str", "name"),
    ("trace_state",): ("str", "trace_state"),
    ("kind",): ("int", "kind"),
    ("flags",): ("int", "flags"),
    ("start_time_unix_nano",): ("int", "start_time_unix_nano"),
    ("status", "code"): ("int", "status_code"),
    ("status", "message"): ("str", "status_message"),
    ("dropped_attributes_count",): ("int", "dropped_attributes_count"),
    ("dropped_events_count",): ("int", "dropped_events_count"),
    ("dropped_links_count",): ("int", "dropped_links_count"),
    ("trace_id",): ("bytes", "trace_id"),
    ("span_id",): ("bytes", "span_id"),
    ("parent_span_id",): ("bytes", "parent_span_id"),
    ("resource", "dropped_attributes_count"): ("int", "res_dropped_attributes_count"),
    ("resource", "schema_url"): ("str", "res_schema_url"),
    ("instrumentation_scope", "name"): ("str", "scope_name"),
    ("instrumentation_scope", "version"): ("str", "scope_version"),
    ("instrumentation_scope", "dropped_attributes_count"): ("int", "scope_dropped_attributes_count"),
    ("instrumentation_scope", "schema_url"): ("str", "scope_schema_url"),
}
"""Span paths that are one column (string fields read "" and counts 0 where unset, as pdata)."""

_PARENT_ROOTS = {"span", "resource", "instrumentation_scope"}


class SpanEventTableContext:
    """OTTL ``spanevent`` context: one item per event of every span in a span table, in row
    order; ``span.*``, ``resource.*`` and ``instrumentation_scope.*`` read the event's span."""

    kind = "spanevent"

    def __init__(self, table: pa.Table) -> None:
        self.spans = SpanTableContext(table)
        events = self.spans.col("events")
        self.events = pc.list_flatten(events)
        self.parents = pc.list_parent_indices(events).to_numpy().astype(np.int64)
        offsets = events.offsets.to_numpy().astype(np.int64)
        self._index = np.arange(len(self.parents), dtype=np.int64) - (offsets[self.parents] - offsets[0])

    def __len__(self) -> int:
        return len(self.parents)

    def _always(self, **arrays: pa.Array) -> Values:
        n = len(self)
        return Values.of(n, **arrays, present=np.ones(n, dtype=np.bool_))

    def values(self, fields: tuple[str, ...], keys: tuple[str, ...] = ()) -> Values:
        fields = _normalize(fields)
        if fields and fields[0] == "spanevent":
            fields = fields[1:]
        if fields and fields[0] in _PARENT_ROOTS:
            return _take_values(self.spans.values(fields, keys), self.parents)
        path = ".".join(fields)
        if fields == ("attributes",):
            if not keys:
                return Values.of(len(self), present=np.ones(len(self), dtype=np.bool_))
            if len(keys) > 1:
                raise PathError(f"{path}: nested map keys are not supported on the span table")
            return attribute_values_from_kvlist(pc.struct_field(self.events, "attributes"), keys[0])
        if keys:
            raise PathError(f"{path} is not a map")
        if fields == ("name",):
            return self._always(str=pc.struct_field(self.events, "name").fill_null(""))
        if fields in (("time_unix_nano",), ("dropped_attributes_count",)):
            return self._always(int=pc.struct_field(self.events, fields[0]).cast(pa.int64()).fill_null(0))
        if fields == ("event_index",):
            return self._always(int=pa.array(self._index, pa.int64()))
        raise PathError(f"the spanevent context has no path {path!r}")

    def value_kinds(self, fields: tuple[str, ...], keys: tuple[str, ...] = ()) -> ValueKinds:
        """Maps/lists/bytes behind a path (see :class:`ValueKinds`)."""
        fields = _normalize(fields)
        if fields and fields[0] == "spanevent":
            fields = fields[1:]
        if fields and fields[0] in _PARENT_ROOTS:
            return _take_kinds(self.spans.value_kinds(fields, keys), self.parents)
        n = len(self)
        none = np.zeros(n, dtype=np.bool_)
        if fields == ("attributes",):
            if not keys:
                return ValueKinds(np.ones(n, dtype=np.bool_), none, pa.nulls(n, pa.binary()))
            return attribute_kinds_from_kvlist(pc.struct_field(self.events, "attributes"), keys[0])
        return ValueKinds(none, none, pa.nulls(n, pa.binary()))
