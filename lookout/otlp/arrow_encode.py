"""Encode ptars-shaped nested Arrow back into protobuf bytes, losslessly and vectorized.

Why not ptars' own ``handler.record_batch_to_array``: ptars cuts recursive messages (OTLP
``AnyValue.array_value.values`` / ``kvlist_value.values``, which hold AnyValue/KeyValue again)
into ``binary`` / ``list<binary>`` columns holding the serialized sub-messages, and its encoder
writes those fields back *empty* — an array or kvlist attribute silently loses its items. Here a
``binary`` column for a message field is written as the raw bytes it holds, which is the fix.

How (no per-row Python anywhere), in two passes so every output byte is copied exactly once:

1. Plan, bottom-up (:func:`_encode_struct`). For all rows of a level at once (e.g. every
   AnyValue of every attribute of every span), each field in field-number order becomes one or
   two parts: a *leaf* — per-row byte segments ``(starts, lens, data)``, zero-length where the
   field is absent — or a *child* level planned the same way. Tags and varints are built as
   ``(rows, width)`` uint8 matrices (one column per varint byte) flattened under a mask;
   string/bytes payloads and fixed-width packed arrays are referenced in place. A child's rows
   include their own ``tag + varint(len)`` header, so a level only needs its children's
   per-row sizes (list sizes come from the list offsets and a cumulative sum).
2. Write, top-down (:func:`_place`, :func:`_write`). Row offsets follow from the sizes; within
   a row parts follow each other, list items follow their list's start. That yields a
   destination for every leaf segment; one counting sort orders them and Arrow's ``take``
   copies them (one memcpy per segment, in C++).

Measured (2-core dev VM, 1,000 spans x 10 attributes, 50 resources, 235 kB): ~7 ms per request
vs ~2-3 ms for ptars' ``record_batch_to_array`` (Rust, but lossy); about half is the
planning's fixed per-field numpy overhead, a third the final copy.

Semantics (upb's, so output usually equals the bytes upb would write):

- Fields are written in field-number order.
- proto3 implicit-presence scalars equal to their default are omitted; like upb the test is
  bitwise, so ``-0.0`` is written and ``0.0`` is not. Fields with explicit presence (oneof
  members, proto3 ``optional``, proto2) are written whenever the Arrow value is non-null.
- A null message struct is an absent field; a non-null struct is written even when empty
  (``tag, 0``). ptars keeps that distinction (absent → null, present-but-empty → valid struct),
  so ``Resource {}`` vs. no resource round-trips.
- Repeated numeric fields are packed unless the descriptor says otherwise; empty lists are
  omitted. Maps (``map<K, V>`` Arrow columns) are written as their entry messages in stored
  order, with key and value always written (as upb does).
- A top-level null row encodes as ``b""``.

Limitations: Arrow types ptars produces only for non-default configs or well-known types
(``enum_repr="string"``, ``Timestamp`` → ``timestamp``, wrapper types, ...) raise ``TypeError``;
unknown fields and extensions are not in ptars' output so cannot be written; output is a
``BinaryArray`` (int32 offsets), so one call is limited to 2 GiB of output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np
import pyarrow as pa
from google.protobuf.descriptor import Descriptor, FieldDescriptor

__all__ = ["encode_messages", "encode_record_batch", "encode_request"]

_F = FieldDescriptor
_VARINT_TYPES = frozenset({_F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_UINT32, _F.TYPE_UINT64, _F.TYPE_BOOL, _F.TYPE_ENUM})
_ZIGZAG_TYPES = frozenset({_F.TYPE_SINT32, _F.TYPE_SINT64})
_FIXED32_TYPES = frozenset({_F.TYPE_FIXED32, _F.TYPE_SFIXED32, _F.TYPE_FLOAT})
_FIXED64_TYPES = frozenset({_F.TYPE_FIXED64, _F.TYPE_SFIXED64, _F.TYPE_DOUBLE})
_LEN_TYPES = frozenset({_F.TYPE_STRING, _F.TYPE_BYTES})
_MESSAGE_TYPES = frozenset({_F.TYPE_MESSAGE, _F.TYPE_GROUP})
_SHIFTS = np.arange(10, dtype=np.uint64) * np.uint64(7)
_EMPTY_BYTES = np.empty(0, np.uint8)


class _Part(NamedTuple):
    """Per-row byte segments: row ``i`` is ``data[starts[i] : starts[i] + lens[i]]``.

    Segments need not be contiguous or cover ``data`` — that is what lets an absent field be
    "masked" by zeroing its length without moving any bytes.
    """

    starts: np.ndarray  # int64 (n,)
    lens: np.ndarray  # int64 (n,)
    data: np.ndarray  # uint8


@dataclass(frozen=True)
class _FieldPlan:
    """What :func:`_field_parts` needs about one field, computed once per descriptor."""

    field: FieldDescriptor
    tag: bytes  # the field's tag as written for its (possibly packed) wire form
    element_tag: bytes  # for unpacked repeated scalars: each element's tag


# --------------------------------------------------------------------------------------------
# varint / tag building blocks
# --------------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    """A single varint (for constant tags; never per row)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _exclusive_cumsum(lens: np.ndarray) -> np.ndarray:
    starts = np.empty(len(lens), np.int64)
    if len(lens):
        starts[0] = 0
        np.cumsum(lens[:-1], out=starts[1:])
    return starts


def _scatter(idx: np.ndarray | None, n: int, seg_lens: np.ndarray, data: np.ndarray) -> _Part:
    """Contiguous segments for rows ``idx`` (all rows when None) → a part over ``n`` rows."""
    if idx is None:
        lens = seg_lens.astype(np.int64, copy=False)
    else:
        lens = np.zeros(n, np.int64)
        lens[idx] = seg_lens
    return _Part(_exclusive_cumsum(lens), lens, data)


def _tagged_varints(tag: bytes, values: np.ndarray, idx: np.ndarray | None, n: int) -> _Part:
    """Per selected row ``tag + varint(values[j])``; values are uint64 (negatives pre-extended).

    One ``(m, len(tag) + width)`` matrix holds every row's bytes; where all varints have the
    same width (typical: lengths < 128, small ints) it is flattened as is, else under a mask.
    """
    m = len(values)
    t = len(tag)
    if m == 0:
        return _scatter(idx, n, np.zeros(0, np.int64), _EMPTY_BYTES)
    v = values.astype(np.uint64, copy=False)
    vmax = int(v.max())
    width = max(1, (vmax.bit_length() + 6) // 7)
    full = np.empty((m, t + width), np.uint8)
    if t:
        full[:, :t] = np.frombuffer(tag, np.uint8)
    if width == 1:
        full[:, t] = v
        return _scatter(idx, n, np.full(m, t + 1, np.int64), full.ravel())
    nbytes = np.ones(m, np.int64)
    for k in range(1, width):
        nbytes += v >= np.uint64(1 << (7 * k))
    groups = (v[:, None] >> _SHIFTS[:width]) & np.uint64(0x7F)
    more = np.arange(width) < (nbytes[:, None] - 1)
    full[:, t:] = groups | (more.astype(np.uint64) << np.uint64(7))
    if int(nbytes.min()) == width:
        return _scatter(idx, n, nbytes + t, full.ravel())
    mask = np.ones((m, t + width), bool)
    mask[:, t:] = np.arange(width) < nbytes[:, None]
    return _scatter(idx, n, nbytes + t, full[mask])


def _tagged_fixed(tag: bytes, raw: np.ndarray, idx: np.ndarray | None, n: int) -> _Part:
    """Per selected row ``tag + little-endian bytes`` (``raw`` is a ``(m, width)`` uint8 view)."""
    m, width = raw.shape
    t = len(tag)
    full = np.empty((m, t + width), np.uint8)
    if t:
        full[:, :t] = np.frombuffer(tag, np.uint8)
    full[:, t:] = raw
    return _scatter(idx, n, np.full(m, t + width, np.int64), full.ravel())


@dataclass
class _Level:
    """One message level (or list-item level), planned but not yet written.

    ``parts`` are leaves (:class:`_Part`, bytes that exist somewhere already) or children
    (:class:`_Child`, a lower level whose bytes are still only lengths). ``lens`` is each row's
    total encoded size. Nothing is copied until :func:`_write` knows every byte's destination.
    """

    parts: list[_Part | _Child]
    lens: np.ndarray  # int64 (n,)


class _Child(NamedTuple):
    """A lower level embedded in a parent's rows.

    Singular (``offsets`` None): parent row ``i`` holds child row ``i``. Repeated: parent row
    ``i`` holds child rows ``offsets[i]:offsets[i+1]`` back to back. ``lens`` is per parent
    row, already zero where the field is absent.
    """

    level: _Level
    lens: np.ndarray
    offsets: np.ndarray | None


def _level(parts: list[_Part | _Child], n: int, valid: np.ndarray | None, tag: bytes | None) -> _Level:
    """Close a level: mask null rows, prepend ``tag + varint(len)`` headers when tagged."""
    if valid is not None:
        parts = [p._replace(lens=np.where(valid, p.lens, 0)) for p in parts]
    row_lens = np.zeros(n, np.int64)
    for p in parts:
        row_lens += p.lens
    if tag is not None:
        header = _tagged_varints(tag, row_lens, None, n)
        parts = [header, *parts]
        row_lens = row_lens + header.lens
    return _Level(parts, row_lens)


def _ranges(items: _Part, offsets: np.ndarray, valid: np.ndarray | None) -> _Part:
    """Per list row, the contiguous byte range of its items (``items`` must be contiguous)."""
    item_offsets = np.empty(len(items.starts) + 1, np.int64)
    item_offsets[:-1] = items.starts
    item_offsets[-1] = items.starts[-1] + items.lens[-1] if len(items.starts) else 0
    starts = item_offsets[offsets[:-1]]
    lens = item_offsets[offsets[1:]] - starts
    if valid is not None:
        lens = np.where(valid, lens, 0)
    return _Part(starts, lens, items.data)


def _repeated_child(level: _Level, offsets: np.ndarray, valid: np.ndarray | None) -> _Child:
    """Embed an item level into list rows: each row's size is the sum of its items' sizes."""
    item_end = np.empty(len(level.lens) + 1, np.int64)
    item_end[0] = 0
    np.cumsum(level.lens, out=item_end[1:])
    lens = item_end[offsets[1:]] - item_end[offsets[:-1]]
    if valid is not None:
        lens = np.where(valid, lens, 0)
    return _Child(level, lens, offsets)


_Segments = list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def _place(level: _Level, dest: np.ndarray, alive: np.ndarray | None, segments: _Segments) -> None:
    """Top-down: give every part of every live row its output offset, collecting leaf segments.

    Within a row parts follow each other (a cumulative sum across the ``(n, parts)`` length
    matrix); a child row starts where its parent part does, list items additionally at their
    running offset within the list.
    """
    parts = level.parts
    if not parts:
        return
    lens = np.stack([p.lens for p in parts], axis=1)
    if alive is not None:
        lens *= alive[:, None]
    at = np.cumsum(lens, axis=1)
    at -= lens
    at += dest[:, None]
    for j, part in enumerate(parts):
        if isinstance(part, _Part):
            segments.append((part.starts, lens[:, j], at[:, j], part.data))
        elif part.offsets is None:
            present = lens[:, j] > 0
            _place(part.level, at[:, j], None if present.all() else present, segments)
        else:
            offsets = part.offsets
            first, last = int(offsets[0]), int(offsets[-1])
            child_n = len(part.level.lens)
            item_at = np.zeros(child_n + 1, np.int64)
            np.cumsum(part.level.lens, out=item_at[1:])
            parent = np.repeat(np.arange(len(lens)), np.diff(offsets))
            # item start = parent part start + (item offset - offset of its list's first item)
            list_base = at[:, j] - item_at[offsets[:-1]]
            item_at = item_at[:child_n]
            item_at[first:last] += list_base[parent]
            live = lens[parent, j] > 0
            if first == 0 and last == child_n and live.all():
                item_alive = None
            else:
                item_alive = np.zeros(child_n, bool)
                item_alive[first:last] = live
            _place(part.level, item_at, item_alive, segments)


def _write(level: _Level) -> tuple[np.ndarray, np.ndarray]:
    """Every leaf byte copied once into its final place → (row offsets, bytes).

    Segments arrive grouped by field, not in output order. A counting sort on their distinct
    destinations gives the output order; the copy itself is Arrow's ``take`` over a binary
    array whose elements are the segments (one ``memcpy`` each in C++, where a numpy per-byte
    index would cost several passes over the output).
    """
    row_offsets = np.empty(len(level.lens) + 1, np.int64)
    row_offsets[0] = 0
    np.cumsum(level.lens, out=row_offsets[1:])
    total = int(row_offsets[-1])
    if total >= 2**31:
        raise OverflowError("encoded output exceeds 2 GiB; encode fewer rows per call")
    segments: _Segments = []
    _place(level, row_offsets[:-1], None, segments)
    if total == 0:
        return row_offsets, _EMPTY_BYTES
    pool = []
    srcs, lens, dsts = [], [], []
    base = 0
    for starts, seg_lens, at, data in segments:
        keep = np.flatnonzero(seg_lens)
        if keep.size == 0:
            continue
        srcs.append(starts[keep] + base)
        lens.append(seg_lens[keep])
        dsts.append(at[keep])
        pool.append(data)
        base += data.size
    seg_lens = np.concatenate(lens)
    dst = np.concatenate(dsts)
    if int(seg_lens.sum()) != total:
        raise AssertionError("arrow_encode: segments do not tile the output (bug)")
    # Output order of the segments by a counting sort on their (distinct) destinations.
    itype = np.int32 if len(dst) < 2**31 else np.int64
    slot = np.empty(total, itype)
    slot[dst] = np.arange(len(dst), dtype=itype)
    is_start = np.zeros(total, bool)
    is_start[dst] = True
    order = slot[np.flatnonzero(is_start)]
    # Every segment (and the gap after it) as an element of one BinaryArray over the pool;
    # within a leaf group segments are ordered and disjoint, and groups follow each other.
    src = np.concatenate(srcs)
    bounds = np.empty(2 * len(src), np.int64)
    bounds[0::2] = src
    bounds[1::2] = src + seg_lens
    if base >= 2**31:
        raise OverflowError("arrow_encode: input buffers exceed 2 GiB; encode fewer rows")
    data = np.concatenate(pool) if len(pool) > 1 else pool[0]
    elements = pa.BinaryArray.from_buffers(
        pa.binary(),
        len(bounds) - 1,
        [None, pa.py_buffer(bounds.astype(np.int32)), pa.py_buffer(data)],
    )
    gathered = elements.take(pa.array(order.astype(np.int64) * 2))
    bufs = gathered.buffers()
    first = np.frombuffer(bufs[1], np.int32, 1, gathered.offset * 4)[0]
    out = np.frombuffer(bufs[2], np.uint8, total, int(first))
    return row_offsets, out


# --------------------------------------------------------------------------------------------
# Arrow access
# --------------------------------------------------------------------------------------------


def _validity(arr: pa.Array) -> np.ndarray | None:
    """Boolean validity, or None when there are no nulls (the common, free case)."""
    if arr.null_count == 0:
        return None
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _offsets(arr: pa.Array) -> np.ndarray:
    """The n+1 offsets of a (large) string/binary/list array, honouring its slice offset."""
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    large = large or pa.types.is_large_list(arr.type)
    dtype = np.int64 if large else np.int32
    buf = arr.buffers()[1]
    if buf is None:
        return np.zeros(len(arr) + 1, np.int64)
    return np.frombuffer(buf, dtype, len(arr) + 1, arr.offset * np.dtype(dtype).itemsize).astype(np.int64)


def _binary_segments(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, lens, data) of a string/binary array, in place over its data buffer."""
    offsets = _offsets(arr)
    buf = arr.buffers()[2]
    data = _EMPTY_BYTES if buf is None else np.frombuffer(buf, np.uint8)
    return offsets[:-1], np.diff(offsets), data


def _numeric(arr: pa.Array) -> np.ndarray:
    """Values as numpy (null slots arbitrary, callers mask); bool comes back as bool."""
    if pa.types.is_boolean(arr.type):
        return arr.fill_null(False).to_numpy(zero_copy_only=False)
    if arr.null_count:
        arr = arr.fill_null(0)
    return arr.to_numpy(zero_copy_only=False)


def _is_binaryish(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_listish(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t)


# --------------------------------------------------------------------------------------------
# Per field
# --------------------------------------------------------------------------------------------


@cache
def _plans(descriptor: Descriptor) -> tuple[_FieldPlan, ...]:
    """Fields in field-number order (upb's serialization order) with their tags."""
    plans = []
    for field in sorted(descriptor.fields, key=lambda f: f.number):
        if field.type in _MESSAGE_TYPES or field.type in _LEN_TYPES:
            wire = 2
        elif field.is_repeated and field.is_packed:
            wire = 2
        elif field.type in _FIXED32_TYPES:
            wire = 5
        elif field.type in _FIXED64_TYPES:
            wire = 1
        else:
            wire = 0
        scalar_wire = 5 if field.type in _FIXED32_TYPES else 1 if field.type in _FIXED64_TYPES else 0
        plans.append(_FieldPlan(field, _tag(field.number, wire), _tag(field.number, scalar_wire)))
    return tuple(plans)


def _scalar_values(values: np.ndarray, ftype: int) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Wire form of numeric values: (varint uint64s | None, fixed-width byte rows | None, bits).

    ``bits`` is an unsigned view whose non-zero entries are the non-default values (bitwise,
    so ``-0.0`` counts as set, as in upb).
    """
    if ftype in _VARINT_TYPES:
        if values.dtype == np.bool_:
            v = values.astype(np.uint64)
        else:  # int32/enum negatives are sign-extended to 10-byte varints, as protobuf does
            v = values.astype(np.int64, copy=False).view(np.uint64)
        return v, None, v
    if ftype in _ZIGZAG_TYPES:
        s = values.astype(np.int64, copy=False)
        v = ((s << np.int64(1)) ^ (s >> np.int64(63))).view(np.uint64)
        return v, None, v
    if ftype in _FIXED32_TYPES:
        dtype = {_F.TYPE_FIXED32: "<u4", _F.TYPE_SFIXED32: "<i4", _F.TYPE_FLOAT: "<f4"}[ftype]
        w = np.ascontiguousarray(values, dtype=dtype)
        return None, w.view(np.uint8).reshape(-1, 4), w.view(np.uint32)
    if ftype in _FIXED64_TYPES:
        dtype = {_F.TYPE_FIXED64: "<u8", _F.TYPE_SFIXED64: "<i8", _F.TYPE_DOUBLE: "<f8"}[ftype]
        w = np.ascontiguousarray(values, dtype=dtype)
        return None, w.view(np.uint8).reshape(-1, 8), w.view(np.uint64)
    raise TypeError(f"not a numeric protobuf type: {ftype}")


def _unsupported(field: FieldDescriptor, arrow_type: pa.DataType) -> TypeError:
    return TypeError(f"{field.full_name}: Arrow type {arrow_type} is not a ptars default-config shape")


def _length_delimited(tag: bytes, col: pa.Array, present: np.ndarray | None) -> list[_Part]:
    """``tag + varint(len) + bytes`` for rows where ``present`` (all rows when None)."""
    starts, lens, data = _binary_segments(col)
    n = len(col)
    idx = None if present is None else np.flatnonzero(present)
    if idx is not None and idx.size == 0:
        return []
    header = _tagged_varints(tag, lens if idx is None else lens[idx], idx, n)
    body_lens = lens if present is None else np.where(present, lens, 0)
    return [header, _Part(starts, body_lens, data)]


def _singular_parts(plan: _FieldPlan, col: pa.Array, force: bool) -> list[_Part]:
    field = plan.field
    n = len(col)
    if col.null_count == n:
        return []
    valid = _validity(col)
    t = col.type
    if field.type in _MESSAGE_TYPES:
        if pa.types.is_struct(t):
            child = _encode_struct(col, field.message_type, plan.tag)
            lens = child.lens if valid is None else np.where(valid, child.lens, 0)
            return [_Child(child, lens, None)]
        if _is_binaryish(t):  # a recursive message ptars kept serialized
            return _length_delimited(plan.tag, col, valid)
        raise _unsupported(field, t)
    if field.type in _LEN_TYPES:
        if not _is_binaryish(t):
            raise _unsupported(field, t)
        if force or field.has_presence:
            return _length_delimited(plan.tag, col, valid)
        lens = np.diff(_offsets(col))
        present = lens > 0
        if valid is not None:
            present &= valid
        return _length_delimited(plan.tag, col, present)
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        raise _unsupported(field, t)
    varints, fixed, bits = _scalar_values(_numeric(col), field.type)
    if force or field.has_presence:
        present = valid
    else:
        present = bits != 0
        if valid is not None:
            present &= valid
    if present is None:
        idx = None
    else:
        idx = np.flatnonzero(present)
        if idx.size == 0:
            return []
        if idx.size == n:
            idx = None
    if varints is not None:
        return [_tagged_varints(plan.tag, varints if idx is None else varints[idx], idx, n)]
    return [_tagged_fixed(plan.tag, fixed if idx is None else fixed[idx], idx, n)]


def _repeated_parts(plan: _FieldPlan, col: pa.Array) -> list[_Part]:
    field = plan.field
    t = col.type
    if not _is_listish(t):
        raise _unsupported(field, t)
    if col.null_count == len(col):
        return []
    offsets = _offsets(col)
    if offsets[-1] == offsets[0]:
        return []
    valid = _validity(col)
    values = col.values
    vt = values.type
    if field.type in _MESSAGE_TYPES and pa.types.is_struct(vt):
        items = _encode_struct(values, field.message_type, plan.tag)
        return [_repeated_child(items, offsets, valid)]
    if field.type in _MESSAGE_TYPES or field.type in _LEN_TYPES:
        if not _is_binaryish(vt):
            raise _unsupported(field, vt)
        items = _level(_length_delimited(plan.tag, values, None), len(values), None, None)
        return [_repeated_child(items, offsets, valid)]
    if not (pa.types.is_integer(vt) or pa.types.is_floating(vt) or pa.types.is_boolean(vt)):
        raise _unsupported(field, vt)
    varints, fixed, _ = _scalar_values(_numeric(values), field.type)
    m = len(values)
    if not field.is_packed:
        if varints is not None:
            items = _tagged_varints(plan.element_tag, varints, None, m)
        else:
            items = _tagged_fixed(plan.element_tag, fixed, None, m)
        return [_ranges(items, offsets, valid)]
    if varints is not None:
        items = _tagged_varints(b"", varints, None, m)
    else:
        width = fixed.shape[1]
        lens = np.full(m, width, np.int64)
        items = _Part(np.arange(m, dtype=np.int64) * width, lens, fixed.reshape(-1))
    body = _ranges(items, offsets, valid)
    idx = np.flatnonzero(body.lens)
    if idx.size == 0:
        return []
    header = _tagged_varints(plan.tag, body.lens[idx], idx, len(col))
    return [header, body]


def _encode_struct(arr: pa.StructArray, descriptor: Descriptor, tag: bytes | None) -> _Level:
    """All rows of one message level → contiguous bytes (with ``tag + len`` headers if tagged).

    Fields missing from the struct type are treated as absent. Null rows get an empty body.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    force = descriptor.GetOptions().map_entry
    parts: list[_Part | _Child] = []
    struct_type = arr.type
    for plan in _plans(descriptor):
        i = struct_type.get_field_index(plan.field.name)
        if i < 0:
            continue
        col = arr.field(i)
        if plan.field.is_repeated:
            parts.extend(_repeated_parts(plan, col))
        else:
            parts.extend(_singular_parts(plan, col, force))
    return _level(parts, len(arr), _validity(arr), tag)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _to_binary_array(level: _Level) -> pa.BinaryArray:
    offsets, data = _write(level)
    return pa.BinaryArray.from_buffers(
        pa.binary(),
        len(level.lens),
        [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)],
    )


def encode_messages(array: pa.StructArray, descriptor: Descriptor) -> pa.BinaryArray:
    """One serialized message per row of ``array`` (a ptars-shaped struct array for ``descriptor``).

    Parses back (``Message.FromString``) to a message equal to the one ptars decoded, including
    recursive fields (which ptars' own encoder drops). A null row gives ``b""``.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_struct(array.type):
        raise TypeError(f"expected a struct array for {descriptor.full_name}, got {array.type}")
    return _to_binary_array(_encode_struct(array, descriptor, None))


def encode_record_batch(batch: pa.RecordBatch, descriptor: Descriptor) -> pa.BinaryArray:
    """One serialized message per row of a ptars ``list_to_record_batch`` result."""
    struct = pa.StructArray.from_arrays(batch.columns, fields=list(batch.schema))
    return encode_messages(struct, descriptor)


def encode_request(batch_column: pa.Array | pa.RecordBatch, descriptor: Descriptor) -> bytes:
    """ptars' column 0 for one payload (e.g. ``resource_spans``) → that payload's bytes.

    ``batch_column`` is taken as the column of the descriptor's first declared field (ptars'
    column order) and any other fields as absent — right for the OTLP ``Export*Request``
    messages, which have a single field. A whole ``RecordBatch`` is accepted too.
    """
    if isinstance(batch_column, pa.RecordBatch):
        struct = pa.StructArray.from_arrays(batch_column.columns, fields=list(batch_column.schema))
    else:
        if isinstance(batch_column, pa.ChunkedArray):
            batch_column = batch_column.combine_chunks()
        name = descriptor.fields[0].name
        struct = pa.StructArray.from_arrays([batch_column], names=[name])
    if len(struct) != 1:
        raise ValueError(f"expected one payload, got {len(struct)} rows")
    _, data = _write(_encode_struct(struct, descriptor, None))
    return data.tobytes()
