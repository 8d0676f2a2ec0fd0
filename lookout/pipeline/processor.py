"""The two kinds of processor and how a config entry becomes one.

*Request processors* (``memory_limiter``, ``filter``, ``attributes``, ``resource``,
``redaction``) are stateless per request: they run in the receiver, on the decoded OTLP
request, **before** the request is appended to the log, so what they remove or mask never
reaches the disk — not even the write-ahead log. *Stream processors* (``tail_sampling``,
``spanmetrics``, ``servicegraph``, ``batch``) keep state across requests and run in the
consumer between the log and the store.

A factory turns one config entry into a processor::

    def build(name: str, raw: Any, *, signal: str, path: str, problems: list[str]) -> Processor | None

``name`` is the entry's key as written (``filter/healthz``: type ``filter``, instance
``healthz``), ``raw`` its mapping, ``path`` where it sits (``pipeline.traces[1].filter/healthz``)
for error messages. A factory appends every problem it finds as ``path.key: message`` and
returns None if there was any, so ``lookout check-config`` names them all at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from lookout.pipeline.stats import ProcessorStats

if TYPE_CHECKING:
    from lookout.pipeline.otlp_view import OtlpBatch


class ProcessingError(RuntimeError):
    """A processor could not process a request (an OTTL condition failing with
    ``error_mode: propagate``): the request is refused, as the Collector refuses it, with this
    message naming the processor and the condition."""


class RequestProcessor(Protocol):
    name: str
    stats: ProcessorStats

    def process(self, batch: OtlpBatch, tenant: str) -> None:
        """Change ``batch`` in place (drop items, edit attributes and strings)."""
        ...


class Factory(Protocol):
    def __call__(self, name: str, raw: Any, *, signal: str, path: str,
                 problems: list[str]) -> Any | None: ...


def processor_type(name: str) -> str:
    """``filter/healthz`` -> ``filter``."""
    return name.split("/", 1)[0]
