"""The per-block trace-id sidecar: sorted unique 64-bit prefixes of the block's trace ids.

About 1 byte per span after compression of typical traces (8 bytes per trace), built in numpy at
millions of ids per second, probed with one ``searchsorted`` (hot-path-measurements.md section 3,
"sidecar trace index"). A hit means "this block may hold the trace"; the row-group min/max keys
in meta.json then narrow the read to one row group.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

SIDECAR = "trace_ids.u64"


def id_prefixes(trace_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Big-endian uint64 of the first 8 bytes of each 16-byte id, vectorised over the buffer."""
    if isinstance(trace_ids, pa.ChunkedArray):
        trace_ids = trace_ids.combine_chunks()
    if len(trace_ids) == 0:
        return np.empty(0, dtype=np.uint64)
    data = trace_ids.buffers()[1]
    raw = np.frombuffer(data, dtype=np.uint8, count=(trace_ids.offset + len(trace_ids)) * 16)
    rows = raw.reshape(-1, 16)[trace_ids.offset:, :8]
    return np.ascontiguousarray(rows).view(">u8").ravel().astype(np.uint64)


def build(table: pa.Table) -> dict[str, bytes]:
    return {SIDECAR: np.unique(id_prefixes(table.column("trace_id"))).tobytes()}


def load(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint64)


def may_contain(index: np.ndarray, trace_id: bytes) -> bool:
    prefix = np.uint64(int.from_bytes(trace_id[:8], "big"))
    i = int(np.searchsorted(index, prefix))
    return i < len(index) and index[i] == prefix
