"""The ``filter`` processor: the Collector's filterprocessor with OTTL conditions.

Config (as in the Collector, so configs carry over)::

    filter/healthz:
      error_mode: ignore          # propagate (default) | ignore | silent
      traces:
        span: ['attributes["http.route"] == "/healthz"']
        spanevent: [...]
      logs:
        log_record: ['severity_number < SEVERITY_NUMBER_INFO']
      metrics:
        metric: ['name == "noisy"']
        datapoint: [...]

Conditions of one list are OR-ed; matching items are dropped, and containers left empty go
too (``OtlpBatch.drop``). One filter config may sit in several pipelines, so a section for
another signal is accepted and ignored. The legacy ``include``/``exclude`` match config is
rejected with a pointer to OTTL rather than half-supported.

Each condition evaluates over the whole request at once (numpy masks), so a filter costs a few
Arrow kernels per request, not a Python call per span.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookout.pipeline.otlp_view import OtlpBatch
from lookout.pipeline.processor import ProcessingError
from lookout.pipeline.stats import ProcessorStats

log = logging.getLogger(__name__)

#: signal -> its config section and the OTTL context of each key, in evaluation order
_SECTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "traces": ("traces", {"span": "span", "spanevent": "spanevent"}),
    "logs": ("logs", {"log_record": "log"}),
    "metrics": ("metrics", {"metric": "metric", "datapoint": "datapoint"}),
}
_LEGACY = {"include", "exclude", "spans", "span_names", "services", "match_type",
           "metric_names", "resource_attributes", "log_record_severity", "severity_number",
           "severity_texts", "bodies", "libraries", "attributes", "resources", "regexp"}
_ERROR_MODES = ("propagate", "ignore", "silent")


class FilterError(ProcessingError):
    """A condition failed at run time with ``error_mode: propagate`` (the request is refused)."""


@dataclass(slots=True)
class _Rule:
    kind: str           # OTTL context kind
    conditions: list[Any]


class FilterProcessor:
    """Drops the items of one signal that match any of its OTTL conditions."""

    def __init__(self, name: str, signal: str, rules: list[_Rule], error_mode: str) -> None:
        self.name = name
        self.signal = signal
        self.rules = rules
        self.error_mode = error_mode
        self.stats = ProcessorStats(signal, name)

    def _mask(self, batch: OtlpBatch, rule: _Rule) -> np.ndarray:
        """OR of the rule's conditions over the context; a failing condition matches nothing
        (error_mode ignore/silent) or raises (propagate), as in the Collector."""
        ctx = batch.context(rule.kind)
        mask = np.zeros(len(ctx), dtype=np.bool_)
        for cond in rule.conditions:
            try:
                mask |= np.asarray(cond.evaluate(ctx), dtype=np.bool_)
            except Exception as exc:
                if self.error_mode == "propagate":
                    raise FilterError(f"{self.name}: condition {cond.text!r} failed: {exc}") from exc
                if self.error_mode == "ignore":
                    log.warning("%s: condition %r failed, ignored: %s", self.name, cond.text, exc)
        return mask

    def process(self, batch: OtlpBatch, tenant: str) -> None:
        before = batch.item_count()
        self.stats.add("received_items", before)
        for rule in self.rules:
            if batch.is_empty():
                break
            mask = self._mask(batch, rule)
            if mask.any():
                n = batch.drop(rule.kind, mask)
                if rule.kind == "spanevent":
                    self.stats.add("dropped_span_events", n, reason="filter")
        self.stats.add("dropped_items", before - batch.item_count(), reason="filter")


def build(name: str, raw: Any, *, signal: str, path: str, problems: list[str]) -> FilterProcessor | None:
    """Validate a ``filter`` config entry; every problem is appended as ``path.key: message``."""
    start = len(problems)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        problems.append(f"{path}: expected a mapping, got {type(raw).__name__}")
        return None
    error_mode = raw.get("error_mode", "propagate")
    if error_mode not in _ERROR_MODES:
        problems.append(f"{path}.error_mode: must be one of {', '.join(_ERROR_MODES)}, "
                        f"got {error_mode!r}")
    sections = {s for s, _ in _SECTIONS.values()}
    for key in raw:
        if key == "error_mode" or key in sections:
            continue
        if key in _LEGACY:
            problems.append(f"{path}.{key}: the legacy match configuration is not supported; "
                            "write OTTL conditions under traces.span / logs.log_record / "
                            "metrics.metric instead")
        else:
            problems.append(f"{path}.{key}: unknown key (expected error_mode, traces, logs, metrics)")
    rules: list[_Rule] = []
    for sig, (section, kinds) in _SECTIONS.items():
        body = raw.get(section)
        if body is None:
            continue
        if not isinstance(body, dict):
            problems.append(f"{path}.{section}: expected a mapping")
            continue
        for key in body:
            if key not in kinds:
                if key in _LEGACY:
                    problems.append(f"{path}.{section}.{key}: the legacy match configuration is "
                                    "not supported; write OTTL conditions under "
                                    f"{section}.{' / '.join(kinds)} instead")
                else:
                    problems.append(f"{path}.{section}.{key}: unknown key (expected "
                                    f"{', '.join(kinds)})")
        for key, kind in kinds.items():
            conds = body.get(key)
            if conds is None:
                continue
            if isinstance(conds, str) or not isinstance(conds, list):
                problems.append(f"{path}.{section}.{key}: expected a list of OTTL conditions")
                continue
            compiled = _compile(conds, kind, f"{path}.{section}.{key}", problems)
            if sig == signal and compiled:
                rules.append(_Rule(kind, compiled))
    if len(problems) > start:
        return None
    return FilterProcessor(name, signal, rules, error_mode)


def _compile(conds: list[Any], kind: str, where: str, problems: list[str]) -> list[Any]:
    from lookout.pipeline.ottl import OttlError, compile_condition

    out = []
    for i, text in enumerate(conds):
        if not isinstance(text, str):
            problems.append(f"{where}[{i}]: expected a string, got {type(text).__name__}")
            continue
        try:
            out.append(compile_condition(text, kind))
        except OttlError as err:
            problems.append(f"{where}[{i}]: {err}")
    return out
