"""From a validated config entry to a processor: the one place that knows every processor type."""

from __future__ import annotations

from typing import Any

from lookout.pipeline.config import ProcessorEntry


def build_request_processor(entry: ProcessorEntry, signal: str, problems: list[str]) -> Any | None:
    if entry.type == "filter":
        from lookout.pipeline.processors.filter import build
    elif entry.type == "attributes":
        from lookout.pipeline.processors.attributes import build_attributes as build
    elif entry.type == "resource":
        from lookout.pipeline.processors.attributes import build_resource as build
    elif entry.type == "redaction":
        from lookout.pipeline.processors.redaction import build
    else:  # pragma: no cover - config.py only routes request types here
        raise ValueError(entry.type)
    return build(entry.name, entry.raw, signal=signal, path=entry.path, problems=problems)


def parse_stream_config(entry: ProcessorEntry, problems: list[str]) -> Any | None:
    raw = entry.raw if entry.raw is not None else {}
    if entry.type == "tail_sampling":
        from lookout.pipeline.tailsampling import parse_config

        return parse_config(raw, entry.path, problems)
    if entry.type == "spanmetrics":
        from lookout.pipeline.spanmetrics import parse_spanmetrics_config

        return parse_spanmetrics_config(raw, entry.path, problems)
    if entry.type == "servicegraph":
        from lookout.pipeline.servicegraph import parse_servicegraph_config

        return parse_servicegraph_config(raw, entry.path, problems)
    raise ValueError(entry.type)  # pragma: no cover
