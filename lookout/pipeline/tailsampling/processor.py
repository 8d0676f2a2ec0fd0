"""The tail-sampling state machine: hold spans per trace, decide after ``decision_wait``.

Reproduces the Collector's ``tailsamplingprocessor`` processing model (NOTES §1):

* **Trace entries live in a ring.** Trace number ``seq`` (in order of first arrival) occupies
  slot ``seq % num_traces``; creating a trace whose slot is taken evicts the previous occupant,
  which is exactly the Collector's circular delete queue (the oldest trace goes, decided or not;
  an undecided one loses its spans → ``dropped_too_early_traces``). Per-trace state is a set of
  numpy arrays indexed by slot, so decisions update thousands of traces without a Python loop.
  Slot arrays grow geometrically up to ``num_traces``. A dict maps trace id → seq; it is touched
  once per *distinct trace id per record*, never per span.
* **Spans are kept as the tables they came in**, not per trace: each incoming table (only its
  rows that stay pending) is staged with a slot and seq per row; once per tick the staged tables
  are concatenated (zero-copy) into one chunk. A decision round takes the rows of the decided
  traces out of every chunk, frees chunks with nothing pending left and compacts chunks that
  are mostly dead. A row is pending iff its slot still holds its seq and that trace is pending,
  so an eviction needs no bookkeeping in the chunks.
* **Decision batches** follow the Collector's batcher: a 1 s ticker (driven by ``clock``) and
  ``max(1, int(decision_wait))`` batches, pre-filled empty; each tick pushes the current batch
  and decides the oldest. ``decision_wait_after_root_received`` adds a second batcher fed when
  a trace's root span (empty parent id) arrives; whichever comes first decides.
* **Late spans** follow the decision: decision caches first (LRU of ids, sampled then
  non-sampled), then the in-memory entry; an evicted, uncached trace starts over as a new one.

Trace size (``bytes_limiting``, ``maximum_trace_size_bytes``, ``pending_bytes``): every span is
charged an equal share of its incoming table's Arrow ``nbytes``. That is the memory it pins,
computed without a per-row pass; it overestimates the OTLP protobuf size the Collector uses
(map offsets, repeated resource attributes) — configure byte limits with that in mind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.pipeline.stats import ProcessorStats
from lookout.pipeline.tailsampling.config import TailSamplingConfig
from lookout.pipeline.tailsampling.policies import (
    DECISION_NAMES,
    DROPPED,
    ERROR,
    INVERT_NOT_SAMPLED,
    INVERT_SAMPLED,
    NOT_SAMPLED,
    SAMPLED,
    Evaluator,
    TraceBatch,
    build_evaluator,
)

log = logging.getLogger(__name__)

__all__ = ["TailSampler"]

_EMPTY, _PENDING, _SAMPLED, _NOT_SAMPLED = 0, 1, 2, 3
_FWD, _DROP = 1, 2  # per-id actions in add()


@dataclass(slots=True)
class _Chunk:
    table: pa.Table
    slots: np.ndarray  # int64 slot per row
    seqs: np.ndarray  # int64 trace seq per row


class _Lru:
    """A set of trace ids with least-recently-used eviction (the Collector's decision cache)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.d: OrderedDict[bytes, None] = OrderedDict()

    def get(self, key: bytes) -> bool:
        if key in self.d:
            self.d.move_to_end(key)
            return True
        return False

    def put(self, key: bytes) -> None:
        self.d[key] = None
        self.d.move_to_end(key)
        if len(self.d) > self.size:
            self.d.popitem(last=False)

    def __contains__(self, key: bytes) -> bool:
        return key in self.d


class TailSampler:
    """Holds spans until their trace's decision; see the module docstring for the model.

    Not reentrant across threads by design of the pipeline (one consumer thread calls
    ``add``/``tick``), but a lock makes ``decision()`` and the gauges safe to call from others.
    """

    def __init__(self, cfg: TailSamplingConfig, stats: ProcessorStats, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.cfg, self.stats, self.clock, self.wall = cfg, stats, clock, wall
        self._lock = threading.RLock()
        drops = [build_evaluator(p) for p in cfg.policies if p.type == "drop"]
        others = [build_evaluator(p) for p in cfg.policies if p.type != "drop"]
        self.policies: list[Evaluator] = drops + others  # drop policies are evaluated first
        self._n = cfg.num_traces
        self._cap = 0
        self._slot_seq = np.zeros(0, np.int64)
        self._state = np.zeros(0, np.int8)
        self._arrival = np.zeros(0, np.float64)
        self._spans = np.zeros(0, np.int64)
        self._bytes = np.zeros(0, np.int64)
        self._first_offset = np.zeros(0, np.int64)
        self._min_start = np.zeros(0, np.int64)
        self._max_end = np.zeros(0, np.int64)
        self._root_seen = np.zeros(0, np.bool_)
        self._mark = np.zeros(0, np.int64)
        self._slot_id = np.empty(0, dtype=object)  # trace id bytes per slot, None if free
        self._ids: dict[bytes, int] = {}
        self._next_seq = 0
        self._chunks: list[_Chunk] = []
        self._staging: list[_Chunk] = []
        nb = max(1, int(cfg.decision_wait))
        self._batches: deque[list[int]] = deque([] for _ in range(nb))
        self._current: list[int] = []
        self._root_batches: deque[list[int]] | None = None
        if cfg.decision_wait_after_root_received > 0:
            self._root_batches = deque([] for _ in range(max(1, int(cfg.decision_wait_after_root_received))))
        self._root_current: list[int] = []
        self._next_tick = clock() + 1.0
        self._sampled_cache = _Lru(cfg.sampled_cache_size) if cfg.sampled_cache_size > 0 else None
        self._not_sampled_cache = _Lru(cfg.non_sampled_cache_size) if cfg.non_sampled_cache_size > 0 else None
        self.pending_traces = 0
        self.pending_spans = 0
        self.pending_bytes = 0

    # ----------------------------------------------------------------------------------------
    # slot storage

    def _grow(self, need: int) -> None:
        """Make slot ``need - 1`` addressable (doubling, capped at num_traces)."""
        if need <= self._cap:
            return
        cap = min(self._n, max(need, 2 * self._cap, 1024))
        extra = cap - self._cap

        def ext(a: np.ndarray, fill: float | int | bool) -> np.ndarray:
            return np.concatenate([a, np.full(extra, fill, dtype=a.dtype)])

        self._slot_seq = ext(self._slot_seq, -1)
        self._state = ext(self._state, _EMPTY)
        self._arrival = ext(self._arrival, 0.0)
        self._spans = ext(self._spans, 0)
        self._bytes = ext(self._bytes, 0)
        self._first_offset = ext(self._first_offset, 0)
        self._min_start = ext(self._min_start, 0)
        self._max_end = ext(self._max_end, 0)
        self._root_seen = ext(self._root_seen, False)
        self._mark = ext(self._mark, -1)
        self._slot_id = ext(self._slot_id, None)
        self._cap = cap

    def _free(self, slots: np.ndarray) -> None:
        """Forget the traces in ``slots`` (their seqs stay, so their rows read as dead)."""
        ids = self._ids
        for tid in self._slot_id[slots].tolist():  # dict removals: one per forgotten trace
            if tid is not None:
                ids.pop(tid, None)
        self._slot_id[slots] = None
        self._state[slots] = _EMPTY

    def _new_traces(self, tids: list[bytes], now: float, offset: int) -> np.ndarray:
        """Create trace entries for ``tids`` (first-arrival order); returns their seqs.

        Each new seq takes ring slot ``seq % num_traces`` and evicts whatever was there. If one
        record brings more new traces than the ring holds, the earlier ones are evicted by the
        later ones straight away (their spans dropped), as they would be upstream.
        """
        k = len(tids)
        seqs = np.arange(self._next_seq, self._next_seq + k, dtype=np.int64)
        self._next_seq += k
        n = self._n
        self._grow(int(min(n, seqs[-1] + 1)))
        if k > n:
            self.stats.add("dropped_too_early_traces", k - n)
            live_seqs, live_ids = seqs[-n:], tids[-n:]
        else:
            live_seqs, live_ids = seqs, tids
        slots = live_seqs % n
        old = slots[self._state[slots] != _EMPTY]
        if old.size:  # ring full: evict the oldest traces
            pend = old[self._state[old] == _PENDING]
            if pend.size:
                self.stats.add("dropped_too_early_traces", int(pend.size))
                self.pending_traces -= int(pend.size)
                self.pending_spans -= int(self._spans[pend].sum())
                self.pending_bytes -= int(self._bytes[pend].sum())
            self._free(old)
        self._slot_seq[slots] = live_seqs
        self._state[slots] = _PENDING
        self._arrival[slots] = now
        self._spans[slots] = 0
        self._bytes[slots] = 0
        self._first_offset[slots] = offset
        self._min_start[slots] = np.iinfo(np.int64).max
        self._max_end[slots] = np.iinfo(np.int64).min
        self._root_seen[slots] = False
        ids_arr = np.empty(len(live_ids), dtype=object)
        ids_arr[:] = live_ids
        self._slot_id[slots] = ids_arr
        self._ids.update(zip(live_ids, live_seqs.tolist(), strict=True))
        self._current.extend(live_seqs.tolist())
        self.pending_traces += int(live_seqs.size)
        return seqs

    # ----------------------------------------------------------------------------------------
    # public API

    def add(self, table: pa.Table, offset: int) -> list[pa.Table]:
        """Take the spans of one log record; return the spans to forward now (late spans of
        traces already sampled). Everything else is held or dropped."""
        n = table.num_rows
        if n == 0:
            return []
        with self._lock:
            return self._add(table, offset, n)

    def _add(self, table: pa.Table, offset: int, n: int) -> list[pa.Table]:
        self.stats.add("received_spans", n)
        now = self.clock()
        enc = pc.dictionary_encode(table.column("trace_id").combine_chunks())
        uniq: list[bytes] = enc.dictionary.to_pylist()
        idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        u = len(uniq)
        action = np.zeros(u, dtype=np.int8)
        sc, nsc = self._sampled_cache, self._not_sampled_cache
        # Decision caches are consulted first (LRU touch per id, only when configured).
        if sc is not None:
            action[[j for j, t in enumerate(uniq) if sc.get(t)]] = _FWD
        if nsc is not None:
            action[[j for j, t in enumerate(uniq) if action[j] == 0 and nsc.get(t)]] = _DROP
        get = self._ids.get
        useq = np.fromiter((get(t, -1) for t in uniq), dtype=np.int64, count=u)  # one lookup per id
        useq[action != 0] = -1
        known = np.flatnonzero(useq >= 0)
        if known.size:
            st = self._state[useq[known] % self._n]
            action[known[st == _SAMPLED]] = _FWD
            action[known[st == _NOT_SAMPLED]] = _DROP
            useq[known[st != _PENDING]] = -1
        new = np.flatnonzero((useq < 0) & (action == 0))
        if new.size:
            useq[new] = self._new_traces([uniq[j] for j in new.tolist()], now, offset)

        out: list[pa.Table] = []
        ract = action[idx]
        n_fwd = int(np.count_nonzero(ract == _FWD))
        n_drop = int(np.count_nonzero(ract == _DROP))
        if n_fwd:
            self.stats.add("late_spans", n_fwd, decision="sampled")
            out.append(table.filter(pa.array(ract == _FWD)))
        if n_drop:
            self.stats.add("late_spans", n_drop, decision="not_sampled")

        # Ids still pending (a tiny ring can evict a trace created earlier in this very record).
        uslot = np.where(useq >= 0, useq % self._n, 0)
        upend = (action == 0) & (useq >= 0)
        upend &= self._slot_seq[uslot] == useq
        rpend = upend[idx]
        if not rpend.any():
            return out
        prow = np.flatnonzero(rpend)
        per_span = -(-table.nbytes // n)  # ceil: an equal share of the record's Arrow bytes
        ui = idx[prow]
        cnt = np.bincount(ui, minlength=u)
        ps = np.flatnonzero(upend)
        slots = uslot[ps]
        self._spans[slots] += cnt[ps]
        add_bytes = cnt[ps] * per_span
        self._bytes[slots] += add_bytes
        self._first_offset[slots] = np.minimum(self._first_offset[slots], offset)
        start = table.column("start_time_unix_nano").combine_chunks().to_numpy(zero_copy_only=False)[prow]
        end = start + table.column("duration_nano").combine_chunks().to_numpy(zero_copy_only=False)[prow]
        umin = np.full(u, np.iinfo(np.int64).max, np.int64)
        umax = np.full(u, np.iinfo(np.int64).min, np.int64)
        np.minimum.at(umin, ui, start)
        np.maximum.at(umax, ui, end)
        self._min_start[slots] = np.minimum(self._min_start[slots], umin[ps])
        self._max_end[slots] = np.maximum(self._max_end[slots], umax[ps])
        self.pending_spans += int(prow.size)
        self.pending_bytes += int(add_bytes.sum())

        held = table if prow.size == n else table.take(pa.array(prow))
        self._staging.append(_Chunk(held, uslot[ui], useq[ui]))

        if self._root_batches is not None:
            is_root = pc.equal(pc.binary_length(held.column("parent_span_id")), 0)
            is_root = is_root.combine_chunks().fill_null(True).to_numpy(zero_copy_only=False)
            rs = np.unique(uslot[ui][is_root])
            rs = rs[~self._root_seen[rs]]
            self._root_seen[rs] = True
            self._root_current.extend(self._slot_seq[rs].tolist())

        limit = self.cfg.maximum_trace_size_bytes
        if limit:
            big = slots[(self._bytes[slots] > limit) & (self._state[slots] == _PENDING)]
            if big.size:
                self.stats.add("dropped_too_large_traces", int(big.size))
                self._settle(big, np.zeros(big.size, dtype=np.bool_))
        return out

    def tick(self) -> list[pa.Table]:
        """Run the 1 s ticker rounds that are due; return the sampled spans they released."""
        with self._lock:
            now = self.clock()
            out: list[pa.Table] = []
            rounds = 0
            limit = len(self._batches) + (len(self._root_batches) if self._root_batches else 0) + 2
            while now >= self._next_tick:
                self._next_tick += 1.0
                rounds += 1
                if rounds > limit:  # after a long stall every batch has been drained already
                    self._next_tick = now + 1.0
                    break
                self._batches.append(self._current)
                self._current = []
                seqs = self._batches.popleft()
                if self._root_batches is not None:
                    self._root_batches.append(self._root_current)
                    self._root_current = []
                    seqs = seqs + self._root_batches.popleft()
                out.extend(self._decide(np.asarray(seqs, dtype=np.int64), now))
            return out

    def decide_all(self) -> list[pa.Table]:
        """Shutdown: decide every pending trace now on the spans received so far, or drop them
        all with ``drop_pending_traces_on_shutdown``."""
        with self._lock:
            pend = np.flatnonzero(self._state == _PENDING)
            seqs = np.sort(self._slot_seq[pend])
            self._batches = deque([] for _ in range(len(self._batches)))
            self._current = []
            if self._root_batches is not None:
                self._root_batches = deque([] for _ in range(len(self._root_batches)))
                self._root_current = []
            if self.cfg.drop_pending_traces_on_shutdown:
                self.stats.add("dropped_on_shutdown_traces", int(pend.size))
                self._free(pend)
                self._chunks, self._staging = [], []
                self.pending_traces = self.pending_spans = self.pending_bytes = 0
                return []
            return self._decide(seqs, self.clock())

    def low_water(self) -> int | None:
        """Smallest record offset still holding a span of an undecided trace (None if none):
        the log may be committed up to here and no further."""
        with self._lock:
            pend = self._state == _PENDING
            if not pend.any():
                return None
            return int(self._first_offset[pend].min())

    def decision(self, trace_id: bytes) -> bool | None:
        """True sampled, False not sampled, None pending or forgotten (caches are checked first,
        like late spans; lookups do not refresh the LRU)."""
        with self._lock:
            if self._sampled_cache is not None and trace_id in self._sampled_cache:
                return True
            if self._not_sampled_cache is not None and trace_id in self._not_sampled_cache:
                return False
            seq = self._ids.get(trace_id)
            if seq is None:
                return None
            st = self._state[seq % self._n]
            return True if st == _SAMPLED else False if st == _NOT_SAMPLED else None

    # ----------------------------------------------------------------------------------------
    # decisions

    def _gather(self, slots: np.ndarray) -> tuple[list[pa.Table], list[np.ndarray]]:
        """Take the pending rows of ``slots`` out of the chunks (in arrival order); also free
        empty chunks and compact mostly-dead ones."""
        if self._staging:
            st = self._staging
            self._staging = []
            self._chunks.append(_Chunk(pa.concat_tables([c.table for c in st]),
                                       np.concatenate([c.slots for c in st]),
                                       np.concatenate([c.seqs for c in st])))
        mark = self._mark
        mark[slots] = np.arange(slots.size)
        pieces: list[pa.Table] = []
        tis: list[np.ndarray] = []
        kept: list[_Chunk] = []
        for ch in self._chunks:
            alive = (self._slot_seq[ch.slots] == ch.seqs) & (self._state[ch.slots] == _PENDING)
            pos = mark[ch.slots]
            take = alive & (pos >= 0)
            if take.any():
                ti = np.flatnonzero(take)
                pieces.append(ch.table.take(pa.array(ti)))
                tis.append(pos[ti])
            keep = alive & (pos < 0)
            nkeep = int(np.count_nonzero(keep))
            if nkeep == 0:
                continue
            if nkeep * 2 < len(ch.seqs) and len(ch.seqs) > 256:
                ki = np.flatnonzero(keep)
                ch = _Chunk(ch.table.take(pa.array(ki)), ch.slots[ki], ch.seqs[ki])
            kept.append(ch)
        self._chunks = kept
        mark[slots] = -1
        return pieces, tis

    def _decide(self, seqs: np.ndarray, now: float) -> list[pa.Table]:
        seqs = np.unique(seqs)  # sorted = order of first arrival
        slots = seqs % self._n
        live = (self._slot_seq[slots] == seqs) & (self._state[slots] == _PENDING)
        seqs, slots = seqs[live], slots[live]
        pieces, tis = self._gather(slots)
        m = int(slots.size)
        if m == 0:
            return []
        table = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
        ti = np.concatenate(tis)
        order = np.argsort(ti, kind="stable")
        if not np.array_equal(order, np.arange(order.size)):
            table = table.take(pa.array(order))
            ti = ti[order]
        batch = TraceBatch(table, ti.astype(np.int64), m, float(self.wall()), self._bytes[slots].astype(np.float64))
        sampled = self._evaluate(batch)
        self._settle(slots, sampled)
        span_keep = sampled[ti]
        n_keep = int(np.count_nonzero(span_keep))
        self.stats.add("sampled_spans", n_keep)
        self.stats.add("not_sampled_spans", int(ti.size) - n_keep)
        if n_keep == 0:
            return []
        return [table if n_keep == ti.size else table.filter(pa.array(span_keep))]

    def _settle(self, slots: np.ndarray, sampled: np.ndarray) -> None:
        """Record final decisions for pending ``slots``: counters, gauges, caches."""
        ns = int(np.count_nonzero(sampled))
        self.stats.add("decided_traces", ns, decision="sampled")
        self.stats.add("decided_traces", int(slots.size) - ns, decision="not_sampled")
        self.pending_traces -= int(slots.size)
        self.pending_spans -= int(self._spans[slots].sum())
        self.pending_bytes -= int(self._bytes[slots].sum())
        self._state[slots] = np.where(sampled, _SAMPLED, _NOT_SAMPLED)
        # With a decision cache the entry leaves memory at once and the cache answers late spans.
        for cache, want in ((self._sampled_cache, True), (self._not_sampled_cache, False)):
            if cache is None:
                continue
            gone = slots[sampled == want]
            for tid in self._slot_id[gone].tolist():  # one LRU insert per decided trace
                if tid is not None:
                    cache.put(tid)
            self._free(gone)

    def _evaluate(self, batch: TraceBatch) -> np.ndarray:
        """Run the policies over the batch and combine per NOTES §3; bool sampled per trace."""
        m = batch.m
        active = np.ones(m, dtype=np.bool_)
        seen = np.zeros((6, m), dtype=np.bool_)
        for pol in self.policies:
            if not active.any():
                break
            try:
                codes = np.asarray(pol.evaluate(batch, active), dtype=np.int8)
            except Exception:  # a policy bug must not stall the pipeline: count it as errors
                log.exception("tail_sampling policy %s failed", pol.name)
                codes = np.full(m, ERROR, dtype=np.int8)
            c = codes[active]
            counts = np.bincount(c, minlength=6)
            for code, k in enumerate(counts.tolist()):
                if k and code != ERROR:
                    self.stats.add("policy_decisions", k, policy=pol.name, decision=DECISION_NAMES[code])
            if counts[ERROR]:
                self.stats.add("policy_evaluation_errors", int(counts[ERROR]), policy=pol.name)
            seen[codes, np.arange(m)] |= active
            stop = codes == DROPPED
            if self.cfg.sample_on_first_match:
                stop |= codes == SAMPLED
            active &= ~stop
        sampled = np.where(
            seen[DROPPED] | seen[INVERT_NOT_SAMPLED], False,
            seen[SAMPLED] | (seen[INVERT_SAMPLED] & ~seen[NOT_SAMPLED]),
        )
        return sampled.astype(np.bool_)
