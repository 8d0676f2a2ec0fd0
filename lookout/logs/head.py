"""The log head: decoded entries in RAM, queryable at once, until a flush turns them into blocks.

Per tenant it keeps the streams seen and a list of ``ENTRY_SCHEMA`` tables in arrival order. A
flush *snapshots* the head: the tables move to a "flushing" set that queries still see, so that
ingest carries on while blocks are written and no entry is ever invisible; the snapshot is
dropped only once its blocks are committed, or put back in front of newer data if writing
failed. The head also tracks the log offset its data covers, which the flush commits.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(slots=True)
class TenantHead:
    streams: dict[int, dict[str, str]] = field(default_factory=dict)
    tables: list[pa.Table] = field(default_factory=list)
    nbytes: int = 0
    rows: int = 0

    def add(self, streams: dict[int, dict[str, str]], table: pa.Table) -> None:
        self.streams.update(streams)
        if table.num_rows:
            self.tables.append(table)
            self.nbytes += table.nbytes
            self.rows += table.num_rows

    def combined(self) -> pa.Table:
        return pa.concat_tables(self.tables)


@dataclass(slots=True)
class LogSnapshot:
    tenants: dict[str, TenantHead]
    offset_hi: int | None  # exclusive log offset covered; None when appends carried no offsets


class LogHead:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, TenantHead] = {}
        self._flushing: list[LogSnapshot] = []
        self._first_at: float | None = None
        self._offset_hi: int | None = None
        self._dirty = False  # something (data or an offset) waits for a flush

    def append(self, tenant: str, streams: dict[int, dict[str, str]], table: pa.Table,
               offset_hi: int | None) -> None:
        with self._lock:
            if table.num_rows:
                self._live.setdefault(tenant, TenantHead()).add(streams, table)
                if self._first_at is None:
                    self._first_at = time.monotonic()
            if offset_hi is not None:
                self._offset_hi = offset_hi if self._offset_hi is None else max(self._offset_hi, offset_hi)
                if self._first_at is None:
                    self._first_at = time.monotonic()
            self._dirty = self._dirty or bool(table.num_rows) or offset_hi is not None

    @property
    def live_bytes(self) -> int:
        return sum(h.nbytes for h in self._live.values())

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self.live_bytes + sum(h.nbytes for s in self._flushing for h in s.tenants.values())

    @property
    def rows(self) -> int:
        return sum(h.rows for h in self._live.values())

    def age(self) -> float:
        return 0.0 if self._first_at is None else time.monotonic() - self._first_at

    def pending(self) -> bool:
        return self._dirty

    def snapshot(self) -> LogSnapshot | None:
        with self._lock:
            if not self._dirty:
                return None
            snap = LogSnapshot(self._live, self._offset_hi)
            self._flushing.append(snap)
            self._live = {}
            self._first_at = None
            self._offset_hi = None
            self._dirty = False
            return snap

    def restore(self, snap: LogSnapshot) -> None:
        """A flush failed: put its data back in front of what arrived since."""
        with self._lock:
            self._flushing = [s for s in self._flushing if s is not snap]
            for tenant, old in snap.tenants.items():
                newer = self._live.get(tenant)
                merged = TenantHead(dict(old.streams), list(old.tables), old.nbytes, old.rows)
                if newer is not None:
                    merged.streams.update(newer.streams)
                    merged.tables.extend(newer.tables)
                    merged.nbytes += newer.nbytes
                    merged.rows += newer.rows
                self._live[tenant] = merged
            if snap.offset_hi is not None:
                self._offset_hi = snap.offset_hi if self._offset_hi is None else max(self._offset_hi, snap.offset_hi)
            self._dirty = True
            if self._first_at is None:
                self._first_at = time.monotonic()

    def release(self, snap: LogSnapshot) -> None:
        with self._lock:
            self._flushing = [s for s in self._flushing if s is not snap]

    def view(self, tenant: str) -> tuple[dict[int, dict[str, str]], list[pa.Table]]:
        """Streams and tables of a tenant not yet in a committed block (flushing and live)."""
        with self._lock:
            heads = [s.tenants[tenant] for s in self._flushing if tenant in s.tenants]
            if tenant in self._live:
                heads.append(self._live[tenant])
            streams: dict[int, dict[str, str]] = {}
            tables: list[pa.Table] = []
            for h in heads:
                streams.update(h.streams)
                tables.extend(h.tables)
            return streams, tables

    def stream_count(self, tenant: str) -> int:
        return len(self.view(tenant)[0])

    def has_stream(self, tenant: str, sid: int) -> bool:
        with self._lock:
            if tenant in self._live and sid in self._live[tenant].streams:
                return True
            return any(sid in s.tenants[tenant].streams for s in self._flushing if tenant in s.tenants)

    def tenants(self) -> set[str]:
        with self._lock:
            names = set(self._live)
            for s in self._flushing:
                names.update(s.tenants)
            return names
