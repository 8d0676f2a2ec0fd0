"""Counters every processor keeps, rendered on /metrics by the pipeline that owns it.

A processor never talks to the registry itself: it calls ``stats.add("dropped_items", n,
reason="filter")`` and the pipeline renders ``lookout_processor_dropped_items_total{signal,
processor, reason}``. Label values are rule and policy names, never data (redaction counts
what it replaced, not what the value was).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator


class ProcessorStats:
    """Monotonic counters of one processor instance (thread-safe; receivers and consumers
    call them from different threads)."""

    def __init__(self, signal: str, processor: str) -> None:
        self.signal, self.processor = signal, processor
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def add(self, what: str, n: float = 1, **labels: str) -> None:
        """Count ``n`` under ``lookout_processor_<what>_total`` with extra ``labels``."""
        if not n:
            return
        key = (what, tuple(sorted(labels.items())))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def get(self, what: str, **labels: str) -> float:
        with self._lock:
            return self._counts.get((what, tuple(sorted(labels.items()))), 0)

    def total(self, what: str) -> float:
        """Sum over every label combination of ``what`` (tests and benchmarks)."""
        with self._lock:
            return sum(v for (w, _), v in self._counts.items() if w == what)

    def samples(self) -> Iterator[tuple[str, dict[str, str], float]]:
        """(what, labels incl. signal and processor, value) for every counter."""
        with self._lock:
            items = list(self._counts.items())
        for (what, labels), value in items:
            yield what, {"signal": self.signal, "processor": self.processor, **dict(labels)}, value
