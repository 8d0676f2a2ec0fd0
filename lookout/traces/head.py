"""The trace head: decoded spans in RAM, queryable at once, until a flush turns them into blocks.

Per tenant it holds a list of Arrow tables in SPAN_SCHEMA. A flush *snapshots* the head (the
tables move to a "flushing" set that queries still see) so ingest carries on while blocks are
written; only once the blocks are committed are the snapshot's tables dropped. The head also
remembers the log offsets it covers, which is what the consumer commits after a flush.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(slots=True)
class HeadSnapshot:
    tables: dict[str, list[pa.Table]]
    offset_lo: int
    offset_hi: int  # exclusive: the next record to read after this snapshot
    raw_bytes: dict[str, int] = field(default_factory=dict)

    def combined(self, tenant: str) -> pa.Table:
        return pa.concat_tables(self.tables[tenant])


class TraceHead:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, list[pa.Table]] = {}
        self._raw: dict[str, int] = {}
        self._flushing: list[HeadSnapshot] = []
        self._bytes = 0
        self._rows = 0
        self._first_at: float | None = None
        self._offset_lo: int | None = None
        self._offset_hi: int | None = None

    def append(self, tenant: str, table: pa.Table, raw_bytes: int, offset_lo: int, offset_hi: int) -> None:
        with self._lock:
            self._live.setdefault(tenant, []).append(table)
            self._raw[tenant] = self._raw.get(tenant, 0) + raw_bytes
            self._bytes += table.nbytes
            self._rows += table.num_rows
            if self._first_at is None:
                self._first_at = time.monotonic()
            if self._offset_lo is None:
                self._offset_lo = offset_lo
            self._offset_hi = offset_hi

    def mark_consumed(self, offset_hi: int) -> None:
        """Records that decoded to nothing (or whose spans the tail sampler dropped) still
        advance the covered offset, and start the flush clock so that offset gets committed."""
        with self._lock:
            if self._first_at is None:
                self._first_at = time.monotonic()
            if self._offset_lo is None:
                self._offset_lo = offset_hi
            self._offset_hi = offset_hi

    @property
    def nbytes(self) -> int:
        return self._bytes + sum(t.nbytes for s in self._flushing for ts in s.tables.values() for t in ts)

    @property
    def live_bytes(self) -> int:
        return self._bytes

    @property
    def rows(self) -> int:
        return self._rows

    def age(self) -> float:
        return 0.0 if self._first_at is None else time.monotonic() - self._first_at

    def pending_offset(self) -> int | None:
        return self._offset_hi

    def snapshot(self) -> HeadSnapshot | None:
        """Move the live tables into a flushing snapshot; None when nothing was consumed."""
        with self._lock:
            if self._offset_hi is None:
                return None
            snap = HeadSnapshot(self._live, self._offset_lo or 0, self._offset_hi, self._raw)
            self._flushing.append(snap)
            self._live, self._raw = {}, {}
            self._bytes = self._rows = 0
            self._first_at = self._offset_lo = self._offset_hi = None
            return snap

    def restore(self, snap: HeadSnapshot) -> None:
        """A flush failed: put the snapshot back in front of the live data so the next flush
        writes it (and the commit never skips past it)."""
        with self._lock:
            self._flushing = [s for s in self._flushing if s is not snap]
            for tenant, tables in snap.tables.items():
                self._live[tenant] = tables + self._live.get(tenant, [])
                self._raw[tenant] = snap.raw_bytes.get(tenant, 0) + self._raw.get(tenant, 0)
                self._bytes += sum(t.nbytes for t in tables)
                self._rows += sum(t.num_rows for t in tables)
            self._offset_lo = snap.offset_lo
            if self._offset_hi is None:
                self._offset_hi = snap.offset_hi
            if self._first_at is None:
                self._first_at = time.monotonic()

    def release(self, snap: HeadSnapshot) -> None:
        with self._lock:
            self._flushing = [s for s in self._flushing if s is not snap]

    def tables(self, tenant: str) -> list[pa.Table]:
        """Everything not yet in a committed block, for queries (live and flushing)."""
        with self._lock:
            out = [t for s in self._flushing for t in s.tables.get(tenant, [])]
            out.extend(self._live.get(tenant, []))
            return out

    def tenants(self) -> set[str]:
        with self._lock:
            names = set(self._live)
            for s in self._flushing:
                names.update(s.tables)
            return names
