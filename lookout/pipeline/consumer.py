"""Drives one signal from the log into its store: read, decode into the head, flush, commit.

The order is the durability contract: the sink writes its blocks, then calls back to commit the
log offset they cover, and only then drops the flushed data from its head. A crash at
any point therefore replays from the last commit, and blocks written after it are deleted at
startup (``BlockStore.delete_blocks_after``) and re-created by the replay.

Memory is bounded: when the head is over ``head_max_size`` the consumer flushes before reading
more; the log absorbs the backlog, and when the log is full the receivers answer 429.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from lookout.buffer.log import Log

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Optional extras: ``poll()`` is called every round (release held data), ``finish()``
    before the final flush at shutdown."""

    def ingest(self, records: list) -> None: ...
    def flush_due(self) -> bool: ...
    def flush(self, commit: Callable[[int], None]) -> Any: ...  # writes blocks, then calls commit(offset)
    @property
    def head_bytes(self) -> int: ...


class LogConsumer:
    def __init__(self, log_: Log, signal: str, group: str, sink: Sink, *, head_max_bytes: int,
                 read_bytes: int = 8 << 20, idle_sleep_s: float = 0.02) -> None:
        self.log, self.signal, self.group, self.sink = log_, signal, group, sink
        self.head_max_bytes = head_max_bytes
        self.read_bytes = read_bytes
        self.idle_sleep_s = idle_sleep_s
        self.position = log_.committed(group, signal)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    def replay(self) -> int:
        """Consume everything already in the log (startup, before the node is ready)."""
        n = 0
        while True:
            got = self.step()
            if got == 0:
                return n
            n += got

    def step(self) -> int:
        """One read-decode(-flush) round; returns the number of records consumed."""
        if self.sink.head_bytes >= self.head_max_bytes:
            self.flush()
        records = self.log.read(self.signal, self.position, self.read_bytes)
        if records:
            self.sink.ingest(records)
            self.position = records[-1].next_offset
        poll = getattr(self.sink, "poll", None)
        if poll is not None:  # a sink holding data for later (the tail sampler) releases it here
            poll()
        if self.sink.flush_due():
            self.flush()
        return len(records)

    def flush(self) -> None:
        self.sink.flush(lambda offset: self.log.commit(self.group, self.signal, offset))

    def lag(self) -> int:
        return self.log.end_offset(self.signal) - self.position

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"consumer-{self.signal}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.step() == 0:
                    self._stop.wait(self.idle_sleep_s)
            except Exception:
                # A bug or a full disk must not kill the consumer silently: count, log, back off.
                self.errors += 1
                log.exception("consumer %s failed; retrying in 1s", self.signal)
                self._stop.wait(1.0)

    def stop(self, drain: bool = True) -> None:
        """Stop the thread; with ``drain``, consume what is left and flush it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if drain:
            self.replay()
            finish = getattr(self.sink, "finish", None)
            if finish is not None:
                finish()
            self.flush()
