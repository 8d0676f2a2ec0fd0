"""What decoded logs look like in memory and on disk, and the limits every ingest path applies.

In memory a decoded request is a :class:`LogBatch`: the streams it touches and its entries in
:data:`lookout.logs.model.ENTRY_SCHEMA` (the engine's contract), so that the head can serve
queries without any conversion.

On disk (``blocks/<tenant>/logs/...``) the block table is :data:`BLOCK_SCHEMA`: the entry
columns plus *dedicated* columns for the few structured-metadata values that are random per
line (``trace_id``, ``span_id``, ``observed_timestamp`` as its distance from ``ts``). Those
values would otherwise sit in the one Parquet column that holds every metadata value, defeat its
dictionary and cost their text size. The map keeps the key with an empty placeholder value (so
the entry's metadata order is kept exactly) and the dedicated column holds the value in binary; a
null dedicated column means "no placeholder, the map value is real". See :mod:`lookout.logs.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from lookout.logs.model import ENTRY_SCHEMA

SIGNAL = "logs"
# log text compresses ~4x: merging at most this many stored bytes keeps a block's line column
# well under Arrow's 2 GiB string-offset limit when compaction sorts it
MAX_COMPACTION_INPUT_BYTES = 192 << 20

BLOCK_SCHEMA = pa.schema(
    [
        pa.field("stream_id", pa.uint64(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("line", pa.string(), nullable=False),
        pa.field("metadata", pa.map_(pa.string(), pa.string())),
        pa.field("trace_id", pa.binary(16)),  # dedicated: metadata["trace_id"] as 16 raw bytes
        pa.field("span_id", pa.binary(8)),  # dedicated: metadata["span_id"] as 8 raw bytes
        pa.field("observed_delta", pa.int64()),  # dedicated: metadata["observed_timestamp"] - ts
        # The stream's labels as sorted JSON. Runs of one value per stream cost ~0 bytes after
        # dictionary + RLE, and make every block self-describing: the stream index sidecar and
        # compaction need nothing but the data file.
        pa.field("labels", pa.string(), nullable=False),
    ]
)

SORT_KEYS = [("stream_id", "ascending"), ("ts", "ascending")]
TIME_COLUMN = "ts"
KEY_COLUMN = "stream_id"

PARQUET_WRITER_OPTIONS = {
    # Stream ids run in long runs (RLE over a dictionary: ~0 bytes/line); metadata keys and most
    # metadata values repeat (resource attributes, severity, scope); lines are mostly unique, so a
    # dictionary there only costs bytes until the writer gives up on it.
    "use_dictionary": ["stream_id", "labels", "metadata.key_value.key", "metadata.key_value.value"],
    # Sorted per stream, times are nearly monotonic: delta encoding then zstd beats plain+zstd.
    "column_encoding": {"ts": "DELTA_BINARY_PACKED", "observed_delta": "DELTA_BINARY_PACKED"},
}
"""The log block layout handed to the signal-agnostic block writer (figures in the bench)."""

FLUSH_ZSTD_LEVEL = 3
COMPACTED_ZSTD_LEVEL = 9
"""Compaction rewrites cold data once, so it can afford a slower, tighter zstd level."""


@dataclass(slots=True)
class LogBatch:
    """One decoded request (OTLP or Loki push): ``streams`` maps every ``stream_id`` used in
    ``entries`` to its labels; ``entries`` follows ``ENTRY_SCHEMA`` in request order (not sorted).
    ``refused`` counts entries the decoder dropped, by Loki's reason names (``line_too_long``,
    ``max_label_names_per_series``, ...), so that the caller can report a partial success and the
    store can count them."""

    streams: dict[int, dict[str, str]]
    entries: pa.Table
    refused: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> LogBatch:
        return cls({}, ENTRY_SCHEMA.empty_table())

    @property
    def num_entries(self) -> int:
        return self.entries.num_rows


@dataclass(slots=True)
class LogLimits:
    """Per-tenant limits the store enforces on append (Loki's ``limits_config`` names in
    comments). Entries over a limit are refused and counted by reason, never silently lost."""

    max_streams_per_tenant: int = 10_000  # max_global_streams_per_user (Loki default 5000)
    reject_old_samples_max_age_s: float = 7 * 86400.0  # reject_old_samples_max_age (1w); <= 0: off
    creation_grace_period_s: float = 600.0  # creation_grace_period (10m): how far in the future
    max_line_bytes: int = 256 * 1024  # max_line_size (256KB); 0: no limit


def merge_refused(into: dict[str, int], other: dict[str, int]) -> dict[str, int]:
    for reason, n in other.items():
        if n:
            into[reason] = into.get(reason, 0) + n
    return into


def map_parts(md: pa.MapArray) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """(offsets from 0, keys, values) of a map array, honouring its slice offset."""
    if isinstance(md, pa.ChunkedArray):
        md = md.combine_chunks()
    offs = md.offsets.to_numpy().astype(np.int64)
    lo, hi = int(offs[0]), int(offs[-1])
    return offs - lo, md.keys.slice(lo, hi - lo), md.items.slice(lo, hi - lo)


def map_rows(offsets: np.ndarray) -> np.ndarray:
    """The row of every map item, from :func:`map_parts` offsets."""
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
