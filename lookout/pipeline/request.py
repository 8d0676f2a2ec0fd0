"""Runs one signal's request processors on a request before it is appended to the log.

Doing this before the log, not after it, is what lets redaction promise that a secret never
reaches the disk: the write-ahead log only ever holds the processed request. The cost is one
ptars decode and one encode per request, paid only by signals that have request processors;
a request that no processor changed is appended as the exact bytes the client sent.

Loki push and remote-write bodies get the ``redaction`` processors only (:meth:`process_push`,
``lookout.pipeline.push_redaction``): masking must cover every way data comes in, while the
OTTL-based ``filter``/``attributes``/``resource`` processors are defined on OTLP only.
"""

from __future__ import annotations

from lookout.pipeline.memory_limiter import MemoryLimiter
from lookout.pipeline.processor import ProcessingError, RequestProcessor

__all__ = ["ProcessingError", "RequestPipeline"]


class RequestPipeline:
    def __init__(self, signal: str, processors: list[RequestProcessor],
                 memory_limiter: MemoryLimiter | None = None) -> None:
        from lookout.pipeline.push_redaction import redaction_processors

        self.signal = signal
        self.processors = processors
        self.memory_limiter = memory_limiter
        self._redaction = redaction_processors(processors)

    @property
    def transforms(self) -> bool:
        """True when requests must be decoded (some processor may change them)."""
        return bool(self.processors)

    def admit(self, items: int) -> None:
        """Raises :class:`MemoryLimitExceeded` while the process is over its memory bound."""
        if self.memory_limiter is not None:
            self.memory_limiter.admit(items)

    def process(self, body: bytes, tenant: str) -> tuple[bytes | None, int]:
        """The request after every processor: (bytes to append, items left); ``None`` when
        nothing is left to store (everything was filtered out)."""
        from lookout.pipeline.otlp_view import OtlpBatch

        batch = OtlpBatch.decode(self.signal, body)
        for processor in self.processors:
            processor.process(batch, tenant)
            if batch.is_empty():
                return None, 0
        return batch.encode(), batch.item_count()

    @property
    def redacts_push(self) -> bool:
        """True when push-format bodies (Loki push, remote write) must go through
        :meth:`process_push`: the pipeline has redaction processors."""
        return bool(self._redaction)

    def process_push(self, fmt: str, body: bytes, tenant: str) -> tuple[bytes | None, int]:
        """A validated Loki push or remote-write body after the redaction processors, in its
        own wire format: (bytes to append, items); the original bytes when nothing changed."""
        from lookout.pipeline.push_redaction import redact_push

        return redact_push(fmt, body, self._redaction)

    def all_stats(self):
        out = [p.stats for p in self.processors]
        if self.memory_limiter is not None:
            out.append(self.memory_limiter.stats)
        return out
