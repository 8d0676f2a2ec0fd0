"""Per-block log sidecars: the stream index and the per-row-group trace-id bloom filters.

``streams.arrow`` (Arrow IPC) has one row per stream of the block: ``stream_id``, ``labels``
(sorted JSON), the stream's row range ``first_row``/``rows`` in the sorted data file, its
``min_ts``/``max_ts`` and ``line_bytes``. A query matches its label matchers against this
(cached) table, then reads only the row groups covering the matched row ranges.

``trace_ids.bloom``: one bloom filter per row group over the 16-byte ids of the dedicated
``trace_id`` column (10 bits per distinct id, k = 7, about 1 % false positives), so a
``trace_id`` hint reads only row groups that may hold it, and skips blocks where none may. A row
group with a trace id that is not in the dedicated column (non-canonical text, a duplicated key)
is flagged and always read, so the filter never hides a match.

Both are built from the sorted block table alone; see :func:`build`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.logs.model import LabelMatcher
from lookout.logs.schema import map_parts, map_rows

STREAMS = "streams.arrow"
BLOOM = "trace_ids.bloom"
_K = 7
_BITS_PER_ID = 10
_M1, _M2, _M3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _M1
        z = (z ^ (z >> np.uint64(30))) * _M2
        z = (z ^ (z >> np.uint64(27))) * _M3
        return z ^ (z >> np.uint64(31))


def _positions(ids: np.ndarray, m_bits: int) -> np.ndarray:
    """(len(ids), k) bit positions of 16-byte ids given as an (n, 16) uint8 matrix.

    Every position is its own splitmix64 of (id hash, i), so ids that share half their bytes
    (legacy or test ids) still spread over the whole filter."""
    words = np.ascontiguousarray(ids).view(">u8").astype(np.uint64)
    h = _splitmix(words[:, 0] ^ _splitmix(words[:, 1]))
    i = np.arange(1, _K + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return _splitmix(h[:, None] ^ (i[None, :] * _M3)) % np.uint64(m_bits)


def _id_matrix(col: pa.Array) -> np.ndarray:
    present = col.drop_null()
    if len(present) == 0:
        return np.empty((0, 16), np.uint8)
    raw = np.frombuffer(present.buffers()[1], np.uint8, (present.offset + len(present)) * 16)
    return raw[present.offset * 16:].reshape(-1, 16)


def _stream_table(table: pa.Table) -> pa.Table:
    sids = table.column("stream_id").to_numpy()
    n = len(sids)
    starts = np.flatnonzero(np.r_[True, sids[1:] != sids[:-1]]) if n else np.empty(0, np.int64)
    ends = np.r_[starts[1:], n] if n else starts
    ts = table.column("ts").to_numpy()
    sizes = pc.binary_length(table.column("line")).to_numpy().astype(np.int64) if n else np.empty(0, np.int64)
    line_bytes = np.add.reduceat(sizes, starts) if n else sizes
    take = pa.array(starts)
    return pa.table({
        "stream_id": pa.array(sids[starts], pa.uint64()),
        "labels": table.column("labels").take(take),
        "first_row": pa.array(starts, pa.int64()),
        "rows": pa.array(ends - starts, pa.int64()),
        "min_ts": pa.array(ts[starts], pa.int64()),
        "max_ts": pa.array(ts[ends - 1], pa.int64()),
        "line_bytes": pa.array(line_bytes, pa.int64()),
    })


def _loose_trace_rows(table: pa.Table) -> np.ndarray:
    """Rows with a non-empty ``trace_id`` metadata value left in the map (not dedicated)."""
    offsets, keys, values = map_parts(table.column("metadata"))
    hit = pc.and_(pc.equal(keys, "trace_id"), pc.not_equal(values, "")).to_numpy(zero_copy_only=False)
    return np.unique(map_rows(offsets)[hit])


def _bloom(table: pa.Table, row_group_rows: int) -> bytes:
    n = table.num_rows
    trace = table.column("trace_id").combine_chunks()
    loose = _loose_trace_rows(table)
    groups, blobs, offset = [], [], 0
    for start in range(0, n, row_group_rows):
        ids = _id_matrix(trace.slice(start, row_group_rows))
        ids = np.unique(ids.view(np.dtype((np.void, 16))).ravel()).view(np.uint8).reshape(-1, 16)
        m = max(64, -(-_BITS_PER_ID * len(ids) // 8) * 8)
        bits = np.zeros(m, bool)
        if len(ids):
            bits[_positions(ids, m).ravel().astype(np.int64)] = True
        blob = np.packbits(bits, bitorder="little").tobytes()
        always = bool(((loose >= start) & (loose < start + row_group_rows)).any())
        groups.append({"rows": min(row_group_rows, n - start), "bits": m, "offset": offset, "always": always})
        blobs.append(blob)
        offset += len(blob)
    header = json.dumps({"k": _K, "row_groups": groups}).encode()
    return len(header).to_bytes(4, "little") + header + b"".join(blobs)


def build(table: pa.Table, *, row_group_rows: int) -> dict[str, bytes]:
    """The sidecars of one sorted block table (the block writer's ``sidecars`` hook)."""
    sink = pa.BufferOutputStream()
    streams = _stream_table(table)
    with pa.ipc.new_file(sink, streams.schema) as w:
        w.write_table(streams)
    return {STREAMS: sink.getvalue().to_pybytes(), BLOOM: _bloom(table, row_group_rows)}


# --------------------------------------------------------------------------------------------
# reading


@dataclass
class StreamIndex:
    """A block's streams, loaded once per block and cached by the store."""

    stream_id: np.ndarray
    labels: list[dict[str, str]]
    first_row: np.ndarray
    rows: np.ndarray
    min_ts: np.ndarray
    max_ts: np.ndarray
    line_bytes: np.ndarray
    by_id: dict[int, int] = field(default_factory=dict)

    @classmethod
    def load(cls, data: bytes) -> StreamIndex:
        t = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        sids = t.column("stream_id").to_numpy()
        return cls(sids, [json.loads(s) for s in t.column("labels").to_pylist()],
                   t.column("first_row").to_numpy(), t.column("rows").to_numpy(), t.column("min_ts").to_numpy(),
                   t.column("max_ts").to_numpy(), t.column("line_bytes").to_numpy(),
                   {int(s): i for i, s in enumerate(sids.tolist())})

    def match(self, matchers: list[LabelMatcher], start_ns: int, end_ns: int) -> np.ndarray:
        """Positions of the streams matching every matcher with entries overlapping the range."""
        ok = (self.max_ts >= start_ns) & (self.min_ts < end_ns)
        return np.flatnonzero(ok & match_labels(self.labels, matchers))


def match_labels(labels: list[dict[str, str]], matchers: list[LabelMatcher]) -> np.ndarray:
    """Mask of label sets matching every matcher; each distinct value is tested once."""
    ok = np.ones(len(labels), bool)
    for m in matchers:
        memo: dict[str, bool] = {}
        for i, lb in enumerate(labels):
            if ok[i]:
                v = lb.get(m.name, "")
                hit = memo.get(v)
                if hit is None:
                    hit = memo[v] = m.matches(v)
                ok[i] = hit
    return ok


@dataclass
class TraceBloom:
    k: int
    groups: list[dict]
    data: bytes

    @classmethod
    def load(cls, data: bytes) -> TraceBloom:
        size = int.from_bytes(data[:4], "little")
        header = json.loads(data[4:4 + size])
        return cls(header["k"], header["row_groups"], data[4 + size:])

    def row_groups(self, trace_id: bytes) -> list[int]:
        """Row groups that may hold ``trace_id`` (16 bytes)."""
        ids = np.frombuffer(trace_id, np.uint8).reshape(1, 16)
        out = []
        for i, g in enumerate(self.groups):
            if g["always"]:
                out.append(i)
                continue
            pos = _positions(ids, g["bits"]).ravel().astype(np.int64)
            bits = np.frombuffer(self.data, np.uint8, g["bits"] // 8, g["offset"])
            if all(bits[p >> 3] >> (p & 7) & 1 for p in pos.tolist()):
                out.append(i)
        return out
