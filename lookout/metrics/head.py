"""The metrics head: series registry, postings and columnar samples in RAM until a flush.

Per tenant (:class:`TenantHead`):

- a **series registry**: canonical label key -> dense series number, and per number the xxh64
  series id, the newest sample (time and value bits, for out-of-order and duplicate checks), the
  newest time already flushed to a block, and when it was last written (for idle collection);
- **postings** (:class:`~lookout.metrics.postings.MemPostings`) over the series numbers;
- **samples** as immutable numpy chunks ``(num uint32, t int64 ms, v float64)``, merged
  binary-counter style so a tenant holds O(log n) chunks however small the batches are;
- recent **exemplars** (Arrow tables, bounded) and **metadata** (latest per metric family).

Appending is vectorised: Python touches each *distinct series of a batch* once (a dict lookup
of its canonical key, ~65 ns) and each *new* series a few more times; samples are only ever
handled as arrays. The multi-tenant :class:`MetricsHead` adds the flush protocol of the trace
head: snapshot (still queryable) -> blocks written -> release, or restore on failure, and the
log offset that the snapshot covers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.metrics.batch import MetricBatch
from lookout.metrics.postings import MemPostings
from lookout.metrics.schema import (
    EXEMPLARS_TABLE_SCHEMA,
    MAX_ABS_T_MS,
    canonical_keys,
    key_pairs,
    normalize_labels,
    series_id,
)

INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max

# refusal reasons, as counted (labels of lookout_metrics_samples_refused_total)
OUT_OF_ORDER = "out_of_order"
TOO_OLD = "too_old"
DUPLICATE = "duplicate_sample_for_timestamp"
SERIES_LIMIT = "series_limit"
HEAD_SERIES_LIMIT = "head_series_limit"
OUT_OF_RANGE = "timestamp_out_of_range"
INVALID_SERIES = "invalid_series"
HASH_COLLISION = "series_hash_collision"
_SERIES_REASONS = ["", SERIES_LIMIT, HEAD_SERIES_LIMIT, INVALID_SERIES, HASH_COLLISION]


@dataclass(slots=True)
class MetricsLimits:
    """Per-tenant bounds of the metrics head (the lead maps ``config.Metrics`` onto this)."""

    max_active_series_per_tenant: int = 1_000_000
    out_of_order_window_ms: int = 0  # 0: refuse samples older than the series' newest, as Prometheus
    max_head_series: int = 20_000_000  # all tenants together: a hard memory bound
    series_idle_timeout_s: float = 3600.0  # series with no sample for this long leave the head
    max_sample_age_ms: int = 0  # 0: any age is accepted (PromQL tests load samples at t=0)
    max_exemplars_per_tenant: int = 100_000  # ring of the newest, in the head
    max_metadata_per_tenant: int = 100_000  # metric families


@dataclass(slots=True)
class AppendStats:
    """What became of one :meth:`MetricsHead.append`: ``ignored`` are exact duplicates (same
    timestamp and value), silently dropped as Prometheus does; ``refused`` counts by reason."""

    accepted: int = 0
    ignored: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    new_series: int = 0
    exemplars: int = 0

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    def refuse(self, reason: str, n: int) -> None:
        if n:
            self.refused[reason] = self.refused.get(reason, 0) + int(n)


@dataclass(slots=True)
class Chunk:
    """Immutable samples; rows are sorted by (num, t) within a chunk, not across chunks."""

    nums: np.ndarray  # uint32
    t: np.ndarray  # int64 ms
    v: np.ndarray  # float64

    @property
    def n(self) -> int:
        return len(self.t)

    @property
    def nbytes(self) -> int:
        return self.nums.nbytes + self.t.nbytes + self.v.nbytes

    @staticmethod
    def concat(chunks: list[Chunk]) -> Chunk:
        if len(chunks) == 1:
            return chunks[0]
        return Chunk(np.concatenate([c.nums for c in chunks]), np.concatenate([c.t for c in chunks]),
                     np.concatenate([c.v for c in chunks]))


def _push_chunk(chunks: list[Chunk], c: Chunk) -> None:
    """Append and merge like a binary counter: O(log n) chunks, O(n log n) copying overall."""
    chunks.append(c)
    while len(chunks) >= 2 and chunks[-2].n <= 2 * chunks[-1].n:
        last = chunks.pop()
        chunks[-1] = Chunk.concat([chunks[-1], last])


# --------------------------------------------------------------------------------------------
# one tenant


class TenantHead:
    """One tenant's registry, postings, samples, exemplars and metadata. The caller
    (:class:`MetricsHead`) serialises access with its lock."""

    def __init__(self) -> None:
        self.postings = MemPostings()
        self.key2num: dict[bytes, int] = {}
        self.id2num: dict[int, int] = {}
        self.keys: list[bytes | None] = []
        cap = 1024
        self.ids = np.zeros(cap, np.uint64)
        self.last_t = np.full(cap, INT64_MIN, np.int64)
        self.last_v = np.zeros(cap, np.uint64)  # bit patterns: stale markers and NaNs compare exactly
        self.flushed_t = np.full(cap, INT64_MIN, np.int64)
        self.first_t = np.full(cap, INT64_MAX, np.int64)  # oldest sample appended (range checks)
        self.seen = np.zeros(cap, np.float64)
        self.alive = np.zeros(cap, dtype=bool)
        self.free: list[int] = []
        self.active = 0
        self.key_bytes = 0
        self.raw_bytes = 0
        self.live: list[Chunk] = []
        self.live_bytes = 0
        self.exemplars: list[pa.Table] = []
        self.exemplar_rows = 0
        self.metadata: dict[str, dict[str, str]] = {}

    # ---- registry ----------------------------------------------------------------------------

    def _grow(self, need: int) -> None:
        cap = len(self.ids)
        if need <= cap:
            return
        new = max(need, cap * 2)
        self.ids = np.concatenate([self.ids, np.zeros(new - cap, np.uint64)])
        self.last_t = np.concatenate([self.last_t, np.full(new - cap, INT64_MIN, np.int64)])
        self.last_v = np.concatenate([self.last_v, np.zeros(new - cap, np.uint64)])
        self.flushed_t = np.concatenate([self.flushed_t, np.full(new - cap, INT64_MIN, np.int64)])
        self.first_t = np.concatenate([self.first_t, np.full(new - cap, INT64_MAX, np.int64)])
        self.seen = np.concatenate([self.seen, np.zeros(new - cap, np.float64)])
        self.alive = np.concatenate([self.alive, np.zeros(new - cap, dtype=bool)])

    def _new_num(self) -> int:
        if self.free:
            return self.free.pop()
        num = len(self.keys)
        self.keys.append(None)
        self._grow(num + 1)
        return num

    def create_series(self, keys: list[bytes], rows: np.ndarray, tenant_room: int, head_room: int,
                      now: float, reasons: np.ndarray) -> np.ndarray:
        """Numbers for the series rows ``rows`` (not yet known); -1 where refused, with the
        reason code (index into ``_SERIES_REASONS``) in ``reasons``. Per-series Python work,
        for new series only."""
        out = np.full(len(rows), -1, np.int64)
        for i, r in enumerate(rows.tolist()):
            k = keys[r]
            num = self.key2num.get(k)
            if num is not None:  # the same series twice in one batch
                out[i] = num
                continue
            if tenant_room <= 0 or head_room <= 0:
                reasons[r] = 1 if tenant_room <= 0 else 2
                continue
            if not k:
                reasons[r] = 3
                continue
            sid = series_id(k)
            if sid in self.id2num:
                reasons[r] = 4
                continue
            num = self._new_num()
            self.keys[num] = k
            self.key2num[k] = num
            self.id2num[sid] = num
            self.ids[num] = sid
            self.last_t[num] = self.flushed_t[num] = INT64_MIN
            self.first_t[num] = INT64_MAX
            self.seen[num] = now
            self.alive[num] = True
            self.key_bytes += len(k)
            self.postings.all.add(num)
            for name, value in key_pairs(k):
                self.postings.add(name, value, (num,))
            self.active += 1
            tenant_room -= 1
            head_room -= 1
            out[i] = num
        return out

    def drop_series(self, nums: np.ndarray) -> int:
        """Forget idle series (no sample in any chunk): their numbers are reused."""
        for num in nums.tolist():
            k = self.keys[num]
            if k is None:
                continue
            self.postings.remove(num, key_pairs(k))
            del self.key2num[k]
            self.id2num.pop(int(self.ids[num]), None)
            self.keys[num] = None
            self.last_t[num] = self.flushed_t[num] = INT64_MIN
            self.first_t[num] = INT64_MAX
            self.alive[num] = False
            self.key_bytes -= len(k)
            self.free.append(num)
            self.active -= 1
        return len(nums)

    # ---- samples -----------------------------------------------------------------------------

    def check_samples(self, snum: np.ndarray, t: np.ndarray, vbits: np.ndarray, limits: MetricsLimits,
                      stats: AppendStats, now_ms: int) -> np.ndarray | None:
        """Indexes (into the batch's samples, in (series, t) order) of the samples to append.

        Within a batch, samples of a series are taken in time order. Rules, per sample against
        the newest sample of its series (in the head or earlier in the batch): newer -> append;
        same time -> ignore if the value bits are equal, refuse as a duplicate otherwise; older
        -> refuse (``too_old`` if that time is already flushed to a block, else
        ``out_of_order``), unless ``out_of_order_window_ms`` allows it."""
        ok = snum >= 0
        bad_t = (t > MAX_ABS_T_MS) | (t < -MAX_ABS_T_MS)
        if limits.max_sample_age_ms > 0:
            old = t < now_ms - limits.max_sample_age_ms
            stats.refuse(TOO_OLD, np.count_nonzero(old & ok & ~bad_t))
            bad_t |= old
        stats.refuse(OUT_OF_RANGE, np.count_nonzero(bad_t & ok))
        idx = np.flatnonzero(ok & ~bad_t)
        if not len(idx):
            return None
        order = idx[np.lexsort((t[idx], snum[idx]))]
        n_, t_, vb = snum[order], t[order], vbits[order]
        m = len(order)
        run_head = np.ones(m, dtype=bool)  # first sample of a run of equal (series, t)
        if m > 1:
            run_head[1:] = (n_[1:] != n_[:-1]) | (t_[1:] != t_[:-1])
        head_of = np.maximum.accumulate(np.where(run_head, np.arange(m), 0))

        hl_t, hl_v = self.last_t[n_], self.last_v[n_]
        newer = t_ > hl_t
        same_t = t_ == hl_t
        older = t_ < hl_t
        accept = run_head & newer
        ignore = run_head & same_t & (vb == hl_v)
        dup = run_head & same_t & ~ignore
        if limits.out_of_order_window_ms > 0:
            in_window = older & (t_ >= hl_t - limits.out_of_order_window_ms)
            accept |= run_head & in_window
            too_old = run_head & older & ~in_window
            ooo = np.zeros(m, dtype=bool)
        else:
            too_old = run_head & older & (t_ <= self.flushed_t[n_])
            ooo = run_head & older & ~too_old
        # the rest of a run follows its first sample: refused with it, else ignored when the
        # value bits are equal and refused as a duplicate when they differ
        member = ~run_head
        head_acc = accept[head_of] | ignore[head_of]
        same_val = vb == vb[head_of]
        ignore |= member & head_acc & same_val
        dup |= (member & head_acc & ~same_val) | (member & dup[head_of])
        too_old |= member & too_old[head_of]
        ooo |= member & ooo[head_of]

        stats.ignored += int(np.count_nonzero(ignore))
        stats.refuse(DUPLICATE, np.count_nonzero(dup))
        stats.refuse(TOO_OLD, np.count_nonzero(too_old))
        stats.refuse(OUT_OF_ORDER, np.count_nonzero(ooo))
        return order[accept]

    def append_samples(self, nums: np.ndarray, t: np.ndarray, v: np.ndarray, vbits: np.ndarray) -> Chunk:
        """Append accepted samples (sorted by (num, t)) and advance each series' newest sample."""
        chunk = Chunk(nums.astype(np.uint32), t, v)
        _push_chunk(self.live, chunk)
        self.live_bytes += chunk.nbytes
        last = np.ones(len(nums), dtype=bool)
        last[:-1] = nums[1:] != nums[:-1]
        first = np.ones(len(nums), dtype=bool)
        first[1:] = last[:-1]
        np.minimum.at(self.first_t, nums[first], t[first])
        ln, lt, lv = nums[last], t[last], vbits[last]
        upd = lt > self.last_t[ln]
        self.last_t[ln[upd]] = lt[upd]
        self.last_v[ln[upd]] = lv[upd]
        return chunk

    def add_exemplars(self, table: pa.Table, limit: int) -> int:
        """Keep the newest ``limit`` exemplars: whole oldest tables are dropped first."""
        if not table.num_rows:
            return 0
        self.exemplars.append(table)
        self.exemplar_rows += table.num_rows
        dropped = 0
        while self.exemplar_rows > limit and self.exemplars:
            first = self.exemplars[0]
            excess = self.exemplar_rows - limit
            if first.num_rows <= excess:
                self.exemplars.pop(0)
                cut = first.num_rows
            else:
                self.exemplars[0] = first.slice(excess)
                cut = excess
            self.exemplar_rows -= cut
            dropped += cut
        return dropped

    def add_metadata(self, batch: MetricBatch, limit: int) -> None:
        for md in batch.metadata:
            if md.metric in self.metadata or len(self.metadata) < limit:
                self.metadata[md.metric] = {"type": md.type, "unit": md.unit, "help": md.help}

    def nbytes(self) -> int:
        """An estimate: chunk arrays exactly, registry and postings at ~160 B per series plus
        the key bytes."""
        regs = len(self.keys) * (160 + 8 * 6)
        return self.live_bytes + regs + self.key_bytes + sum(t.nbytes for t in self.exemplars)


# --------------------------------------------------------------------------------------------
# all tenants


@dataclass(slots=True)
class TenantSnapshot:
    chunk: Chunk | None
    exemplars: list[pa.Table]
    nbytes: int
    raw_bytes: int = 0


@dataclass(slots=True)
class HeadSnapshot:
    tenants: dict[str, TenantSnapshot]
    offset_lo: int | None
    offset_hi: int | None  # exclusive end of the log range covered; None when appends had none
    taken_at: float
    seq: int


class MetricsHead:
    """Every tenant's :class:`TenantHead` plus the flush protocol (snapshot/release/restore)."""

    def __init__(self, limits: MetricsLimits) -> None:
        self.limits = limits
        self.lock = threading.RLock()
        self.tenants: dict[str, TenantHead] = {}
        self.flushing: list[HeadSnapshot] = []
        self._live_bytes = 0
        self._first_at: float | None = None
        self._offset_lo: int | None = None
        self._offset_hi: int | None = None
        self._dirty = False  # samples or exemplars appended since the last snapshot
        self._seq = 0

    def tenant(self, name: str) -> TenantHead:
        th = self.tenants.get(name)
        if th is None:
            th = self.tenants[name] = TenantHead()
        return th

    def total_series(self) -> int:
        return sum(th.active for th in self.tenants.values())

    def unknown_series(self, tenant: str, batch: MetricBatch) -> int:
        """How many of the batch's series the tenant's head does not hold yet."""
        th = self.tenants.get(tenant)
        if batch.series.num_rows == 0:
            return 0
        if th is None:
            return batch.series.num_rows
        known = th.key2num
        return sum(1 for k in _series_keys(batch.series.column("labels")) if k not in known)

    # ---- append ------------------------------------------------------------------------------

    def append(self, tenant: str, batch: MetricBatch, offset_hi: int | None, offset_lo: int | None,
               stats: AppendStats, raw_bytes: int = 0) -> None:
        labels = batch.series.column("labels")
        samples = batch.samples
        refs = _np(samples.column("ref"), np.int64)
        t = _np(samples.column("t"), np.int64)
        v = _np(samples.column("v"), np.float64)
        n_series = batch.series.num_rows
        keys = _series_keys(labels) if n_series else []
        bad_ref = (refs < 0) | (refs >= n_series)
        if bad_ref.any():
            stats.refuse(INVALID_SERIES, np.count_nonzero(bad_ref))
            refs = np.where(bad_ref, 0, refs)
        now = time.monotonic()
        with self.lock:
            th = self.tenant(tenant)
            th.raw_bytes += raw_bytes
            nums, reasons = self._resolve(th, keys, refs, bad_ref, batch, now, stats)
            snum = np.where(bad_ref, -1, nums[refs]) if len(refs) else np.zeros(0, np.int64)
            if len(refs):
                codes = np.where(bad_ref, 0, reasons[refs])
                for code in np.unique(codes[snum < 0]).tolist():
                    if code:
                        stats.refuse(_SERIES_REASONS[code], np.count_nonzero(codes == code))
                vbits = v.view(np.uint64)
                take = th.check_samples(snum, t, vbits, self.limits, stats, int(time.time() * 1000))
                if take is not None and len(take):
                    chunk = th.append_samples(snum[take], t[take], v[take], vbits[take])
                    self._live_bytes += chunk.nbytes
                    stats.accepted += len(take)
                    self._dirty = True
                seen = nums[nums >= 0]
                th.seen[seen] = now
            stats.exemplars += self._append_exemplars(th, batch.exemplars, nums, n_series)
            th.add_metadata(batch, self.limits.max_metadata_per_tenant)
            if self._dirty and self._first_at is None:
                self._first_at = now
            self._mark(offset_lo, offset_hi)

    def _resolve(self, th: TenantHead, keys: list[bytes], refs: np.ndarray, bad_ref: np.ndarray,
                 batch: MetricBatch, now: float, stats: AppendStats) -> tuple[np.ndarray, np.ndarray]:
        """Series numbers of the batch's series rows (-1: unknown and not created) and the
        reason code per row. Series rows without samples or exemplars create nothing."""
        get = th.key2num.get
        nums = np.fromiter((get(k, -1) for k in keys), np.int64, len(keys))
        reasons = np.zeros(len(keys), np.int8)
        missing = nums < 0
        if missing.any():
            used = np.zeros(len(keys), dtype=bool)
            used[refs[~bad_ref]] = True
            if batch.exemplars.num_rows:
                ex_refs = _np(batch.exemplars.column("ref"), np.int64)
                used[ex_refs[(ex_refs >= 0) & (ex_refs < len(keys))]] = True
            rows = np.flatnonzero(missing & used)
            if len(rows):
                before = th.active
                nums[rows] = th.create_series(
                    keys, rows, self.limits.max_active_series_per_tenant - th.active,
                    self.limits.max_head_series - self.total_series(), now, reasons)
                stats.new_series += th.active - before
        return nums, reasons

    def _append_exemplars(self, th: TenantHead, ex: pa.Table, nums: np.ndarray, n_series: int) -> int:
        if not ex.num_rows:
            return 0
        refs = _np(ex.column("ref"), np.int64)
        ok = (refs >= 0) & (refs < n_series)
        ok[ok] &= nums[refs[ok]] >= 0
        if not ok.any():
            return 0
        sel = np.flatnonzero(ok)
        sids = th.ids[nums[refs[sel]]]
        table = pa.table({
            "series_id": pa.array(sids, pa.uint64()),
            "t": ex.column("t").take(pa.array(sel)),
            "v": ex.column("v").take(pa.array(sel)),
            "labels": ex.column("labels").take(pa.array(sel)),
        }, schema=EXEMPLARS_TABLE_SCHEMA)
        th.add_exemplars(table, self.limits.max_exemplars_per_tenant)
        self._dirty = True
        return len(sel)

    def _mark(self, offset_lo: int | None, offset_hi: int | None) -> None:
        if offset_hi is None:
            return
        if self._offset_lo is None:
            self._offset_lo = offset_lo if offset_lo is not None else offset_hi
        if self._first_at is None:
            self._first_at = time.monotonic()  # so a commit of offsets alone is due in time too
        self._offset_hi = offset_hi if self._offset_hi is None else max(self._offset_hi, offset_hi)

    def mark_consumed(self, offset_hi: int) -> None:
        """Log records that carried no samples still advance the covered offset."""
        with self.lock:
            self._mark(None, offset_hi)

    # ---- flush protocol ----------------------------------------------------------------------

    @property
    def live_bytes(self) -> int:
        return self._live_bytes

    def age(self) -> float:
        return 0.0 if self._first_at is None else time.monotonic() - self._first_at

    def pending(self) -> bool:
        return self._dirty or self._offset_hi is not None

    def nbytes(self) -> int:
        with self.lock:
            flushing = sum(ts.nbytes for s in self.flushing for ts in s.tenants.values())
            return flushing + sum(th.nbytes() for th in self.tenants.values())

    def snapshot(self) -> HeadSnapshot | None:
        """Move every tenant's live samples and exemplars into a flushing snapshot (still
        visible to queries); None when there is nothing to flush or commit."""
        with self.lock:
            if not self.pending():
                return None
            tenants: dict[str, TenantSnapshot] = {}
            for name, th in self.tenants.items():
                if not th.live and not th.exemplars:
                    continue
                chunk = Chunk.concat(th.live) if th.live else None
                nbytes = th.live_bytes + sum(t.nbytes for t in th.exemplars)
                tenants[name] = TenantSnapshot(chunk, th.exemplars, nbytes, th.raw_bytes)
                th.live, th.live_bytes, th.exemplars, th.exemplar_rows, th.raw_bytes = [], 0, [], 0, 0
            self._seq += 1
            snap = HeadSnapshot(tenants, self._offset_lo, self._offset_hi, time.monotonic(), self._seq)
            self.flushing.append(snap)
            self._live_bytes = 0
            self._first_at = self._offset_lo = self._offset_hi = None
            self._dirty = False
            return snap

    def restore(self, snap: HeadSnapshot) -> None:
        """A flush failed: put the snapshot back in front of the live data, so the next flush
        writes it again and the committed offset never passes it."""
        with self.lock:
            self.flushing = [s for s in self.flushing if s is not snap]
            for name, ts in snap.tenants.items():
                th = self.tenant(name)
                th.raw_bytes += ts.raw_bytes
                if ts.chunk is not None:
                    th.live.insert(0, ts.chunk)
                    th.live_bytes += ts.chunk.nbytes
                    self._live_bytes += ts.chunk.nbytes
                    self._dirty = True
                if ts.exemplars:
                    th.exemplars = ts.exemplars + th.exemplars
                    th.exemplar_rows += sum(t.num_rows for t in ts.exemplars)
                    self._dirty = True
            if snap.offset_hi is not None:
                self._offset_lo = snap.offset_lo
                self._offset_hi = snap.offset_hi if self._offset_hi is None else max(self._offset_hi,
                                                                                       snap.offset_hi)
            if self._first_at is None:
                self._first_at = snap.taken_at

    def release(self, snap: HeadSnapshot, flushed: dict[str, tuple[np.ndarray, np.ndarray]]) -> int:
        """The snapshot is in committed blocks: drop it, record per series the newest time
        flushed (``flushed[tenant] = (nums, t)``), and collect idle series. Returns how many
        series left the head."""
        with self.lock:
            self.flushing = [s for s in self.flushing if s is not snap]
            for name, (nums, t) in flushed.items():
                th = self.tenants.get(name)
                if th is not None and len(nums):
                    np.maximum.at(th.flushed_t, nums, t)
            return self._collect_idle(snap.taken_at)

    def readd_exemplars(self, tenant: str, tables: list[pa.Table]) -> None:
        """Exemplars of a tenant that had no samples in a flush stay in the head."""
        with self.lock:
            th = self.tenant(tenant)
            for t in tables:
                th.add_exemplars(t, self.limits.max_exemplars_per_tenant)

    def _collect_idle(self, before: float) -> int:
        """Drop series not written since ``before - idle timeout``. ``before`` is the snapshot
        time: such a series has no sample in the live chunks, and no other snapshot exists
        (flushes are serialised), so its number can be reused safely."""
        if self.flushing:
            return 0
        cutoff = before - self.limits.series_idle_timeout_s
        dropped = 0
        for th in self.tenants.values():
            n = len(th.keys)
            if not n:
                continue
            idle = np.flatnonzero((th.seen[:n] < cutoff) & th.alive[:n])
            if len(idle):
                live_nums = np.concatenate([c.nums for c in th.live]) if th.live else np.zeros(0, np.uint32)
                if len(live_nums):
                    idle = np.setdiff1d(idle, live_nums)
                dropped += th.drop_series(idle)
        return dropped


def _np(col: pa.ChunkedArray | pa.Array, dtype: type) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)


def _series_keys(labels: pa.ChunkedArray | pa.Array) -> list[bytes]:
    """Canonical keys of the batch's series rows (vectorised), normalising in Python only the
    rows that break the contract (unsorted or repeated names, empty values)."""
    if isinstance(labels, pa.ChunkedArray):
        labels = labels.combine_chunks() if labels.num_chunks != 1 else labels.chunk(0)
    bad = _contract_violations(labels)
    if bad is not None and len(bad):
        rows = labels.to_pylist()
        for i in bad.tolist():
            rows[i] = normalize_labels(rows[i])
        labels = pa.array(rows, labels.type)
    return canonical_keys(labels).to_pylist()


def _contract_violations(labels: pa.ListArray) -> np.ndarray | None:
    """Rows whose names are not strictly ascending or that hold an empty value (vectorised)."""
    flat = labels.flatten()
    n = len(flat)
    if n == 0:
        return None
    names, values = flat.field("name"), flat.field("value")
    off = labels.offsets.to_numpy()
    off = off - off[0]
    row_of = np.repeat(np.arange(len(labels)), np.diff(off))
    bad = np.asarray(pc.utf8_length(values).to_numpy(zero_copy_only=False)) == 0
    if n > 1:
        asc = np.asarray(pc.less(names.slice(0, n - 1), names.slice(1)).to_numpy(zero_copy_only=False), dtype=bool)
        same_row = row_of[:-1] == row_of[1:]
        bad[1:] |= same_row & ~asc
    if not bad.any():
        return None
    return np.unique(row_of[bad])
