"""The durable log between receivers and everything downstream.

Receivers append raw OTLP request bytes and acknowledge the client only once ``append`` has
returned (the record is durable). Consumers read records in offset order per signal and commit
the offset up to which their output is itself durable (a flushed block). The embedded WAL
(``wal.py``) and, later, Kafka implement this one interface; nothing downstream knows which one
it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SIGNALS = ("traces", "metrics", "logs")


@dataclass(frozen=True, slots=True)
class Record:
    """One appended request: ``offset`` is its position in the signal's log; ``next_offset`` is
    where the following record starts (what a consumer commits once this record is durable
    downstream)."""

    signal: str
    offset: int
    next_offset: int
    tenant: str
    recv_ns: int
    payload: bytes


def payloads_by_tenant(records: list[Record]) -> dict[str, list[bytes]]:
    """A batch's payloads per tenant, in log order: each tenant is decoded as one batch."""
    by_tenant: dict[str, list[bytes]] = {}
    for r in records:
        by_tenant.setdefault(r.tenant, []).append(r.payload)
    return by_tenant


class LogFull(Exception):
    """The log refuses the append (size or disk bound); the client should retry later."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Log(Protocol):
    async def append(self, signal: str, tenant: str, payload: bytes) -> int:
        """Append one record and return its offset once it is durable (group-committed)."""
        ...

    def read(self, signal: str, from_offset: int, max_bytes: int = 8 << 20) -> list[Record]:
        """Records of ``signal`` starting at ``from_offset`` (a record boundary), in order, up to
        about ``max_bytes`` of payload; empty when there is nothing newer. Only durable records
        are returned."""
        ...

    def commit(self, group: str, signal: str, offset: int) -> None:
        """Record durably that ``group`` has consumed everything before ``offset``."""
        ...

    def committed(self, group: str, signal: str) -> int:
        """The offset ``group`` resumes from (the start of the log if it never committed)."""
        ...

    def end_offset(self, signal: str) -> int:
        """The offset the next append of ``signal`` will get."""
        ...

    def close(self) -> None: ...
