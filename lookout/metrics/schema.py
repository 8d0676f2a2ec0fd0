"""On-disk layout of metric blocks and the canonical series identity.

A metrics block (``blocks/<tenant>/metrics/<day>/<id>/``) holds:

- ``data.parquet``: one row per sample, sorted by ``(series_id, t)``. ``t`` is held in Arrow as
  ``timestamp[ns]`` only so that the signal-agnostic :class:`~lookout.storage.blocks.BlockStore`
  derives ``min_time_ns``/``max_time_ns`` (day directory, retention, compaction windows) from it;
  the writer coerces it to milliseconds, so the file column is a plain int64 of Unix ms
  (``TIMESTAMP(MILLIS)``), delta-encoded: regular scrapes cost next to nothing.
- ``series.parquet`` (sidecar): one row per series in the block: ``series_id``, its labels, and
  where its rows are (``row_start``, ``rows``) plus its time range, so a query reads only the row
  groups of the series it selected.
- ``exemplars.parquet`` (sidecar, when any): ``series_id, t, v, labels``.
- ``metadata.json`` (sidecar): metric family metadata known when the block was written.

The series id is ``xxh64`` of the canonical label string ``name 0xFF value 0xFF name ...``
(labels sorted by name), stable across processes and versions, so the same series merges across
the head and every block.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from lookout.metrics.batch import LABELS

SIGNAL = "metrics"
SEP = b"\xff"  # never part of valid UTF-8, so it cannot occur inside a label name or value
# built once: converting a Python value per call makes pyarrow retry a failing optional import
_SEP_SCALAR = pa.scalar(SEP, pa.binary())

SERIES_SIDECAR = "series.parquet"
EXEMPLARS_SIDECAR = "exemplars.parquet"
METADATA_SIDECAR = "metadata.json"

# ms * 1e6 must fit an int64 of nanoseconds (the BlockStore time column): about ±292 years.
MAX_ABS_T_MS = (2**63 - 1) // 1_000_000

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.uint64(), nullable=False),
        pa.field("t", pa.timestamp("ns"), nullable=False),  # written to Parquet as int64 ms
        pa.field("v", pa.float64(), nullable=False),
    ]
)
SORT_KEYS = [("series_id", "ascending"), ("t", "ascending")]
TIME_COLUMN = "t"
KEY_COLUMN = "series_id"

SERIES_TABLE_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.uint64(), nullable=False),
        pa.field("labels", LABELS, nullable=False),
        pa.field("row_start", pa.int64(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("min_t", pa.int64(), nullable=False),  # ms
        pa.field("max_t", pa.int64(), nullable=False),
    ]
)

EXEMPLARS_TABLE_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.uint64(), nullable=False),
        pa.field("t", pa.int64(), nullable=False),  # ms
        pa.field("v", pa.float64(), nullable=False),
        pa.field("labels", LABELS, nullable=False),
    ]
)

# Measured with bench/bench_metrics_store.py: no dictionaries (they lose on hashed ids, times and
# values), delta for the sorted ids and the times, byte-stream-split for values (zstd then finds
# the slowly changing exponent and high mantissa bytes).
PARQUET_WRITER_OPTIONS: dict[str, Any] = {
    "use_dictionary": False,
    "column_encoding": {"series_id": "DELTA_BINARY_PACKED", "t": "DELTA_BINARY_PACKED", "v": "BYTE_STREAM_SPLIT"},
    "coerce_timestamps": "ms",
    "allow_truncated_timestamps": False,
    "write_statistics": True,
}
ZSTD_LEVEL = 3
COMPACTED_ZSTD_LEVEL = 6


# ---- series identity --------------------------------------------------------------------------


def canonical_keys(labels: pa.Array) -> pa.Array:
    """The canonical key (``n1 FF v1 FF n2 FF v2``) of every row of a ``list<struct<name,value>>``
    array, built in Arrow without a Python loop. Rows must already be sorted by name."""
    labels = _plain_list(labels)
    flat = labels.flatten()
    names = flat.field("name").cast(pa.binary())
    values = flat.field("value").cast(pa.binary())
    pairs = pc.binary_join_element_wise(names, values, _SEP_SCALAR)
    per_row = pa.ListArray.from_arrays(_offsets(labels), pairs)
    return pc.binary_join(per_row, _SEP_SCALAR)


def _plain_list(labels: pa.Array | pa.ChunkedArray) -> pa.ListArray:
    if isinstance(labels, pa.ChunkedArray):
        labels = labels.combine_chunks() if labels.num_chunks != 1 else labels.chunk(0)
    return labels


def _offsets(labels: pa.ListArray) -> pa.Array:
    """Offsets of a possibly sliced list array, rebased to its flattened values."""
    off = labels.offsets
    if len(labels) and off[0].as_py() != 0:
        np_off = off.to_numpy()
        off = pa.array(np_off - np_off[0], off.type)
    return off


def series_id(key: bytes) -> int:
    return xxhash.xxh64_intdigest(key)


def labels_from_keys(keys: list[bytes]) -> pa.ListArray:
    """Canonical keys back to a ``list<struct<name,value>>`` array, vectorised (flush path)."""
    arr = pa.array(keys, pa.binary())
    parts = pc.split_pattern(arr, pattern=SEP)
    flat = parts.flatten()
    n = len(flat)
    names = flat.take(pa.array(np.arange(0, n, 2))).cast(pa.string())
    values = flat.take(pa.array(np.arange(1, n, 2))).cast(pa.string())
    structs = pa.StructArray.from_arrays([names, values], fields=list(LABELS.value_type))
    offsets = pa.array(np.asarray(_offsets(parts).to_numpy()) // 2, pa.int32())
    return pa.ListArray.from_arrays(offsets, structs, type=LABELS)


def key_to_dict(key: bytes) -> dict[str, str]:
    """One canonical key as a label dict (query results; per selected series only)."""
    if not key:
        return {}
    parts = key.decode("utf-8", "surrogateescape").split("\udcff")
    return dict(zip(parts[0::2], parts[1::2], strict=True))


def key_pairs(key: bytes) -> list[tuple[str, str]]:
    return list(key_to_dict(key).items())


def normalize_labels(pairs: list[dict[str, str]]) -> list[dict[str, str]]:
    """Sort by name, drop empty values, keep the last of repeated names (the slow path for
    producers that break the batch contract; per offending series only)."""
    merged: dict[str, str] = {}
    for p in pairs:
        merged[p["name"]] = p["value"]
    return [{"name": n, "value": v} for n, v in sorted(merged.items()) if v != ""]


# ---- sidecar (de)serialisation ----------------------------------------------------------------


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", compression_level=ZSTD_LEVEL)
    return buf.getvalue()


def parquet_bytes_to_table(blob: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(blob))


def metadata_to_json(entries: dict[str, dict[str, str]]) -> bytes:
    return json.dumps(entries, sort_keys=True, separators=(",", ":")).encode()


def metadata_from_json(blob: bytes) -> dict[str, dict[str, str]]:
    return json.loads(blob)
