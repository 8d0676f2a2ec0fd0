"""``memory_limiter``: refuse data while the process is over its memory bound, never OOM.

As the Collector's memorylimiterprocessor: a soft limit (``limit - spike_limit``) above which
new requests are refused with a retryable error (HTTP 429, gRPC RESOURCE_EXHAUSTED) until usage
falls back, and a hard limit (``limit``) above which a garbage collection is forced. Usage is
the process' resident set, read from ``/proc/self/statm`` every ``check_interval`` by a daemon
thread, so the per-request check is a comparison of two integers.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from lookout.pipeline.settings import Settings
from lookout.pipeline.stats import ProcessorStats

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class MemoryLimitExceeded(Exception):
    """Retryable refusal: the receivers answer 429 / RESOURCE_EXHAUSTED with ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * _PAGE
    except (ValueError, OSError, AttributeError):
        return 0


@dataclass(slots=True)
class MemoryLimiterConfig:
    check_interval: float
    limit_bytes: int
    spike_bytes: int


def parse_memory_limiter(raw: Any, path: str, problems: list[str]) -> MemoryLimiterConfig | None:
    s = Settings(raw, path, problems)
    interval = s.duration("check_interval", None)
    limit_mib = s.integer("limit_mib", 0)
    spike_mib = s.integer("spike_limit_mib", 0)
    limit_pct = s.integer("limit_percentage", 0)
    spike_pct = s.integer("spike_limit_percentage", 0)
    s.done()
    if interval is None or interval <= 0:
        problems.append(f"{path}.check_interval: expected a positive duration like 1s (the Collector requires it)")
        return None
    if limit_mib > 0:
        limit = limit_mib << 20
        spike = (spike_mib << 20) if spike_mib > 0 else limit // 5
    elif limit_pct > 0:
        if limit_pct > 100 or spike_pct > 100:
            problems.append(f"{path}.limit_percentage: expected 1..100, got {limit_pct}")
            return None
        total = _total_memory()
        limit = total * limit_pct // 100
        spike = total * spike_pct // 100 if spike_pct > 0 else limit // 5
    else:
        problems.append(f"{path}.limit_mib: set limit_mib or limit_percentage (the memory bound)")
        return None
    if spike >= limit:
        problems.append(f"{path}.spike_limit_mib: expected less than limit_mib "
                        f"({limit >> 20} MiB), got {spike >> 20} MiB")
        return None
    return MemoryLimiterConfig(interval, limit, spike)


class MemoryLimiter:
    """Shared by every pipeline that lists it (one process, one memory)."""

    def __init__(self, name: str, signal: str, cfg: MemoryLimiterConfig,
                 read_usage=resident_bytes) -> None:
        self.name, self.cfg = name, cfg
        self.stats = ProcessorStats(signal, name)
        self._read_usage = read_usage
        self.usage = read_usage()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def soft_limit(self) -> int:
        return self.cfg.limit_bytes - self.cfg.spike_bytes

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"memory-limiter-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.cfg.check_interval):
            self.check()

    def check(self) -> None:
        """Read usage; above the hard limit, force a collection and read again."""
        self.usage = self._read_usage()
        if self.usage > self.cfg.limit_bytes:
            gc.collect()
            self.usage = self._read_usage()

    def admit(self, items: int) -> None:
        """Raise :class:`MemoryLimitExceeded` while usage is over the soft limit."""
        self.stats.add("received_items", items)
        if self.usage > self.soft_limit:
            self.stats.add("refused_items", items)
            raise MemoryLimitExceeded(
                f"memory usage {self.usage >> 20} MiB is over the soft limit of {self.soft_limit >> 20} MiB "
                f"({self.name}: limit_mib minus spike_limit_mib); retry later", self.cfg.check_interval)
