"""Entries (``ENTRY_SCHEMA``) ⇄ block rows (``BLOCK_SCHEMA``), vectorized and lossless.

Three structured-metadata values are random per line and would dominate the one Parquet column
that holds all metadata values: ``trace_id`` (32 hex chars), ``span_id`` (16) and
``observed_timestamp`` (19 digits). :func:`encode` moves each into a dedicated binary/int column
and leaves the key in the map with an empty placeholder, so the map keeps its exact order and
:func:`decode` can put the value back. It only does so when the value has the canonical form
(lowercase hex of the right length, a canonical decimal) and the key occurs once in the entry;
anything else stays in the map untouched and the dedicated column is null.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.logs.model import ENTRY_SCHEMA
from lookout.logs.otlp_logs import hex_ids
from lookout.logs.schema import BLOCK_SCHEMA, map_parts, map_rows

_NIBBLE = np.full(256, 255, np.uint8)
_NIBBLE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_NIBBLE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)

# metadata key, dedicated column, id size in bytes (0: an int64 column)
DEDICATED = (("trace_id", "trace_id", 16), ("span_id", "span_id", 8), ("observed_timestamp", "observed_delta", 0))
_MD_TYPE = ENTRY_SCHEMA.field("metadata").type
_INT64_MAX_TEXT = str(2**63 - 1)


def labels_json(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _unhex(values: pa.Array, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(ok mask, raw ids (m, size)) of strings that are lowercase hex of exactly ``size`` bytes."""
    m = len(values)
    ok = pc.equal(pc.binary_length(values), 2 * size).to_numpy(zero_copy_only=False)
    raw = np.zeros((m, size), np.uint8)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return ok, raw
    fixed = pc.cast(pc.cast(values.take(pa.array(idx)), pa.binary()), pa.binary(2 * size))
    chars = np.frombuffer(fixed.buffers()[1], np.uint8, (fixed.offset + idx.size) * 2 * size)
    chars = chars[fixed.offset * 2 * size:].reshape(idx.size, 2 * size)
    nib = _NIBBLE[chars]
    good = (nib != 255).all(axis=1)
    raw[idx] = (nib[:, 0::2] << 4) | nib[:, 1::2]
    ok[idx[~good]] = False
    return ok, raw


def _canonical_ints(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(ok mask, values) of strings that are canonical non-negative int64 decimals."""
    short = pc.match_substring_regex(values, r"^(0|[1-9][0-9]{0,17})$")
    long = pc.and_(pc.match_substring_regex(values, r"^[1-9][0-9]{18}$"), pc.less_equal(values, _INT64_MAX_TEXT))
    ok = pc.or_(short, long).to_numpy(zero_copy_only=False)
    out = np.zeros(len(values), np.int64)
    idx = np.flatnonzero(ok)
    if idx.size:
        out[idx] = pc.cast(values.take(pa.array(idx)), pa.int64()).to_numpy()
    return ok, out


def _fixed_column(n: int, rows: np.ndarray, raw: np.ndarray, size: int) -> pa.Array:
    data = np.zeros((n, size), np.uint8)
    data[rows] = raw
    valid = np.zeros(n, bool)
    valid[rows] = True
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(size), n, [bitmap, pa.py_buffer(data.tobytes())])


def encode(entries: pa.Table, streams: dict[int, dict[str, str]]) -> pa.Table:
    """ENTRY rows of one tenant → BLOCK rows (same order); ``streams`` must cover every id."""
    n = entries.num_rows
    md = entries.column("metadata").combine_chunks()
    offsets, keys, values = map_parts(md)
    rows = map_rows(offsets)
    out: dict[str, pa.Array] = {}
    for key, column, size in DEDICATED:
        is_key = pc.equal(keys, key).to_numpy(zero_copy_only=False)
        once = np.bincount(rows[is_key], minlength=n) == 1
        cand = np.flatnonzero(is_key & once[rows])
        vals = values.take(pa.array(cand))
        ok, parsed = _unhex(vals, size) if size else _canonical_ints(vals)
        items = cand[ok]
        if size:
            out[column] = _fixed_column(n, rows[items], parsed[ok], size)
        else:
            col = np.zeros(n, np.int64)
            ts = entries.column("ts").to_numpy()
            with np.errstate(over="ignore"):  # wraps exactly; decode adds it back modulo 2**64
                col[rows[items]] = parsed[ok] - ts[rows[items]]
            valid = np.zeros(n, bool)
            valid[rows[items]] = True
            out[column] = pa.array(col, pa.int64(), mask=~valid)
        if items.size:
            mask = np.zeros(len(values), bool)
            mask[items] = True
            values = pc.if_else(pa.array(mask), pa.scalar("", pa.string()), values)
    new_md = pa.MapArray.from_arrays(pa.array(offsets.astype(np.int32)), keys, values, type=_MD_TYPE)
    sids = entries.column("stream_id").combine_chunks()
    uniq = pc.unique(sids)
    texts = pa.array([labels_json(streams[s]) for s in uniq.to_pylist()], pa.string())
    labels = texts.take(pc.index_in(sids, value_set=uniq))
    return pa.Table.from_arrays(
        [sids, entries.column("ts").combine_chunks(), entries.column("line").combine_chunks(), new_md,
         out["trace_id"], out["span_id"], out["observed_delta"], labels], schema=BLOCK_SCHEMA)


def decode(rows: pa.Table) -> pa.Table:
    """BLOCK rows (any subset of rows, at least the entry and dedicated columns) → ENTRY rows."""
    md = rows.column("metadata").combine_chunks()
    offsets, keys, values = map_parts(md)
    item_rows = map_rows(offsets)
    for key, column, size in DEDICATED:
        if column not in rows.column_names:
            continue
        col = rows.column(column).combine_chunks()
        if col.null_count == len(col):
            continue
        has = col.is_valid().to_numpy(zero_copy_only=False)
        mask = pc.equal(keys, key).to_numpy(zero_copy_only=False) & has[item_rows]
        present = col.drop_null()
        if not size:
            ts = rows.column("ts").combine_chunks().filter(col.is_valid()).to_numpy()
            with np.errstate(over="ignore"):
                present = pa.array(present.to_numpy() + ts, pa.int64())
        text = hex_ids(present, size) if size else pc.cast(present, pa.string())
        values = pc.replace_with_mask(values, pa.array(mask), text)
    new_md = pa.MapArray.from_arrays(pa.array(offsets.astype(np.int32)), keys, values, type=_MD_TYPE)
    return pa.Table.from_arrays(
        [rows.column("stream_id").combine_chunks(), rows.column("ts").combine_chunks(),
         rows.column("line").combine_chunks(), new_md], schema=ENTRY_SCHEMA)
