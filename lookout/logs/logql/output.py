"""Loki's HTTP ``data`` object for a :class:`QueryResult` (``resultType``, ``result``, ``stats``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .series import label_key

if TYPE_CHECKING:
    from .engine import QueryResult


def fmt_value(v: float) -> str:
    """Go ``strconv.FormatFloat(v, 'f', -1, 64)`` as Prometheus/Loki print sample values."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    return np.format_float_positional(v, trim="-")


def fmt_time(ns: int) -> float | int:
    """Unix seconds as a JSON number (integral when whole, as Loki prints it)."""
    if ns % 1_000_000_000 == 0:
        return ns // 1_000_000_000
    return ns / 1e9


def result_to_json(result: QueryResult) -> dict[str, Any]:
    """Exactly Loki's ``data`` object; streams merge parsed labels and structured metadata into the
    stream labels (the encoding used when the ``categorize-labels`` flag is not set)."""
    rt = result.result_type
    out: list[Any] | Any
    if rt == "streams":
        out = [{"stream": labels, "values": [[str(ts), line] for ts, line in entries]}
               for labels, entries in result.streams]
    elif rt == "scalar":
        assert result.scalar is not None
        out = [fmt_time(int(result.steps[-1])), fmt_value(float(result.scalar.values[-1]))]
    else:
        m = result.matrix
        assert m is not None
        order = list(range(len(m))) if m.ordered else sorted(range(len(m)), key=lambda i: label_key(m.labels[i]))
        if rt == "vector":
            t = fmt_time(int(result.steps[-1]))
            out = [{"metric": m.labels[i], "value": [t, fmt_value(float(m.values[i, -1]))]}
                   for i in order if m.present[i, -1]]
        else:
            out = []
            for i in order:
                vals = [[fmt_time(int(t)), fmt_value(float(v))]
                        for t, v, p in zip(result.steps, m.values[i], m.present[i], strict=True) if p]
                if vals:
                    out.append({"metric": m.labels[i], "values": vals})
    return {"resultType": rt, "result": out, "stats": result.stats}
