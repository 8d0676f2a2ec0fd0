"""The trace store: the head plus committed blocks, and the reads the Tempo API needs.

Writes arrive as log records (raw OTLP requests), are decoded once into Arrow and appended to the
head; ``flush`` turns the head into one sorted Parquet block per tenant and reports the log offset
the blocks cover, which the consumer then commits. Reads always see head + blocks of exactly one
tenant: the tenant is part of every block path and every head lookup, so no query can cross it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lookout.buffer.log import Record, payloads_by_tenant
from lookout.config import Storage
from lookout.otlp import decode_traces
from lookout.selfmon.registry import Registry
from lookout.storage.blocks import BlockMeta, BlockStore
from lookout.storage.compaction import compact
from lookout.storage.retention import apply_retention
from lookout.traces import trace_index
from lookout.traces.head import HeadSnapshot, TraceHead
from lookout.traces.schema import (
    COMPACTED_ZSTD_LEVEL,
    PARQUET_WRITER_OPTIONS,
    SORT_KEYS,
    SPAN_SCHEMA,
    TIME_COLUMN,
)

log = logging.getLogger(__name__)

SIGNAL = "traces"


@dataclass(slots=True)
class FlushResult:
    offset_hi: int
    blocks: list[BlockMeta]


class TraceStore:
    def __init__(self, blocks: BlockStore, cfg: Storage, registry: Registry) -> None:
        self.blocks = blocks
        self.cfg = cfg
        self.head = TraceHead()
        self._write_lock = threading.Lock()  # flush, compaction and retention never overlap
        self._index_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._flushes = registry.counter("lookout_flushes_total", "Head flushes to blocks, by signal.")
        self._flush_seconds = registry.counter(
            "lookout_flush_duration_seconds_total", "Time spent flushing the head, by signal.")
        self._compactions = registry.counter("lookout_compactions_total", "Compaction runs, by signal.")
        self._compaction_seconds = registry.counter(
            "lookout_compaction_duration_seconds_total", "Time spent compacting, by signal.")
        self._compaction_failures = registry.counter(
            "lookout_compaction_failures_total", "Compaction runs that failed, by signal.")
        self._retention_deleted = registry.counter(
            "lookout_retention_deleted_blocks_total", "Blocks deleted by retention, by signal.")
        self._decoded = registry.counter("lookout_decoded_items_total", "Items decoded into the head.")
        self._dropped = registry.counter(
            "lookout_dropped_requests_total", "Accepted requests dropped after the log, by reason.")
        self._dropped_bytes = registry.counter(
            "lookout_dropped_bytes_total", "Bytes of accepted requests dropped after the log, by reason.")
        registry.add_collector(self._collect)

    # ---- write path -------------------------------------------------------------------------

    def ingest(self, records: list[Record]) -> None:
        """Decode a batch of log records (grouped per tenant, one ptars call each) into the head.
        With stream processors (tail sampling, span metrics) lookout/pipeline/stream.py drives
        :meth:`decode`, :meth:`append` and :meth:`mark_consumed` itself instead."""
        if not records:
            return
        by_tenant = payloads_by_tenant(records)
        lo, hi = records[0].offset, records[-1].next_offset
        for tenant, payloads in by_tenant.items():
            self.append(tenant, self.decode(tenant, payloads), sum(map(len, payloads)), lo, hi)
        self.mark_consumed(hi)

    def append(self, tenant: str, table: pa.Table, raw_bytes: int, offset_lo: int, offset_hi: int) -> None:
        if table.num_rows:
            self.head.append(tenant, table, raw_bytes, offset_lo, offset_hi)
            self._decoded.inc(table.num_rows, signal=SIGNAL, tenant=tenant)

    def mark_consumed(self, offset_hi: int) -> None:
        self.head.mark_consumed(offset_hi)

    def decode(self, tenant: str, payloads: list[bytes]) -> pa.Table:
        return self._decode(tenant, payloads)

    def _decode(self, tenant: str, payloads: list[bytes]) -> pa.Table:
        """Decode a batch; if it fails, decode request by request so that one request the
        receiver accepted but the decoder cannot handle is counted and skipped instead of
        blocking the log forever (it stays in the log segment for inspection until trimmed)."""
        try:
            return decode_traces(payloads)
        except Exception:
            if len(payloads) == 1:
                self._dropped.inc(signal=SIGNAL, tenant=tenant, reason="decode_error")
                self._dropped_bytes.inc(len(payloads[0]), signal=SIGNAL, tenant=tenant, reason="decode_error")
                log.exception("traces: a %d-byte request of tenant %s could not be decoded; skipped",
                              len(payloads[0]), tenant)
                return SPAN_SCHEMA.empty_table()
            return pa.concat_tables([self._decode(tenant, [p]) for p in payloads])

    @property
    def head_bytes(self) -> int:
        return self.head.nbytes

    def flush_due(self) -> bool:
        return self.head.pending_offset() is not None and (
            self.head.live_bytes >= self.cfg.flush_size or self.head.age() >= self.cfg.flush_interval)

    def flush(self, commit: Callable[[int], None], cap: int | None = None) -> FlushResult | None:
        """Write the head as one block per tenant, then ``commit`` the log offset they cover.

        The commit happens under the write lock so compaction never merges a block whose log
        range is not yet committed (recovery deletes exactly those and replays them). ``cap``
        lowers the committed offset below what the head consumed (the tail sampler still holds
        spans of later records); the blocks record the capped offset, so recovery keeps them
        and the replay from the cap re-reads only what they may not hold."""
        with self._write_lock:
            snap = self.head.snapshot()
            if snap is None:
                return None
            if cap is not None and cap < snap.offset_hi:
                snap.offset_hi = cap
                snap.offset_lo = min(snap.offset_lo, cap)
            started = time.monotonic()
            try:
                written = [self._write_tenant_block(tenant, snap) for tenant in sorted(snap.tables)]
                commit(snap.offset_hi)
            except BaseException:
                self.head.restore(snap)
                raise
            self.head.release(snap)
            self._flushes.inc(signal=SIGNAL)
            self._flush_seconds.inc(time.monotonic() - started, signal=SIGNAL)
            return FlushResult(snap.offset_hi, written)

    def _write_tenant_block(self, tenant: str, snap: HeadSnapshot) -> BlockMeta:
        return self.blocks.write_block(
            tenant, SIGNAL, snap.combined(tenant), sort_keys=SORT_KEYS, time_column=TIME_COLUMN,
            key_column="trace_id", level=0, sidecars=trace_index.build,
            source={"kind": "wal", "offset_lo": snap.offset_lo, "offset_hi": snap.offset_hi},
            raw_bytes=snap.raw_bytes.get(tenant, 0), row_group_rows=self.cfg.row_group_rows,
            writer_options=PARQUET_WRITER_OPTIONS)

    def compact(self) -> list[BlockMeta]:
        with self._write_lock:
            started = time.monotonic()
            out: list[BlockMeta] = []
            try:
                for tenant in self.blocks.tenants(SIGNAL):
                    out += compact(self.blocks, tenant, SIGNAL, sort_keys=SORT_KEYS, time_column=TIME_COLUMN,
                                   key_column="trace_id", sidecars=trace_index.build,
                                   window_s=int(self.cfg.compaction_window),
                                   min_inputs=self.cfg.compaction_min_blocks,
                                   dedupe_columns=["trace_id", "span_id"],
                                   row_group_rows=self.cfg.row_group_rows,
                                   compression_level=COMPACTED_ZSTD_LEVEL,
                                   writer_options=PARQUET_WRITER_OPTIONS)
            except Exception:
                self._compaction_failures.inc(signal=SIGNAL)
                log.exception("trace compaction failed")
                return out
            self._compactions.inc(signal=SIGNAL)
            self._compaction_seconds.inc(time.monotonic() - started, signal=SIGNAL)
            return out

    def apply_retention(self, now_ns: int | None = None) -> int:
        with self._write_lock:
            n = apply_retention(self.blocks, retention_s=self.cfg.retention, now_ns=now_ns, signal=SIGNAL)
        self._retention_deleted.inc(n, signal=SIGNAL)
        return n

    # ---- reads ------------------------------------------------------------------------------

    def block_list(self, tenant: str, start_ns: int | None = None, end_ns: int | None = None) -> list[BlockMeta]:
        metas = [m for m in self.blocks.list_blocks(tenant, SIGNAL)]
        if start_ns is not None:
            metas = [m for m in metas if m.max_time_ns >= start_ns]
        if end_ns is not None:
            metas = [m for m in metas if m.min_time_ns <= end_ns]
        return metas

    def _trace_index(self, meta: BlockMeta) -> np.ndarray:
        idx = self._index_cache.get(meta.block_id)
        if idx is None:
            idx = trace_index.load(self.blocks.read_sidecar(meta, trace_index.SIDECAR))
            self._index_cache[meta.block_id] = idx
            while len(self._index_cache) > 4096:
                self._index_cache.popitem(last=False)
        return idx

    def find_trace(self, tenant: str, trace_id: bytes, start_ns: int | None = None,
                   end_ns: int | None = None) -> pa.Table | None:
        """All spans of one trace from the head and every block that may hold it, deduplicated
        by (span_id, start) as replays can repeat a request."""
        key = pa.scalar(trace_id, pa.binary(16))
        parts = [t.filter(pc.equal(t.column("trace_id"), key)) for t in self.head.tables(tenant)]
        hexid = trace_id.hex()
        for meta in self.block_list(tenant, start_ns, end_ns):
            if not trace_index.may_contain(self._trace_index(meta), trace_id):
                continue
            for path in self.blocks.data_files(meta):
                parts.append(self._read_trace_rows(meta, path, hexid, key))
        parts = [p for p in parts if p.num_rows]
        if not parts:
            return None
        table = pa.concat_tables([p.cast(SPAN_SCHEMA) for p in parts])
        return _dedupe_spans(table)

    def _read_trace_rows(self, meta: BlockMeta, path: str, hexid: str, key: pa.Scalar) -> pa.Table:
        groups = []
        for f in meta.files:
            for i, rg in enumerate(f["row_groups"]):
                if rg["min_key_hex"] <= hexid <= rg["max_key_hex"]:
                    groups.append(i)
        if not groups:
            return SPAN_SCHEMA.empty_table()
        pf = pq.ParquetFile(path, filesystem=self.blocks.filesystem)
        t = pf.read_row_groups(groups)
        return t.filter(pc.equal(t.column("trace_id"), key))

    def _collect(self):
        yield ("lookout_head_bytes", "gauge", "Bytes held in the head (live and flushing), by signal.",
               [("lookout_head_bytes", {"signal": SIGNAL}, self.head.nbytes)])
        yield ("lookout_head_rows", "gauge", "Rows in the live head, by signal.",
               [("lookout_head_rows", {"signal": SIGNAL}, self.head.rows)])
        metas = self.blocks.list_blocks(None, SIGNAL)
        yield ("lookout_blocks", "gauge", "Committed blocks, by signal.",
               [("lookout_blocks", {"signal": SIGNAL}, len(metas))])
        yield ("lookout_block_bytes", "gauge", "Bytes stored in committed blocks, by signal.",
               [("lookout_block_bytes", {"signal": SIGNAL}, sum(m.stored_bytes for m in metas))])


def _dedupe_spans(table: pa.Table) -> pa.Table:
    """Keep the first row per (span_id, start) in start order; vectorised, no row loop."""
    table = table.sort_by([("start_time_unix_nano", "ascending"), ("span_id", "ascending")])
    if table.num_rows < 2:
        return table
    sid = table.column("span_id").combine_chunks()
    st = table.column("start_time_unix_nano").combine_chunks()
    same = pc.and_(pc.equal(sid.slice(1), sid.slice(0, len(sid) - 1)),
                   pc.equal(st.slice(1), st.slice(0, len(st) - 1)))
    keep = pa.concat_arrays([pa.array([True]), pc.invert(same)])
    return table.filter(keep)
