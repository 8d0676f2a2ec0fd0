"""``result_to_json``: the ``data`` object of Prometheus' ``/api/v1/query(_range)`` responses."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lookout.metrics.promql.format import format_float


@dataclass(slots=True)
class QueryResult:
    """A finished query. ``result_type`` is ``vector``, ``matrix``, ``scalar`` or ``string``.

    ``series`` holds ``(labels, t_ms int64 array, values float64 array)`` per series (one point
    for vectors); ``scalar`` is ``(t_ms, value)`` for scalars, ``string`` ``(t_ms, text)``."""

    result_type: str
    series: list[tuple[dict[str, str], np.ndarray, np.ndarray]] = field(default_factory=list)
    scalar: tuple[int, float] | None = None
    string: tuple[int, str] | None = None
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)


def _ts(t_ms: int):
    t_ms = int(t_ms)
    return t_ms // 1000 if t_ms % 1000 == 0 else t_ms / 1000


def result_to_json(result: QueryResult) -> dict:
    """Exactly Prometheus' API ``data`` object (values as strings, times as Unix seconds)."""
    rt = result.result_type
    if rt == "scalar":
        t, v = result.scalar
        return {"resultType": "scalar", "result": [_ts(t), format_float(v)]}
    if rt == "string":
        t, s = result.string
        return {"resultType": "string", "result": [_ts(t), s]}
    out = []
    for labels, t, v in result.series:
        if rt == "vector":
            out.append({"metric": dict(labels), "value": [_ts(t[0]), format_float(float(v[0]))]})
        else:
            out.append({"metric": dict(labels),
                        "values": [[_ts(tt), format_float(vv)]
                                   for tt, vv in zip(t.tolist(), v.tolist(), strict=True)]})
    return {"resultType": rt, "result": out}
