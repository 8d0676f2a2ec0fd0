"""The trace consumer's processors: span metrics, service graph and tail sampling between the
log and the trace head.

Order matters and is fixed: every decoded span is first *observed* by span metrics and the
service graph (so their counts are exact, unsampled), then handed to the tail sampler, which
holds it until its trace is decided; only sampled spans reach the head.

Durability with spans held in memory: the log may only be committed up to the first record
that still holds a span of an undecided trace (:meth:`TailSampler.low_water`). Flushes are
capped there, and the block written records that capped offset as the end of the log range it
covers, so crash recovery (which deletes blocks past the last commit and replays from it)
re-reads every held span and never deletes a block whose spans will not be replayed. Replayed
records may repeat spans of traces already stored; the store deduplicates spans by id.
Probabilistic, status, latency and attribute decisions are functions of the trace, so a replay
decides them the same way; rate- and byte-limited decisions depend on arrival timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa

from lookout.buffer.log import Record, payloads_by_tenant


class SpanStore(Protocol):
    """What the trace store offers the stream pipeline (see lookout/traces/store.py)."""

    def decode(self, tenant: str, payloads: list[bytes]) -> pa.Table: ...
    def append(self, tenant: str, table: pa.Table, raw_bytes: int, offset_lo: int, offset_hi: int) -> None: ...
    def mark_consumed(self, offset_hi: int) -> None: ...
    @property
    def head_bytes(self) -> int: ...
    def flush_due(self) -> bool: ...
    def flush(self, commit: Callable[[int], None], cap: int | None = None) -> Any: ...


class SpanObserver(Protocol):
    def observe(self, tenant: str, table: pa.Table) -> None: ...


class TraceStreamSink:
    """A consumer sink (lookout/pipeline/consumer.py) that runs the stream processors."""

    def __init__(self, store: SpanStore, *, observers: list[SpanObserver] | None = None,
                 sampler_factory: Callable[[str], Any] | None = None) -> None:
        self.store = store
        self.observers = observers or []
        self.sampler_factory = sampler_factory
        self.samplers: dict[str, Any] = {}
        self.observe_lock = threading.Lock()  # observers are read by the span-metrics pusher
        self._consumed_hi = 0
        self._raw_per_row: dict[str, float] = {}

    # ---- the Sink protocol ------------------------------------------------------------------

    def ingest(self, records: list[Record]) -> None:
        if not records:
            return
        by_tenant = payloads_by_tenant(records)
        lo, hi = records[0].offset, records[-1].next_offset
        self._consumed_hi = hi
        for tenant, payloads in by_tenant.items():
            table = self.store.decode(tenant, payloads)
            if not table.num_rows:
                continue
            raw = sum(map(len, payloads))
            if self.observers:
                with self.observe_lock:
                    for obs in self.observers:
                        obs.observe(tenant, table)
            if self.sampler_factory is None:
                self.store.append(tenant, table, raw, lo, hi)
                continue
            self._raw_per_row[tenant] = raw / table.num_rows
            self._append_released(tenant, self._sampler(tenant).add(table, lo))
        self.store.mark_consumed(hi)

    def poll(self) -> None:
        """Decide the traces whose ``decision_wait`` is over (called every consumer round)."""
        for tenant, sampler in list(self.samplers.items()):
            self._append_released(tenant, sampler.tick())

    def flush_due(self) -> bool:
        return self.store.flush_due()

    def flush(self, commit: Callable[[int], None]) -> Any:
        return self.store.flush(commit, cap=self.low_water())

    def finish(self) -> None:
        """Shutdown: decide every pending trace (or drop it, per the sampler's config)."""
        for tenant, sampler in list(self.samplers.items()):
            self._append_released(tenant, sampler.decide_all())

    @property
    def head_bytes(self) -> int:
        return self.store.head_bytes

    # ---- helpers ----------------------------------------------------------------------------

    def low_water(self) -> int | None:
        marks = [m for m in (s.low_water() for s in self.samplers.values()) if m is not None]
        return min(marks) if marks else None

    def decision(self, tenant: str, trace_id: bytes) -> bool | None:
        """Whether a trace was kept: True without a sampler (everything is kept)."""
        if self.sampler_factory is None:
            return True
        sampler = self.samplers.get(tenant)
        return None if sampler is None else sampler.decision(trace_id)

    def pending(self) -> dict[str, tuple[int, int, int]]:
        """(traces, spans, bytes) held per tenant."""
        return {t: (s.pending_traces, s.pending_spans, s.pending_bytes) for t, s in self.samplers.items()}

    def _sampler(self, tenant: str) -> Any:
        sampler = self.samplers.get(tenant)
        if sampler is None:
            sampler = self.samplers[tenant] = self.sampler_factory(tenant)
        return sampler

    def _append_released(self, tenant: str, tables: list[pa.Table]) -> None:
        for t in tables:
            if t.num_rows:
                raw = int(t.num_rows * self._raw_per_row.get(tenant, 0.0))
                self.store.append(tenant, t, raw, self._consumed_hi, self._consumed_hi)
