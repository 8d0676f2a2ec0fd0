"""Step-aligned numeric results: :class:`Matrix` (one row per series, one column per step) and
:class:`Scalar`. Metric evaluation works on whole matrices with numpy; ``present`` marks which
(series, step) cells hold a sample, so a NaN *value* stays distinct from *no sample*."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Matrix:
    labels: list[dict[str, str]]
    values: np.ndarray  # float64 (S, T)
    present: np.ndarray  # bool (S, T)
    ordered: bool = False  # sort()/sort_desc(): keep row order in the output

    @staticmethod
    def empty(t: int) -> Matrix:
        return Matrix([], np.zeros((0, t)), np.zeros((0, t), dtype=bool))

    def __len__(self) -> int:
        return len(self.labels)

    def compact(self) -> Matrix:
        """Drop series with no sample at any step."""
        keep = self.present.any(axis=1)
        if keep.all():
            return self
        return Matrix([lb for lb, k in zip(self.labels, keep, strict=True) if k], self.values[keep],
                      self.present[keep], self.ordered)


@dataclass
class Scalar:
    values: np.ndarray  # float64 (T,)


def label_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def series_string(labels: dict[str, str]) -> str:
    """Prometheus ``labels.String()``: ``{a="1", b="2"}`` sorted by name, values Go-quoted."""
    from .units import go_quote

    return "{" + ", ".join(f"{k}={go_quote(v)}" for k, v in sorted(labels.items())) + "}"
