"""The metrics store: the head plus committed blocks, and every read the Prometheus API needs.

Writes arrive as :class:`~lookout.metrics.batch.MetricBatch` per tenant (the sink decodes log
records and calls :meth:`MetricsStore.append`) and are queryable at once. :meth:`flush` turns the
head into one sorted Parquet block per tenant (and UTC day), then commits the log offset they
cover, like the trace store. Reads (:meth:`querier`) merge blocks overlapping the time range with
the head, series by series id; on equal timestamps the head wins over blocks and a newer block
over an older one. A tenant is part of every head lookup and block path, so no read crosses it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.config import Storage
from lookout.metrics.batch import MetricBatch
from lookout.metrics.blockread import (
    BlockIndex,
    build_sidecars,
    dedupe_first,
    dense_series,
    load_index,
    merge_label_tables,
    meta_time_overlaps,
    order_unique,
    read_all_samples,
    read_exemplars,
    read_metadata,
    read_samples,
    samples_table,
)
from lookout.metrics.head import INT64_MAX, INT64_MIN, AppendStats, Chunk, HeadSnapshot, MetricsHead, MetricsLimits
from lookout.metrics.model import Matcher, Series
from lookout.metrics.schema import (
    COMPACTED_ZSTD_LEVEL,
    KEY_COLUMN,
    PARQUET_WRITER_OPTIONS,
    SIGNAL,
    SORT_KEYS,
    TIME_COLUMN,
    ZSTD_LEVEL,
    key_to_dict,
    labels_from_keys,
)
from lookout.selfmon.registry import Registry
from lookout.storage.blocks import BlockMeta, BlockStore
from lookout.storage.meta import validate_name
from lookout.storage.retention import apply_retention

__all__ = ["AppendStats", "FlushResult", "MetricsLimits", "MetricsQuerier", "MetricsStore"]

log = logging.getLogger(__name__)

MS_PER_DAY = 86_400_000
OPEN_WINDOW_MIN_BLOCKS = 16  # an hour still receiving data is compacted only past this many blocks
SEAL_GRACE_S = 600.0  # a window is sealed this long after its end
MAX_COMPACTION_ROWS = 50_000_000  # one merge holds its inputs in RAM (~20 B/sample)
INDEX_CACHE_BLOCKS = 512


@dataclass(slots=True)
class FlushResult:
    offset_hi: int | None
    blocks: list[BlockMeta]


class MetricsStore:
    """Head + blocks of every tenant's metrics. Thread-safe: appends and reads take the head
    lock briefly; flush, compaction and retention are serialised by a write lock."""

    def __init__(self, blocks: BlockStore, cfg: Storage, registry: Registry, *,
                 limits: MetricsLimits | None = None) -> None:
        self.blocks = blocks
        self.cfg = cfg
        self.limits = limits or MetricsLimits()
        self.head = MetricsHead(self.limits)
        self._write_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._index_cache: OrderedDict[str, BlockIndex] = OrderedDict()
        self._meta_cache: OrderedDict[str, dict[str, dict[str, str]]] = OrderedDict()
        self._init_metrics(registry)

    def _init_metrics(self, registry: Registry) -> None:
        c = registry.counter
        self._appended = c("lookout_metrics_samples_appended_total", "Samples appended to the metrics head.")
        self._ignored = c("lookout_metrics_samples_ignored_total",
                          "Samples dropped as exact duplicates (same series, timestamp and value).")
        self._refused = c("lookout_metrics_samples_refused_total", "Samples refused by the metrics head, by reason.")
        self._series_created = c("lookout_metrics_series_created_total", "Series created in the metrics head.")
        self._series_removed = c("lookout_metrics_series_removed_total", "Idle series removed from the head.")
        self._exemplars = c("lookout_metrics_exemplars_appended_total", "Exemplars appended to the metrics head.")
        self._flushes = c("lookout_flushes_total", "Head flushes to blocks, by signal.")
        self._flush_seconds = c("lookout_flush_duration_seconds_total", "Time spent flushing the head, by signal.")
        self._compactions = c("lookout_compactions_total", "Compaction runs, by signal.")
        self._compaction_seconds = c("lookout_compaction_duration_seconds_total", "Time spent compacting, by signal.")
        self._compaction_failures = c("lookout_compaction_failures_total", "Compaction runs that failed, by signal.")
        self._retention_deleted = c("lookout_retention_deleted_blocks_total", "Blocks deleted by retention, by signal.")
        registry.add_collector(self._collect)

    # ---- write path -------------------------------------------------------------------------

    def append(self, tenant: str, batch: MetricBatch, offset_hi: int | None = None, *,
               offset_lo: int | None = None, raw_bytes: int = 0) -> AppendStats:
        """Append a batch to the tenant's head; returns what was accepted and refused by reason.

        ``offset_hi`` is the (exclusive) end of the log range this batch came from: the next
        flush commits the highest one it covers. The sink must append every batch of a record
        range before the consumer may flush (the log consumer is single-threaded, so it is)."""
        validate_name(tenant, "tenant")
        stats = AppendStats()
        self.head.append(tenant, batch, offset_hi, offset_lo, stats, raw_bytes)
        if stats.accepted:
            self._appended.inc(stats.accepted, tenant=tenant)
        if stats.ignored:
            self._ignored.inc(stats.ignored, tenant=tenant)
        for reason, n in stats.refused.items():
            self._refused.inc(n, tenant=tenant, reason=reason)
        if stats.new_series:
            self._series_created.inc(stats.new_series, tenant=tenant)
        if stats.exemplars:
            self._exemplars.inc(stats.exemplars, tenant=tenant)
        return stats

    def mark_consumed(self, offset_hi: int) -> None:
        """Log records that decoded to nothing still advance the offset the next flush commits."""
        self.head.mark_consumed(offset_hi)

    def head_bytes(self) -> int:
        """Bytes held by the head (samples exactly, registry estimated), live and flushing."""
        return self.head.nbytes()

    def flush_due(self) -> bool:
        return self.head.pending() and (
            self.head.live_bytes >= self.cfg.flush_size or self.head.age() >= self.cfg.flush_interval)

    def active_series(self, tenant: str) -> int:
        th = self.head.tenants.get(tenant)
        return th.active if th is not None else 0

    def tenant_over_series_limit(self, tenant: str) -> bool:
        return self.active_series(tenant) >= self.limits.max_active_series_per_tenant

    def would_exceed_series_limit(self, tenant: str, batch: MetricBatch) -> bool:
        """Whether appending ``batch`` needs series beyond the tenant's limit: only a request that
        brings new series is refused once the tenant is full; its existing series keep ingesting."""
        return self.tenant_over_series_limit(tenant) and self.head.unknown_series(tenant, batch) > 0

    def flush(self, commit: Callable[[int], None]) -> FlushResult | None:
        """Write the head as blocks (one per tenant and UTC day), then ``commit`` the log offset
        they cover; on any failure the snapshot goes back into the head and nothing is
        committed. The commit runs under the write lock so compaction never merges a block whose
        log range is not committed yet (recovery deletes exactly those and replays them)."""
        with self._write_lock:
            snap = self.head.snapshot()
            if snap is None:
                return None
            started = time.monotonic()
            written: list[BlockMeta] = []
            flushed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            leftovers: dict[str, list[pa.Table]] = {}
            try:
                for tenant in sorted(snap.tenants):
                    ts = snap.tenants[tenant]
                    if ts.chunk is None or not ts.chunk.n:
                        leftovers[tenant] = ts.exemplars
                        continue
                    written += self._flush_tenant(tenant, snap)
                    flushed[tenant] = (ts.chunk.nums, ts.chunk.t)
                if snap.offset_hi is not None:
                    commit(snap.offset_hi)
            except BaseException:
                self.head.restore(snap)
                raise
            removed = self.head.release(snap, flushed)
            for tenant, tables in leftovers.items():
                self.head.readd_exemplars(tenant, tables)
            if removed:
                self._series_removed.inc(removed)
            self._flushes.inc(signal=SIGNAL)
            self._flush_seconds.inc(time.monotonic() - started, signal=SIGNAL)
            return FlushResult(snap.offset_hi, written)

    def _flush_tenant(self, tenant: str, snap: HeadSnapshot) -> list[BlockMeta]:
        ts = snap.tenants[tenant]
        chunk: Chunk = ts.chunk  # type: ignore[assignment]
        with self.head.lock:
            th = self.head.tenants[tenant]
            sid = th.ids[chunk.nums]
            uniq_nums = np.unique(chunk.nums)
            label_sids = th.ids[uniq_nums]
            keys = [th.keys[i] for i in uniq_nums.tolist()]
            metadata = dict(th.metadata)
        order = np.argsort(label_sids)
        label_sids = label_sids[order]
        labels = labels_from_keys([keys[i] for i in order.tolist()])
        keep = self._head_order(chunk.nums, chunk.t)
        sid, t, v = sid[keep], chunk.t[keep], chunk.v[keep]
        exemplars = pa.concat_tables(ts.exemplars) if ts.exemplars else None
        days = t // MS_PER_DAY
        parts = np.unique(days)
        out = []
        for i, day in enumerate(parts.tolist()):
            mask = days == day if len(parts) > 1 else slice(None)
            ex = _exemplars_of_day(exemplars, day, last=i == len(parts) - 1) if len(parts) > 1 else exemplars
            source = _wal_source(snap) if len(parts) == 1 else {**_wal_source(snap), "day": int(day)}
            out.append(self._write(tenant, samples_table(sid[mask], t[mask], v[mask]), label_sids, labels, ex,
                                   metadata, source, level=0, replaces=(), raw_bytes=ts.raw_bytes if i == 0 else 0,
                                   compression_level=ZSTD_LEVEL))
        return out

    def _head_order(self, k: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Order head samples by (series, t). Without an out-of-order window every series'
        samples were appended in strictly rising time, so a stable sort by series suffices;
        with one, equal (series, t) may repeat and the first write wins."""
        if self.limits.out_of_order_window_ms <= 0:
            return np.argsort(k, kind="stable")
        return order_unique(k, t, "first")

    def _write(self, tenant: str, table: pa.Table, label_sids: np.ndarray, labels: pa.ListArray,
               exemplars: pa.Table | None, metadata: dict[str, dict[str, str]], source: dict[str, Any], *,
               level: int, replaces: Iterable[str], raw_bytes: int, compression_level: int) -> BlockMeta:
        def sidecars(sorted_table: pa.Table) -> dict[str, bytes]:
            return build_sidecars(sorted_table, label_sids, labels, exemplars, metadata)

        return self.blocks.write_block(
            tenant, SIGNAL, table, sort_keys=SORT_KEYS, time_column=TIME_COLUMN, key_column=KEY_COLUMN,
            level=level, sidecars=sidecars, source=source, replaces=replaces, raw_bytes=raw_bytes,
            row_group_rows=self.cfg.row_group_rows, compression_level=compression_level,
            writer_options=PARQUET_WRITER_OPTIONS)

    # ---- compaction and retention -----------------------------------------------------------

    def compact(self, now_ns: int | None = None) -> list[BlockMeta]:
        """Merge the blocks of each tenant per compaction window (deduplicating equal
        (series, timestamp), the newest block winning). A window still open (before its end +
        10 min) is merged only once it has many blocks, so an hour is not rewritten every run."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        with self._write_lock:
            started = time.monotonic()
            out: list[BlockMeta] = []
            try:
                for tenant in self.blocks.tenants(SIGNAL):
                    for group in self._compaction_groups(tenant, now_ns):
                        out.append(self._merge(tenant, group))
            except Exception:
                self._compaction_failures.inc(signal=SIGNAL)
                log.exception("metrics compaction failed")
                return out
            self._compactions.inc(signal=SIGNAL)
            self._compaction_seconds.inc(time.monotonic() - started, signal=SIGNAL)
            return out

    def _compaction_groups(self, tenant: str, now_ns: int) -> list[list[BlockMeta]]:
        window_ns = int(self.cfg.compaction_window * 1e9)
        windows: dict[int, list[BlockMeta]] = {}
        for m in self.blocks.list_blocks(tenant, SIGNAL):
            windows.setdefault(m.min_time_ns // window_ns, []).append(m)
        min_blocks = max(2, self.cfg.compaction_min_blocks)
        groups = []
        for w, metas in sorted(windows.items()):
            sealed = (w + 1) * window_ns + SEAL_GRACE_S * 1e9 <= now_ns
            if len(metas) < (min_blocks if sealed else max(min_blocks, OPEN_WINDOW_MIN_BLOCKS)):
                continue
            metas.sort(key=lambda m: (m.level, m.min_time_ns, m.block_id))
            cur: list[BlockMeta] = []
            rows = 0
            for m in metas:
                if cur and rows + m.rows > MAX_COMPACTION_ROWS:
                    groups.append(cur)
                    cur, rows = [], 0
                cur.append(m)
                rows += m.rows
            groups.append(cur)
        return [g for g in groups if len(g) >= min_blocks]

    def _merge(self, tenant: str, inputs: list[BlockMeta]) -> BlockMeta:
        ordered = sorted(inputs, key=lambda m: (m.created_at, m.block_id))
        sids, ts, vs, label_parts, exemplars = [], [], [], [], []
        metadata: dict[str, dict[str, str]] = {}
        for m in ordered:
            sid, t, v = read_all_samples(self.blocks, m)
            sids.append(sid)
            ts.append(t)
            vs.append(v)
            idx = self._index(m)
            label_parts.append((idx.series_id, idx.labels))
            exemplars.append(read_exemplars(self.blocks, m))
            metadata.update(read_metadata(self.blocks, m))
        sid, t, v = np.concatenate(sids), np.concatenate(ts), np.concatenate(vs)
        keep = order_unique(dense_series(sid), t, "last")  # inputs in creation order: the newest wins
        label_sids, labels = merge_label_tables(label_parts)
        ex = pa.concat_tables(exemplars)
        if ex.num_rows:
            ex = ex.take(pa.array(dedupe_first(ex.column("series_id").to_numpy(), ex.column("t").to_numpy())))
        ids = sorted(m.block_id for m in inputs)
        source: dict[str, Any] = {"kind": "compaction", "inputs": ids}
        los = [m.source["offset_lo"] for m in inputs if m.source.get("offset_lo") is not None]
        his = [m.source["offset_hi"] for m in inputs if m.source.get("offset_hi") is not None]
        if los and his:
            source["offset_lo"], source["offset_hi"] = min(los), max(his)
        out = self._write(tenant, samples_table(sid[keep], t[keep], v[keep]), label_sids, labels,
                          ex if ex.num_rows else None, metadata, source, level=max(m.level for m in inputs) + 1,
                          replaces=ids, raw_bytes=sum(m.raw_bytes for m in inputs),
                          compression_level=COMPACTED_ZSTD_LEVEL)
        for m in inputs:
            if self.blocks.get(m.block_id) is not None:
                self.blocks.delete_block(m)
        self._forget_blocks(ids)
        log.info("metrics: compacted %d blocks of %s into %s (%d -> %d samples)", len(inputs), tenant,
                 out.block_id, len(sid), out.rows)
        return out

    def apply_retention(self, now_ns: int | None = None) -> int:
        """Delete metric blocks whose newest sample is older than ``storage.retention``. Note it
        goes by sample time: data loaded at ancient timestamps leaves at the next run."""
        with self._write_lock:
            n = apply_retention(self.blocks, retention_s=self.cfg.retention, now_ns=now_ns, signal=SIGNAL)
        self._retention_deleted.inc(n, signal=SIGNAL)
        return n

    # ---- block access -----------------------------------------------------------------------

    def _index(self, meta: BlockMeta) -> BlockIndex:
        with self._cache_lock:
            idx = self._index_cache.get(meta.block_id)
            if idx is not None:
                self._index_cache.move_to_end(meta.block_id)
                return idx
        idx = load_index(self.blocks, meta)
        with self._cache_lock:
            self._index_cache[meta.block_id] = idx
            while len(self._index_cache) > INDEX_CACHE_BLOCKS:
                self._index_cache.popitem(last=False)
        return idx

    def _block_metadata(self, meta: BlockMeta) -> dict[str, dict[str, str]]:
        with self._cache_lock:
            md = self._meta_cache.get(meta.block_id)
        if md is None:
            md = read_metadata(self.blocks, meta)
            with self._cache_lock:
                self._meta_cache[meta.block_id] = md
                while len(self._meta_cache) > INDEX_CACHE_BLOCKS:
                    self._meta_cache.popitem(last=False)
        return md

    def _forget_blocks(self, ids: Iterable[str]) -> None:
        with self._cache_lock:
            for i in ids:
                self._index_cache.pop(i, None)
                self._meta_cache.pop(i, None)

    def blocks_in(self, tenant: str, start_ms: int, end_ms: int) -> list[BlockMeta]:
        """Committed blocks overlapping the range, oldest written first (later ones win)."""
        metas = [m for m in self.blocks.list_blocks(tenant, SIGNAL) if meta_time_overlaps(m, start_ms, end_ms)]
        metas.sort(key=lambda m: (m.created_at, m.block_id))
        return metas

    # ---- reads ------------------------------------------------------------------------------

    def querier(self, tenant: str) -> MetricsQuerier:
        return MetricsQuerier(self, tenant)

    def metadata(self, tenant: str, metric: str | None = None, limit: int = -1) -> dict[str, list[dict[str, str]]]:
        """Prometheus ``/api/v1/metadata``: metric -> [{type, help, unit}], the head's entry
        first, then differing ones from blocks; at most ``limit`` metrics (all if <= 0)."""
        found: dict[str, list[dict[str, str]]] = {}
        with self.head.lock:
            th = self.head.tenants.get(tenant)
            head_md = dict(th.metadata) if th is not None else {}
        sources = [head_md] + [self._block_metadata(m) for m in reversed(self.blocks_in(tenant, INT64_MIN,
                                                                                           INT64_MAX))]
        for md in sources:
            for name, entry in md.items():
                if metric is not None and name != metric:
                    continue
                e = {"type": entry.get("type", "unknown"), "help": entry.get("help", ""), "unit": entry.get("unit", "")}
                lst = found.setdefault(name, [])
                if e not in lst:
                    lst.append(e)
        names = sorted(found)
        if limit is not None and limit > 0:
            names = names[:limit]
        return {n: found[n] for n in names}

    def exemplars(self, tenant: str, matcher_sets: list[list[Matcher]], start_ms: int,
                  end_ms: int) -> list[dict[str, Any]]:
        """Prometheus ``/api/v1/query_exemplars``: [{seriesLabels, exemplars: [{labels, value,
        timestamp}]}] for the series matching any matcher set."""
        if not matcher_sets:
            return []
        q = self.querier(tenant)
        matched = q.matched_series(matcher_sets, start_ms, end_ms)
        if not matched:
            return []
        tables = self._head_exemplars(tenant)
        tables += [read_exemplars(self.blocks, m) for m in self.blocks_in(tenant, start_ms, end_ms)]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return []
        ex = pa.concat_tables(tables)
        wanted = pa.array(np.fromiter(matched, np.uint64, len(matched)), pa.uint64())
        keep = pc.and_(pc.is_in(ex.column("series_id"), value_set=wanted),
                       pc.and_(pc.greater_equal(ex.column("t"), start_ms), pc.less_equal(ex.column("t"), end_ms)))
        ex = ex.filter(keep)
        if not ex.num_rows:
            return []
        ex = ex.take(pa.array(dedupe_first(ex.column("series_id").to_numpy(), ex.column("t").to_numpy())))
        return _exemplar_json(ex, matched)

    def _head_exemplars(self, tenant: str) -> list[pa.Table]:
        with self.head.lock:
            out = [t for s in self.head.flushing if tenant in s.tenants for t in s.tenants[tenant].exemplars]
            th = self.head.tenants.get(tenant)
            if th is not None:
                out += th.exemplars
            return out

    def tsdb_status(self, tenant: str, top: int = 10) -> dict[str, Any]:
        """Prometheus ``/api/v1/status/tsdb`` for the tenant's head (as Prometheus, which also
        reports its head only)."""
        with self.head.lock:
            th = self.head.tenants.get(tenant)
            if th is None:
                pairs: list[tuple[str, str, int]] = []
                num_series, chunks = 0, []
            else:
                pairs = [(n, v, len(bm)) for n in th.postings.names() for v, bm in th.postings.values_of(n).items()]
                num_series = th.active
                chunks = list(th.live) + [s.tenants[tenant].chunk for s in self.head.flushing
                                          if tenant in s.tenants and s.tenants[tenant].chunk is not None]
        by_name: dict[str, list[int]] = {}
        for n, v, c in pairs:
            acc = by_name.setdefault(n, [0, 0])
            acc[0] += 1
            acc[1] += len(v.encode()) * c
        min_t, max_t, chunk_count = _chunk_stats(chunks)

        def topn(items: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
            return [{"name": k, "value": v} for k, v in sorted(items, key=lambda kv: (-kv[1], kv[0]))[:top]]

        return {
            "headStats": {"numSeries": num_series, "numLabelPairs": len(pairs), "chunkCount": chunk_count,
                          "minTime": min_t, "maxTime": max_t},
            "seriesCountByMetricName": topn((v, c) for n, v, c in pairs if n == "__name__"),
            "labelValueCountByLabelName": topn((n, a[0]) for n, a in by_name.items()),
            "memoryInBytesByLabelName": topn((n, a[1]) for n, a in by_name.items()),
            "seriesCountByLabelValuePair": topn((f"{n}={v}", c) for n, v, c in pairs),
        }

    # ---- self-monitoring --------------------------------------------------------------------

    def _collect(self):
        with self.head.lock:
            per_tenant = [({"tenant": name}, th.active) for name, th in sorted(self.head.tenants.items())]
            live_samples = sum(c.n for th in self.head.tenants.values() for c in th.live)
        yield ("lookout_metrics_active_series", "gauge", "Series in the metrics head, by tenant.",
               [("lookout_metrics_active_series", labels, n) for labels, n in per_tenant])
        yield ("lookout_metrics_head_samples", "gauge", "Samples in the live metrics head.",
               [("lookout_metrics_head_samples", {}, live_samples)])
        yield ("lookout_metrics_head_bytes", "gauge", "Bytes held in the metrics head (live and flushing).",
               [("lookout_metrics_head_bytes", {}, self.head.nbytes())])
        metas = self.blocks.list_blocks(None, SIGNAL)
        yield ("lookout_metrics_blocks", "gauge", "Committed metric blocks.",
               [("lookout_metrics_blocks", {}, len(metas))])
        yield ("lookout_metrics_block_bytes", "gauge", "Bytes stored in committed metric blocks.",
               [("lookout_metrics_block_bytes", {}, sum(m.stored_bytes for m in metas))])


# --------------------------------------------------------------------------------------------
# the querier


class MetricsQuerier:
    """The :class:`~lookout.metrics.model.Querier` of one tenant over head + blocks."""

    def __init__(self, store: MetricsStore, tenant: str) -> None:
        self.store = store
        self.tenant = tenant

    def select(self, matchers: list[Matcher], start_ms: int, end_ms: int) -> list[Series]:
        """Series matching all ``matchers`` with their samples in ``[start_ms, end_ms]``,
        sorted by labels; duplicates of a timestamp resolve head > newer block > older block."""
        sids: list[np.ndarray] = []
        ts: list[np.ndarray] = []
        vs: list[np.ndarray] = []
        known: dict[int, dict[str, str]] = {}
        block_sel: list[tuple[BlockIndex, np.ndarray]] = []
        # The head first, then the block list: a flush that completes in between (block
        # committed, snapshot released) then shows its samples twice (deduplicated below)
        # instead of in neither source.
        hsid, ht, hv, hkeys = self._head_samples(matchers, start_ms, end_ms)
        blocks = self.store.blocks_in(self.tenant, start_ms, end_ms)
        for meta in blocks:
            idx = self.store._index(meta)
            rows = np.flatnonzero(idx.postings.select(matchers) & idx.in_range(start_ms, end_ms))
            if not len(rows):
                continue
            sid, t, v = read_samples(self.store.blocks, idx, rows, start_ms, end_ms)
            if len(sid):
                _add_part(sids, ts, vs, (sid, t, v))
                block_sel.append((idx, rows))
        if len(hsid):  # appended last: the head has the highest priority
            _add_part(sids, ts, vs, (hsid, ht, hv))
            known.update(hkeys)
        if not sids:
            return []
        if len(sids) == 1:
            sid, t, v = sids[0], ts[0], vs[0]  # one source: grouped by series, sorted and unique
        else:
            # parts are in rising priority (older blocks, newer blocks, head): keep the last
            sid, t, v = np.concatenate(sids), np.concatenate(ts), np.concatenate(vs)
            keep = order_unique(dense_series(sid), t, "last")
            sid, t, v = sid[keep], t[keep], v[keep]
        starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        labels = self._labels_for(sid[starts], known, block_sel)
        return _split_series(sid, t, v, starts, labels)

    def _head_samples(self, matchers: list[Matcher], start_ms: int,
                      end_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, dict[str, str]]]:
        head = self.store.head
        empty = (np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.float64), {})
        with head.lock:
            th = head.tenants.get(self.tenant)
            if th is None:
                return empty
            nums = _bitmap_np(th.postings.select(matchers))
            if not len(nums):
                return empty
            chunks = [s.tenants[self.tenant].chunk for s in head.flushing
                      if self.tenant in s.tenants and s.tenants[self.tenant].chunk is not None]
            chunks += th.live
            sel_ids = th.ids[nums]
            keys = [th.keys[i] for i in nums.tolist()]
            cap = len(th.keys)
        lut = np.full(cap, -1, np.int64)
        lut[nums] = np.arange(len(nums))
        parts_j, parts_t, parts_v = [], [], []
        for c in chunks:
            j = lut[c.nums]
            m = (j >= 0) & (c.t >= start_ms) & (c.t <= end_ms)
            if m.any():
                parts_j.append(j[m])
                parts_t.append(c.t[m])
                parts_v.append(c.v[m])
        if not parts_j:
            return empty
        j, t, v = np.concatenate(parts_j), np.concatenate(parts_t), np.concatenate(parts_v)
        keep = self.store._head_order(j, t)
        j, t, v = j[keep], t[keep], v[keep]
        present = np.unique(j[np.r_[True, j[1:] != j[:-1]]]).tolist()
        labels = {int(sel_ids[i]): key_to_dict(keys[i]) for i in present}  # type: ignore[arg-type]
        return sel_ids[j], t, v, labels

    @staticmethod
    def _labels_for(sids: np.ndarray, known: dict[int, dict[str, str]],
                    block_sel: list[tuple[BlockIndex, np.ndarray]]) -> dict[int, dict[str, str]]:
        out = {s: known[s] for s in sids.tolist() if s in known}
        for idx, rows in block_sel:
            if len(out) == len(sids):
                break
            missing = np.fromiter((s for s in sids.tolist() if s not in out), np.uint64)
            need = rows[np.isin(idx.series_id[rows], missing)]
            for s, lb in zip(idx.series_id[need].tolist(), idx.label_dicts(need), strict=True):
                out[s] = lb
        return out

    # -- label and series APIs

    def matched_series(self, matcher_sets: list[list[Matcher]], start_ms: int,
                       end_ms: int) -> dict[int, dict[str, str]]:
        """series_id -> labels of the series matching any matcher set with data in the range
        (per series exactly for blocks; for the head, by its oldest and newest sample)."""
        out: dict[int, dict[str, str]] = {}
        head = self.store.head
        with head.lock:
            th = head.tenants.get(self.tenant)
            if th is not None:
                for ms in matcher_sets:
                    nums = _bitmap_np(th.postings.select(ms))
                    nums = nums[(th.last_t[nums] >= start_ms) & (th.first_t[nums] <= end_ms)]
                    for s, n in zip(th.ids[nums].tolist(), nums.tolist(), strict=True):
                        if s not in out:
                            out[s] = key_to_dict(th.keys[n])  # type: ignore[arg-type]
        for meta in self.store.blocks_in(self.tenant, start_ms, end_ms):
            idx = self.store._index(meta)
            in_range = idx.in_range(start_ms, end_ms)
            for ms in matcher_sets:
                rows = np.flatnonzero(idx.postings.select(ms) & in_range)
                rows = rows[~np.isin(idx.series_id[rows], np.fromiter(out, np.uint64, len(out)))]
                for s, lb in zip(idx.series_id[rows].tolist(), idx.label_dicts(rows), strict=True):
                    out[s] = lb
        return out

    def series(self, matchers: list[list[Matcher]], start_ms: int, end_ms: int) -> list[dict[str, str]]:
        found = self.matched_series(matchers or [[]], start_ms, end_ms)
        return sorted(found.values(), key=lambda lb: tuple(lb.items()))

    def label_names(self, matchers: list[list[Matcher]], start_ms: int, end_ms: int) -> list[str]:
        if matchers:
            return sorted({n for lb in self.matched_series(matchers, start_ms, end_ms).values() for n in lb})
        names: set[str] = set()
        if self._head_overlaps(start_ms, end_ms):
            with self.store.head.lock:
                names.update(self.store.head.tenants[self.tenant].postings.names())
        for meta in self.store.blocks_in(self.tenant, start_ms, end_ms):
            names.update(self.store._index(meta).postings.names())
        return sorted(names)

    def label_values(self, name: str, matchers: list[list[Matcher]], start_ms: int, end_ms: int) -> list[str]:
        if matchers:
            found = self.matched_series(matchers, start_ms, end_ms).values()
            return sorted({lb[name] for lb in found if lb.get(name)})
        values: set[str] = set()
        if self._head_overlaps(start_ms, end_ms):
            with self.store.head.lock:
                values.update(self.store.head.tenants[self.tenant].postings.values_of(name))
        for meta in self.store.blocks_in(self.tenant, start_ms, end_ms):
            values.update(self.store._index(meta).postings.label(name)[0].to_pylist())
        values.discard("")
        return sorted(values)

    def _head_overlaps(self, start_ms: int, end_ms: int) -> bool:
        with self.store.head.lock:
            th = self.store.head.tenants.get(self.tenant)
            if th is None or not th.active:
                return False
            n = len(th.keys)
            return bool(((th.last_t[:n] >= start_ms) & (th.first_t[:n] <= end_ms)).any())


# --------------------------------------------------------------------------------------------
# helpers


def _add_part(sids: list, ts: list, vs: list, part: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    sids.append(part[0])
    ts.append(part[1])
    vs.append(part[2])


def _bitmap_np(bm) -> np.ndarray:
    arr = bm.to_array()
    return np.frombuffer(arr, dtype=np.uint32).astype(np.int64) if len(arr) else np.zeros(0, np.int64)


def _split_series(sid: np.ndarray, t: np.ndarray, v: np.ndarray, starts: np.ndarray,
                  labels: dict[int, dict[str, str]]) -> list[Series]:
    """Samples grouped by series (runs starting at ``starts``, time-sorted) to one
    :class:`Series` per id (views, no copy), sorted by labels."""
    if not len(sid):
        return []
    ends = np.r_[starts[1:], len(sid)]
    out = [Series(labels[s], t[a:b], v[a:b])
           for s, a, b in zip(sid[starts].tolist(), starts.tolist(), ends.tolist(), strict=True)]
    out.sort(key=lambda s: tuple(s.labels.items()))
    return out


def _wal_source(snap: HeadSnapshot) -> dict[str, Any]:
    if snap.offset_hi is None:
        # appends without log offsets (in-process use): a unique source, so no id collides
        return {"kind": "direct", "seq": snap.seq, "at_ns": time.time_ns()}
    lo = snap.offset_lo if snap.offset_lo is not None else snap.offset_hi
    return {"kind": "wal", "offset_lo": lo, "offset_hi": snap.offset_hi}


def _exemplars_of_day(ex: pa.Table | None, day: int, *, last: bool) -> pa.Table | None:
    """Exemplars of one UTC day; those of days without samples go with the last block."""
    if ex is None:
        return None
    days = np.asarray(ex.column("t").to_numpy(), dtype=np.int64) // MS_PER_DAY
    mask = days == day
    if last:
        mask |= days > day
    if not mask.any():
        return None
    return ex.filter(pa.array(mask))


def _chunk_stats(chunks: list[Chunk]) -> tuple[int, int, int]:
    """(minTime, maxTime, chunkCount) as Prometheus reports its head: empty head ->
    (MaxInt64, MinInt64); chunks counted as 120-sample chunks per series."""
    chunks = [c for c in chunks if c.n]
    if not chunks:
        return int(INT64_MAX), int(INT64_MIN), 0
    min_t = min(int(c.t.min()) for c in chunks)
    max_t = max(int(c.t.max()) for c in chunks)
    nums = np.concatenate([c.nums for c in chunks])
    counts = np.bincount(nums)
    return min_t, max_t, int(np.ceil(counts[counts > 0] / 120).sum())


def _exemplar_json(ex: pa.Table, matched: dict[int, dict[str, str]]) -> list[dict[str, Any]]:
    try:
        from lookout.metrics.promql.format import format_float
    except Exception:  # the engine package is optional for the store
        format_float = repr  # type: ignore[assignment]
    ex = ex.sort_by([("series_id", "ascending"), ("t", "ascending")])
    out: dict[int, dict[str, Any]] = {}
    for s, t, v, lbs in zip(ex.column("series_id").to_pylist(), ex.column("t").to_pylist(),
                            ex.column("v").to_pylist(), ex.column("labels").to_pylist(), strict=True):
        entry = out.get(s)
        if entry is None:
            entry = out[s] = {"seriesLabels": matched[s], "exemplars": []}
        value = format_float(v) if math.isfinite(v) else ("NaN" if v != v else ("+Inf" if v > 0 else "-Inf"))
        entry["exemplars"].append({"labels": {p["name"]: p["value"] for p in lbs}, "value": value,
                                   "timestamp": t / 1000})
    return sorted(out.values(), key=lambda e: tuple(e["seriesLabels"].items()))
