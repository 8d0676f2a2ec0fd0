"""The log store: the head plus committed blocks, and the reads LogQL and the Loki API need.

Write path: a decoded :class:`LogBatch` is checked against the tenant's :class:`LogLimits` and
appended to the head, where it is queryable at once. ``flush`` writes one sorted Parquet block
per tenant (``blocks/<tenant>/logs/...``, sorted by ``(stream_id, ts)``, zstd) with two sidecars
(:mod:`lookout.logs.index`), then commits the log offset the blocks cover; if anything fails the
data goes back to the head and nothing is committed.

Read path (:class:`StoreQuerier`): the head first, then the blocks overlapping the time range.
Per block the cached stream index picks the matching streams and their row ranges, the trace
bloom (for a ``trace_id`` hint) narrows the row groups further, and only those row groups are
read. With a ``limit`` blocks are visited newest first (``backward``) or oldest first and the
scan stops once no remaining block can beat the entries already kept. Reads of one tenant never
touch another tenant's head or blocks.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lookout.config import Storage
from lookout.logs import codec, index
from lookout.logs.head import LogHead
from lookout.logs.index import StreamIndex, TraceBloom, match_labels
from lookout.logs.model import ENTRY_SCHEMA, LabelMatcher, LogSelection, SelectHints
from lookout.logs.schema import (
    BLOCK_SCHEMA,
    COMPACTED_ZSTD_LEVEL,
    FLUSH_ZSTD_LEVEL,
    KEY_COLUMN,
    MAX_COMPACTION_INPUT_BYTES,
    PARQUET_WRITER_OPTIONS,
    SIGNAL,
    SORT_KEYS,
    TIME_COLUMN,
    LogBatch,
    LogLimits,
    map_parts,
    map_rows,
)
from lookout.selfmon.registry import Registry
from lookout.storage.blocks import BlockMeta, BlockStore
from lookout.storage.compaction import compact
from lookout.storage.retention import apply_retention

log = logging.getLogger(__name__)

_FILTER_COLUMNS = ["stream_id", "ts", "line"]
_META_COLUMNS = ["metadata", "trace_id", "span_id", "observed_delta"]
_READ_COLUMNS = _FILTER_COLUMNS + _META_COLUMNS
_CACHE_BLOCKS = 4096


@dataclass(slots=True)
class FlushResult:
    offset_hi: int | None
    blocks: list[BlockMeta]


@dataclass(slots=True)
class _BlockIndex:
    streams: StreamIndex
    rg_starts: np.ndarray  # first row of each row group, plus the total row count at the end
    rg_min_time: np.ndarray
    rg_max_time: np.ndarray
    bloom: TraceBloom | None = None
    footer: pq.FileMetaData | None = None


class LogStore:
    """Head + blocks of every tenant. Thread-safe: appends and reads run concurrently with one
    writer (flush, compaction, retention) at a time."""

    def __init__(self, blocks: BlockStore, cfg: Storage, registry: Registry, *,
                 limits: LogLimits | None = None, row_group_rows: int | None = None) -> None:
        self.blocks = blocks
        self.cfg = cfg
        self.limits = limits or LogLimits()
        self.row_group_rows = row_group_rows or cfg.row_group_rows
        self.head = LogHead()
        self._write_lock = threading.Lock()
        self._cache: OrderedDict[str, _BlockIndex] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._appended = registry.counter("lookout_logs_entries_appended_total", "Log entries appended to the head.")
        self._appended_bytes = registry.counter("lookout_logs_line_bytes_appended_total",
                                                "Log line bytes appended to the head.")
        self._refused = registry.counter("lookout_logs_entries_refused_total",
                                         "Log entries refused at decode or append, by reason.")
        self._flushes = registry.counter("lookout_flushes_total", "Head flushes to blocks, by signal.")
        self._flush_seconds = registry.counter("lookout_flush_duration_seconds_total",
                                               "Time spent flushing the head, by signal.")
        self._flush_failures = registry.counter("lookout_flush_failures_total", "Head flushes that failed, by signal.")
        self._compactions = registry.counter("lookout_compactions_total", "Compaction runs, by signal.")
        self._compaction_seconds = registry.counter("lookout_compaction_duration_seconds_total",
                                                    "Time spent compacting, by signal.")
        self._compaction_failures = registry.counter("lookout_compaction_failures_total",
                                                     "Compaction runs that failed, by signal.")
        self._retention_deleted = registry.counter("lookout_retention_deleted_blocks_total",
                                                   "Blocks deleted by retention, by signal.")
        self._rg_read = registry.counter("lookout_logs_row_groups_read_total", "Row groups read by log queries.")
        self._blocks_read = registry.counter("lookout_logs_blocks_read_total", "Blocks read by log queries.")
        self._blocks_skipped = registry.counter("lookout_logs_blocks_skipped_total",
                                                "Blocks skipped by log queries thanks to the indexes, by reason.")
        registry.add_collector(self._collect)

    # ---- write path -------------------------------------------------------------------------

    def append(self, tenant: str, batch: LogBatch, offset_hi: int | None = None) -> int:
        """Append a decoded batch (after the tenant's limits); returns the entries kept.
        ``offset_hi`` is the exclusive log offset the batch ends at, committed by the next flush
        (pass it even for an empty batch so the offset still advances)."""
        self._count_refused(tenant, batch.refused)
        table, streams = self._within_limits(tenant, batch)
        self.head.append(tenant, streams, table, offset_hi)
        if table.num_rows:
            self._appended.inc(table.num_rows, tenant=tenant)
            self._appended_bytes.inc(pc.sum(pc.binary_length(table.column("line"))).as_py() or 0, tenant=tenant)
        return table.num_rows

    def _count_refused(self, tenant: str, refused: dict[str, int]) -> None:
        for reason, n in refused.items():
            if n:
                self._refused.inc(n, tenant=tenant, reason=reason)

    def _within_limits(self, tenant: str, batch: LogBatch) -> tuple[pa.Table, dict[int, dict[str, str]]]:
        t = batch.entries
        if t.num_rows == 0:
            return t, {}
        lim = self.limits
        keep = np.ones(t.num_rows, bool)
        refused: dict[str, int] = {}

        def refuse(bad: np.ndarray, reason: str) -> None:
            newly = bad & keep
            if newly.any():
                refused[reason] = int(newly.sum())
                keep[newly] = False

        ts = t.column("ts").to_numpy()
        now = time.time_ns()
        if lim.reject_old_samples_max_age_s > 0:
            refuse(ts < now - int(lim.reject_old_samples_max_age_s * 1e9), "greater_than_max_sample_age")
        if lim.creation_grace_period_s > 0:
            refuse(ts > now + int(lim.creation_grace_period_s * 1e9), "too_far_in_future")
        if lim.max_line_bytes > 0:
            refuse(pc.greater(pc.binary_length(t.column("line")), lim.max_line_bytes).to_numpy(zero_copy_only=False),
                   "line_too_long")
        new = [s for s in batch.streams if not self.head.has_stream(tenant, s)]
        room = lim.max_streams_per_tenant - self.head.stream_count(tenant)
        if len(new) > room:
            over = pa.array(new[max(room, 0):], pa.uint64())
            refuse(pc.is_in(t.column("stream_id"), value_set=over).to_numpy(zero_copy_only=False), "stream_limit")
        self._count_refused(tenant, refused)
        if not refused:
            return t, batch.streams
        t = t.filter(pa.array(keep))
        present = set(pc.unique(t.column("stream_id")).to_pylist())
        return t, {s: lb for s, lb in batch.streams.items() if s in present}

    def head_bytes(self) -> int:
        """Bytes held in the head (live and flushing): the consumer's back-pressure signal."""
        return self.head.nbytes

    def flush_due(self) -> bool:
        return self.head.pending() and (self.head.live_bytes >= self.cfg.flush_size
                                        or self.head.age() >= self.cfg.flush_interval)

    def flush(self, commit: Callable[[int], None]) -> FlushResult | None:
        """Write the head as one block per tenant, then ``commit`` the log offset they cover
        (under the write lock, so compaction never merges a block whose offset is uncommitted).
        On any failure the data goes back to the head and the error propagates."""
        with self._write_lock:
            snap = self.head.snapshot()
            if snap is None:
                return None
            started = time.monotonic()
            try:
                written = [self._write_block(tenant, th.streams, th.combined(), snap.offset_hi)
                           for tenant, th in sorted(snap.tenants.items()) if th.rows]
                if snap.offset_hi is not None:
                    commit(snap.offset_hi)
            except BaseException:
                self.head.restore(snap)
                self._flush_failures.inc(signal=SIGNAL)
                raise
            self.head.release(snap)
            self._flushes.inc(signal=SIGNAL)
            self._flush_seconds.inc(time.monotonic() - started, signal=SIGNAL)
            return FlushResult(snap.offset_hi, written)

    def _write_block(self, tenant: str, streams: dict[int, dict[str, str]], entries: pa.Table,
                     offset_hi: int | None) -> BlockMeta:
        table = codec.encode(entries, streams)
        source = {"kind": "wal", "offset_hi": offset_hi} if offset_hi is not None else {
            "kind": "memory", "at": time.time_ns()}
        return self.blocks.write_block(
            tenant, SIGNAL, table, sort_keys=SORT_KEYS, time_column=TIME_COLUMN, key_column=KEY_COLUMN,
            level=0, sidecars=self._sidecars, source=source, row_group_rows=self.row_group_rows,
            compression_level=FLUSH_ZSTD_LEVEL, writer_options=PARQUET_WRITER_OPTIONS)

    @property
    def _sidecars(self) -> Callable[[pa.Table], dict[str, bytes]]:
        return functools.partial(index.build, row_group_rows=self.row_group_rows)

    def compact(self) -> list[BlockMeta]:
        """Merge each tenant's blocks per ``compaction_window``; identical entries (same stream,
        timestamp and line, as Loki dedupes) are written once."""
        with self._write_lock:
            started = time.monotonic()
            out: list[BlockMeta] = []
            try:
                for tenant in self.blocks.tenants(SIGNAL):
                    out += compact(self.blocks, tenant, SIGNAL, sort_keys=SORT_KEYS, time_column=TIME_COLUMN,
                                   key_column=KEY_COLUMN, sidecars=self._sidecars,
                                   window_s=int(self.cfg.compaction_window),
                                   min_inputs=self.cfg.compaction_min_blocks,
                                   max_input_bytes=MAX_COMPACTION_INPUT_BYTES,
                                   dedupe_columns=["stream_id", "ts", "line"],
                                   row_group_rows=self.row_group_rows, compression_level=COMPACTED_ZSTD_LEVEL,
                                   writer_options=PARQUET_WRITER_OPTIONS)
            except Exception:
                self._compaction_failures.inc(signal=SIGNAL)
                log.exception("log compaction failed")
                return out
            self._compactions.inc(signal=SIGNAL)
            self._compaction_seconds.inc(time.monotonic() - started, signal=SIGNAL)
            return out

    def apply_retention(self, now_ns: int | None = None) -> int:
        """Delete log blocks whose newest entry is older than ``cfg.retention``."""
        with self._write_lock:
            n = apply_retention(self.blocks, retention_s=self.cfg.retention, now_ns=now_ns, signal=SIGNAL)
        self._retention_deleted.inc(n, signal=SIGNAL)
        return n

    # ---- block metadata ---------------------------------------------------------------------

    def block_list(self, tenant: str, start_ns: int, end_ns: int) -> list[BlockMeta]:
        """The tenant's blocks with entries possibly in ``[start_ns, end_ns)``."""
        return [m for m in self.blocks.list_blocks(tenant, SIGNAL)
                if m.max_time_ns >= start_ns and m.min_time_ns < end_ns]

    def _block_index(self, meta: BlockMeta, *, bloom: bool = False) -> _BlockIndex:
        with self._cache_lock:
            bi = self._cache.get(meta.block_id)
            if bi is not None:
                self._cache.move_to_end(meta.block_id)
        if bi is None:
            rgs = [rg for f in meta.files for rg in f["row_groups"]]
            starts = np.zeros(len(rgs) + 1, np.int64)
            np.cumsum([rg["rows"] for rg in rgs], out=starts[1:])
            bi = _BlockIndex(StreamIndex.load(self.blocks.read_sidecar(meta, index.STREAMS)), starts,
                             np.array([rg["min_time"] for rg in rgs], np.int64),
                             np.array([rg["max_time"] for rg in rgs], np.int64))
            with self._cache_lock:
                self._cache[meta.block_id] = bi
                while len(self._cache) > _CACHE_BLOCKS:
                    self._cache.popitem(last=False)
        if bloom and bi.bloom is None and index.BLOOM in meta.sidecars:
            bi.bloom = TraceBloom.load(self.blocks.read_sidecar(meta, index.BLOOM))
        return bi

    def querier(self, tenant: str) -> StoreQuerier:
        return StoreQuerier(self, tenant)

    # ---- Loki index APIs --------------------------------------------------------------------

    def _stream_stats(self, tenant: str, matchers: list[LabelMatcher], start_ns: int,
                      end_ns: int) -> Iterable[tuple[int, dict[str, str], int, int, int]]:
        """(stream id, labels, entries, line bytes, chunks) per stream and source (head, blocks)."""
        streams, tables = self.head.view(tenant)
        if tables:
            ids = _matching_ids(streams, matchers)
            t = _filter(pa.concat_tables(tables), ids, start_ns, end_ns, SelectHints())
            if t.num_rows:
                g = pa.table({"s": t.column("stream_id"), "b": pc.binary_length(t.column("line"))}).group_by(
                    "s").aggregate([("b", "count"), ("b", "sum")])
                for sid, n, b in zip(g.column("s").to_pylist(), g.column("b_count").to_pylist(),
                                     g.column("b_sum").to_pylist(), strict=True):
                    yield sid, streams[sid], n, b, 1
        for meta in self.block_list(tenant, start_ns, end_ns):
            si = self._block_index(meta).streams
            for p in si.match(matchers, start_ns, end_ns).tolist():
                yield int(si.stream_id[p]), si.labels[p], int(si.rows[p]), int(si.line_bytes[p]), 1

    def stats(self, tenant: str, matchers: list[LabelMatcher], start_ns: int, end_ns: int) -> dict[str, int]:
        """Loki ``/index/stats``: streams, chunks, entries and bytes matching the selector.
        Block figures are per whole stream-in-block (a chunk), as Loki counts whole chunks."""
        seen: set[int] = set()
        out = {"streams": 0, "chunks": 0, "entries": 0, "bytes": 0}
        for sid, _, n, b, chunks in self._stream_stats(tenant, matchers, start_ns, end_ns):
            seen.add(sid)
            out["chunks"] += chunks
            out["entries"] += n
            out["bytes"] += b
        out["streams"] = len(seen)
        return out

    def volume(self, tenant: str, matchers: list[LabelMatcher], start_ns: int, end_ns: int, *,
               target_labels: list[str] | None = None, aggregate_by: str = "series",
               limit: int = 100) -> list[dict]:
        """Loki ``/index/volume``: line bytes grouped by series or by label name, largest first.

        ``aggregate_by="series"``: one entry per distinct set of the ``target_labels`` (default:
        the selector's label names; all labels if it has none), ``{"metric": labels, "volume":
        bytes}``. ``aggregate_by="labels"``: one entry per label name, ``{"metric": {name: ""},
        "volume": bytes}``."""
        if aggregate_by not in ("series", "labels"):
            raise ValueError(f'aggregate_by must be "series" or "labels", got {aggregate_by!r}')
        names = list(target_labels or [m.name for m in matchers])
        totals: dict[tuple, int] = {}
        for _, labels, _, b, _ in self._stream_stats(tenant, matchers, start_ns, end_ns):
            if aggregate_by == "labels":
                keys = [((n, ""),) for n in (names or labels) if n in labels]
            else:
                keys = [tuple(sorted((n, labels[n]) for n in names if n in labels)) if names
                        else tuple(sorted(labels.items()))]
            for key in keys:
                if key:
                    totals[key] = totals.get(key, 0) + b
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:max(0, limit)]
        return [{"metric": dict(k), "volume": v} for k, v in ranked]

    # ---- self-metrics -----------------------------------------------------------------------

    def _collect(self):
        tenants = sorted(self.head.tenants())
        yield ("lookout_logs_head_bytes", "gauge", "Bytes of log entries held in the head (live and flushing).",
               [("lookout_logs_head_bytes", {}, self.head.nbytes)])
        yield ("lookout_logs_head_rows", "gauge", "Log entries in the live head.",
               [("lookout_logs_head_rows", {}, self.head.rows)])
        yield ("lookout_logs_head_streams", "gauge", "Streams in the head, by tenant.",
               [("lookout_logs_head_streams", {"tenant": t}, self.head.stream_count(t)) for t in tenants])
        metas = self.blocks.list_blocks(None, SIGNAL)
        yield ("lookout_logs_blocks", "gauge", "Committed log blocks.",
               [("lookout_logs_blocks", {}, len(metas))])
        yield ("lookout_logs_block_bytes", "gauge", "Bytes stored in committed log blocks.",
               [("lookout_logs_block_bytes", {}, sum(m.stored_bytes for m in metas))])


# --------------------------------------------------------------------------------------------
# reading


def _matching_ids(streams: dict[int, dict[str, str]], matchers: list[LabelMatcher]) -> pa.Array:
    sids = list(streams)
    mask = match_labels([streams[s] for s in sids], matchers)
    return pa.array(np.asarray(sids, np.uint64)[mask], pa.uint64())


def _filter_mask(t: pa.Table, ids: pa.Array, start_ns: int, end_ns: int, hints: SelectHints) -> np.ndarray | None:
    """Mask of rows in the streams, the range and containing every ``hints.contains``; None if
    no row is."""
    if t.num_rows == 0:
        return None
    mask = pc.and_(pc.is_in(t.column("stream_id"), value_set=ids),
                   pc.and_(pc.greater_equal(t.column("ts"), start_ns), pc.less(t.column("ts"), end_ns)))
    for s in hints.contains:
        mask = pc.and_(mask, pc.match_substring(t.column("line"), s))
    out = mask.to_numpy(zero_copy_only=False)
    return out if out.any() else None


def _empty_block_rows() -> pa.Table:
    return BLOCK_SCHEMA.empty_table().select(_READ_COLUMNS)


def _filter(t: pa.Table, ids: pa.Array, start_ns: int, end_ns: int, hints: SelectHints,
            trace: bytes | None = None) -> pa.Table:
    """Rows of ``t`` (entry or block form) in the streams, range and hints."""
    mask = _filter_mask(t, ids, start_ns, end_ns, hints)
    if mask is None:
        return t.slice(0, 0)
    t = t.filter(pa.array(mask))
    if hints.trace_id and t.num_rows:
        t = t.filter(_trace_mask(t, hints.trace_id, trace))
    return t


def _trace_mask(t: pa.Table, hexid: str, raw: bytes | None) -> pa.Array:
    """Rows whose metadata has ``trace_id == hexid`` (in the map, or the dedicated column)."""
    offsets, keys, values = map_parts(t.column("metadata"))
    hit = pc.and_(pc.equal(keys, "trace_id"), pc.equal(values, hexid)).to_numpy(zero_copy_only=False)
    rows = np.zeros(t.num_rows, bool)
    rows[map_rows(offsets)[hit]] = True
    if raw is not None and "trace_id" in t.column_names:
        rows |= pc.equal(t.column("trace_id"), pa.scalar(raw, pa.binary(16))).fill_null(False).to_numpy(
            zero_copy_only=False)
    return pa.array(rows)


def _keep_limit(t: pa.Table, limit: int | None, direction: str) -> pa.Table:
    """The ``limit`` newest (backward) or oldest (forward) rows."""
    if limit is None or t.num_rows <= limit:
        return t
    order = "descending" if direction == "backward" else "ascending"
    idx = pc.sort_indices(t, sort_keys=[("ts", order), ("stream_id", "ascending")])
    return t.take(idx.slice(0, limit))


def _dedupe(t: pa.Table) -> pa.Table:
    """Drop repeated (stream, ts, line) entries, as Loki's query path does (replays, and the
    moment during a flush when an entry is both in the head and in a block)."""
    if t.num_rows < 2:
        return t
    keyed = t.select(["stream_id", "ts", "line"]).append_column("__row", pa.array(np.arange(t.num_rows)))
    first = keyed.group_by(["stream_id", "ts", "line"], use_threads=False).aggregate([("__row", "min")])
    if first.num_rows == t.num_rows:
        return t
    return t.take(pa.array(np.sort(first.column("__row_min").to_numpy())))


def _parse_trace(hexid: str | None) -> bytes | None:
    if not hexid:
        return None
    try:
        raw = bytes.fromhex(hexid)
    except ValueError:
        return None
    return raw if len(raw) == 16 and raw.hex() == hexid else None


class StoreQuerier:
    """:class:`lookout.logs.model.LogQuerier` over one tenant's head and blocks."""

    def __init__(self, store: LogStore, tenant: str) -> None:
        self.store = store
        self.tenant = tenant
        self.row_groups_read = 0
        self.blocks_read = 0

    def select(self, matchers: list[LabelMatcher], start_ns: int, end_ns: int,
               hints: SelectHints | None = None) -> LogSelection:
        hints = hints or SelectHints()
        limit, direction = hints.limit, hints.direction
        trace = _parse_trace(hints.trace_id)
        # The head first: entries move to blocks only after the block is committed, so reading the
        # head before listing blocks can show an entry twice (deduped) but never lose it.
        streams, tables = self.store.head.view(self.tenant)
        found: dict[int, dict[str, str]] = {}
        parts: list[pa.Table] = []
        if tables:
            ids = _matching_ids(streams, matchers)
            head = _keep_limit(_filter(pa.concat_tables(tables), ids, start_ns, end_ns, hints), limit, direction)
            parts.append(head)
            found.update({s: streams[s] for s in pc.unique(head.column("stream_id")).to_pylist()})
        metas = self.store.block_list(self.tenant, start_ns, end_ns)
        backward = direction == "backward"
        if limit is not None:
            metas.sort(key=(lambda m: -m.max_time_ns) if backward else (lambda m: m.min_time_ns))
        kept = sum(p.num_rows for p in parts)
        for meta in metas:
            if limit is not None and kept >= limit:
                bound = _bound(parts, limit, backward)
                if (backward and meta.max_time_ns < bound) or (not backward and meta.min_time_ns > bound):
                    break
            part, labels = self._read_block(meta, matchers, start_ns, end_ns, hints, trace)
            if part is not None and part.num_rows:
                parts.append(_keep_limit(part, limit, direction))
                found.update(labels)
                kept += parts[-1].num_rows
        return self._assemble(parts, found, limit, direction)

    def _assemble(self, parts: list[pa.Table], found: dict[int, dict[str, str]], limit: int | None,
                  direction: str) -> LogSelection:
        parts = [p for p in parts if p.num_rows]
        if not parts:
            return LogSelection({}, ENTRY_SCHEMA.empty_table())
        t = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        if len(parts) > 1:
            t = _dedupe(t)
        t = _keep_limit(t, limit, direction).sort_by([("stream_id", "ascending"), ("ts", "ascending")])
        present = pc.unique(t.column("stream_id")).to_pylist()
        return LogSelection({s: found[s] for s in present}, t.combine_chunks())

    def _read_block(self, meta: BlockMeta, matchers: list[LabelMatcher], start_ns: int, end_ns: int,
                    hints: SelectHints, trace: bytes | None) -> tuple[pa.Table | None, dict[int, dict[str, str]]]:
        store = self.store
        bi = store._block_index(meta, bloom=bool(hints.trace_id))
        pos = bi.streams.match(matchers, start_ns, end_ns)
        if pos.size == 0:
            store._blocks_skipped.inc(reason="streams")
            return None, {}
        groups = self._row_groups(bi, pos, start_ns, end_ns)
        if hints.trace_id and bi.bloom is not None:
            maybe = set(bi.bloom.row_groups(trace)) if trace is not None else set(range(len(bi.rg_min_time)))
            if trace is not None and len(bi.bloom.groups) == len(bi.rg_min_time):
                groups = [g for g in groups if g in maybe]
        if not groups:
            store._blocks_skipped.inc(reason="trace_id" if hints.trace_id else "time")
            return None, {}
        ids = pa.array(bi.streams.stream_id[pos], pa.uint64())
        table = self._read_rows(meta, bi, groups, ids, start_ns, end_ns, hints, trace)
        labels = {int(bi.streams.stream_id[p]): bi.streams.labels[p] for p in pos.tolist()}
        return codec.decode(table), labels

    def _read_rows(self, meta: BlockMeta, bi: _BlockIndex, groups: list[int], ids: pa.Array, start_ns: int,
                   end_ns: int, hints: SelectHints, trace: bytes | None) -> pa.Table:
        """Two passes: the cheap columns (stream, time, line) of the row groups, filtered; then the
        metadata columns of only the row groups that still have rows, taken at those rows."""
        first = self._read_row_groups(meta, bi, groups, _FILTER_COLUMNS)
        cheap = SelectHints(contains=hints.contains)
        mask = _filter_mask(first, ids, start_ns, end_ns, cheap)
        if mask is None:
            return _empty_block_rows()
        rows_per = np.diff(bi.rg_starts)[groups] if len(meta.files) == 1 else None
        hit = np.flatnonzero(mask)
        if rows_per is None:  # split files: read everything again (rare, huge blocks only)
            rest = self._read_row_groups(meta, bi, groups, _META_COLUMNS)
            idx = hit
        else:
            starts = np.r_[0, np.cumsum(rows_per)]
            group_of = np.searchsorted(starts, hit, side="right") - 1
            wanted = np.unique(group_of)
            rest = self._read_row_groups(meta, bi, [groups[g] for g in wanted.tolist()], _META_COLUMNS)
            new_starts = np.r_[0, np.cumsum(rows_per[wanted])]
            idx = new_starts[np.searchsorted(wanted, group_of)] + (hit - starts[group_of])
        take = pa.array(idx)
        table = pa.table({**{c: first.column(c).take(pa.array(hit)) for c in _FILTER_COLUMNS},
                          **{c: rest.column(c).take(take) for c in _META_COLUMNS}})
        if hints.trace_id:
            table = table.filter(_trace_mask(table, hints.trace_id, trace))
        return table

    @staticmethod
    def _row_groups(bi: _BlockIndex, pos: np.ndarray, start_ns: int, end_ns: int) -> list[int]:
        """Row groups covering the matched streams' row ranges and overlapping the time range."""
        first = bi.streams.first_row[pos]
        last = first + bi.streams.rows[pos] - 1
        lo = np.searchsorted(bi.rg_starts, first, side="right") - 1
        hi = np.searchsorted(bi.rg_starts, last, side="right") - 1
        cover = np.zeros(len(bi.rg_min_time) + 1, np.int64)
        np.add.at(cover, lo, 1)
        np.add.at(cover, hi + 1, -1)
        wanted = np.cumsum(cover)[:-1] > 0
        wanted &= (bi.rg_max_time >= start_ns) & (bi.rg_min_time < end_ns)
        return np.flatnonzero(wanted).tolist()

    def _read_row_groups(self, meta: BlockMeta, bi: _BlockIndex, groups: list[int], columns: list[str]) -> pa.Table:
        store = self.store
        fs = store.blocks.filesystem
        paths = store.blocks.data_files(meta)
        if columns is _FILTER_COLUMNS:
            self.blocks_read += 1
            store._blocks_read.inc()
        if len(paths) != 1:  # split files: row-group numbers are per file; read them whole
            self.row_groups_read += len(bi.rg_min_time)
            store._rg_read.inc(len(bi.rg_min_time))
            return pa.concat_tables([pq.read_table(p, filesystem=fs, columns=columns) for p in paths])
        if bi.footer is None:
            bi.footer = pq.read_metadata(paths[0], filesystem=fs)
        if columns is _FILTER_COLUMNS:
            self.row_groups_read += len(groups)
            store._rg_read.inc(len(groups))
        return pq.ParquetFile(paths[0], filesystem=fs, metadata=bi.footer).read_row_groups(groups, columns=columns)

    def streams(self, matchers: list[LabelMatcher], start_ns: int, end_ns: int) -> dict[int, dict[str, str]]:
        out: dict[int, dict[str, str]] = {}
        for sid, labels, _, _, _ in self.store._stream_stats(self.tenant, matchers, start_ns, end_ns):
            out[sid] = labels
        return out

    def label_names(self, start_ns: int, end_ns: int) -> list[str]:
        return sorted({n for lb in self.streams([], start_ns, end_ns).values() for n in lb})

    def label_values(self, name: str, start_ns: int, end_ns: int,
                     matchers: list[LabelMatcher] | None = None) -> list[str]:
        return sorted({lb[name] for lb in self.streams(matchers or [], start_ns, end_ns).values() if name in lb})


def _bound(parts: list[pa.Table], limit: int, backward: bool) -> int:
    """The timestamp the ``limit``-th kept entry has: blocks entirely beyond it cannot help."""
    ts = np.concatenate([p.column("ts").to_numpy() for p in parts if p.num_rows])
    ts.sort()
    return int(ts[-limit]) if backward else int(ts[limit - 1])
