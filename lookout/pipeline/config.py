"""The ``pipeline:`` section: an ordered list of Collector processors per signal.

Each entry is a one-key mapping, the processor's name as the Collector writes it (``type`` or
``type/instance``) over its settings, so a block copied from a Collector config works::

    pipeline:
      traces:
        - memory_limiter: {check_interval: 1s, limit_mib: 1024}
        - filter/healthz:
            traces:
              span: ['attributes["http.route"] == "/healthz"']
        - redaction: {allow_all_keys: true}
        - spanmetrics: {}
        - tail_sampling: {decision_wait: 10s, policies: [...]}

Request processors run in list order before the log. ``tail_sampling``, ``spanmetrics`` and
``servicegraph`` run in the trace consumer after the log; span metrics and the service graph
always see every span before sampling (their place in the list does not matter), which is what
keeps their rates and error counts exact. ``batch`` is accepted for compatibility: batching
already happens where records are read from the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lookout.pipeline.memory_limiter import MemoryLimiterConfig, parse_memory_limiter
from lookout.pipeline.processor import processor_type
from lookout.pipeline.settings import Settings

SIGNALS = ("traces", "metrics", "logs")
REQUEST_TYPES = ("filter", "attributes", "resource", "redaction")
TRACE_ONLY = ("tail_sampling", "spanmetrics", "servicegraph")
KNOWN_TYPES = ("memory_limiter", "batch", *REQUEST_TYPES, *TRACE_ONLY)

_BATCH_KEYS = ("timeout", "send_batch_size", "send_batch_max_size", "metadata_keys", "metadata_cardinality_limit")


@dataclass(slots=True)
class ProcessorEntry:
    name: str  # as written: type or type/instance
    type: str
    raw: Any
    path: str
    processor: Any = None  # request processors: built (and so validated) by parse_pipelines


@dataclass(slots=True)
class SignalPipeline:
    """One signal's processors, validated (their configs parsed once to find every error)."""

    signal: str
    memory_limiter: tuple[str, MemoryLimiterConfig] | None = None
    request: list[ProcessorEntry] = field(default_factory=list)  # filter/attributes/resource/redaction, in order
    tail_sampling: tuple[str, Any] | None = None  # (name, TailSamplingConfig)
    spanmetrics: tuple[str, Any] | None = None
    servicegraph: tuple[str, Any] | None = None
    collection_interval: float = 15.0  # how often generated series are stored (Tempo's default)


def _entries(signal: str, raw: Any, problems: list[str]) -> list[ProcessorEntry]:
    path = f"pipeline.{signal}"
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(f"{path}: expected a list of processors (- name: {{settings}}), got {type(raw).__name__}")
        return []
    out, seen = [], set()
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if isinstance(item, str):
            item = {item: None}
        if not isinstance(item, dict) or len(item) != 1:
            problems.append(f"{where}: expected one processor as a one-key mapping like "
                            f"'- filter/healthz: {{...}}', got {item!r}")
            continue
        (name, settings), = item.items()
        name = str(name)
        kind = processor_type(name)
        if kind not in KNOWN_TYPES:
            problems.append(f"{where}: unknown processor type \"{kind}\" (expected one of {', '.join(KNOWN_TYPES)})")
            continue
        if name in seen:
            problems.append(f"{where}: processor \"{name}\" is listed twice")
            continue
        seen.add(name)
        if kind in TRACE_ONLY and signal != "traces":
            problems.append(f"{where}: {kind} works on spans; put it in pipeline.traces")
            continue
        out.append(ProcessorEntry(name, kind, settings, f"{where}.{name}"))
    return out


def parse_pipelines(raw: Any, problems: list[str]) -> dict[str, SignalPipeline]:
    """Validate the whole ``pipeline:`` section; every problem is appended with its path."""
    from lookout.pipeline import factories  # processors import heavy libraries; load them only here

    out = {s: SignalPipeline(s) for s in SIGNALS}
    if raw is None:
        return out
    if not isinstance(raw, dict):
        problems.append(f"pipeline: expected a mapping of signal to processor list, got {type(raw).__name__}")
        return out
    for signal, entries in raw.items():
        if signal not in SIGNALS:
            problems.append(f"pipeline.{signal}: unknown signal (expected one of {', '.join(SIGNALS)})")
            continue
        spec = out[signal]
        for e in _entries(signal, entries, problems):
            if e.type == "memory_limiter":
                cfg = parse_memory_limiter(e.raw, e.path, problems)
                if cfg is not None:
                    spec.memory_limiter = (e.name, cfg)
            elif e.type == "batch":
                s = Settings(e.raw, e.path, problems)
                for key in _BATCH_KEYS:
                    s.any(key)
                s.done()
            elif e.type in REQUEST_TYPES:
                # built here so that every error is found at startup and by check-config
                e.processor = factories.build_request_processor(e, signal, problems)
                spec.request.append(e)
            else:
                if e.type != "tail_sampling" and isinstance(e.raw, dict) and "collection_interval" in e.raw:
                    e.raw = dict(e.raw)
                    interval = Settings({"collection_interval": e.raw.pop("collection_interval")}, e.path, problems)
                    spec.collection_interval = interval.duration("collection_interval", 15.0) or 15.0
                cfg = factories.parse_stream_config(e, problems)
                if cfg is not None:
                    setattr(spec, e.type, (e.name, cfg))
    return out
