"""Evaluated values. Every node is evaluated for all steps at once, so an instant vector is a
matrix of series x steps with a presence mask (NaN is a legitimate PromQL value, so absence cannot
be encoded as NaN)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookout.gocompat import quote

NAME = "__name__"


@dataclass(slots=True)
class Vector:
    """An instant vector over ``S`` steps: ``v``/``ok`` are ``(n, S)``; ``drop[i]`` marks series
    whose ``__name__`` is removed at the end of evaluation (Prometheus 3 delayed name removal)."""

    labels: list[dict[str, str]]
    v: np.ndarray
    ok: np.ndarray
    drop: np.ndarray

    @staticmethod
    def empty(steps: int) -> Vector:
        return Vector([], np.zeros((0, steps)), np.zeros((0, steps), bool), np.zeros(0, bool))

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx) -> Vector:
        idx = np.asarray(idx, dtype=np.int64)
        return Vector([self.labels[i] for i in idx], self.v[idx], self.ok[idx], self.drop[idx])

    def compact(self) -> Vector:
        """Drop series that are absent at every step."""
        keep = self.ok.any(axis=1)
        if keep.all():
            return self
        return self.take(np.nonzero(keep)[0])


@dataclass(slots=True)
class Scalar:
    v: np.ndarray  # (S,)


@dataclass(slots=True)
class String:
    s: str


@dataclass(slots=True)
class RangeVec:
    """A range vector: raw samples per series (stale markers removed) plus, per step, the window
    end; the window at a step is ``(ends - range_ms, ends]`` (left-open, as in Prometheus 3)."""

    labels: list[dict[str, str]]
    t: list[np.ndarray]
    v: list[np.ndarray]
    ends: np.ndarray
    range_ms: int
    drop: np.ndarray

    def bounds(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Per step, the [lo, hi) sample index range of series ``i`` in its window."""
        t = self.t[i]
        return np.searchsorted(t, self.ends - self.range_ms, "right"), np.searchsorted(t, self.ends, "right")


Value = Vector | Scalar | String | RangeVec


def key_of(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def without_name(labels: dict[str, str]) -> dict[str, str]:
    if NAME not in labels:
        return labels
    return {k: v for k, v in labels.items() if k != NAME}


def labels_str(labels: dict[str, str]) -> str:
    """Prometheus' ``labels.String()``: ``{a="1", b="2"}`` with ``__name__`` first-class."""
    parts = [f"{k}={quote(v)}" for k, v in sorted(labels.items())]
    return "{" + ", ".join(parts) + "}"
