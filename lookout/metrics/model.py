"""The contract between the metrics store and the PromQL engine.

The engine only ever sees a :class:`Querier`; the store (head + blocks) and the in-memory
:class:`MemoryQuerier` used by unit tests and the in-process conformance runner both implement
it, so the engine can be tested without a server and the store without PromQL.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

# Prometheus marks a series stale with this exact NaN bit pattern (value.StaleNaN).
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]

METRIC_NAME = "__name__"


def is_stale(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the stale markers in a float64 array (a plain NaN is not stale)."""
    return np.asarray(values, dtype=np.float64).view(np.uint64) == np.uint64(STALE_NAN_BITS)


@dataclass(frozen=True, slots=True)
class Matcher:
    """A label matcher as PromQL writes it. ``op`` is one of ``=``, ``!=``, ``=~``, ``!~``.

    Regexes are fully anchored, as in Prometheus; an empty ``value`` matches an absent label."""

    name: str
    op: str
    value: str

    def compiled(self) -> re.Pattern[str]:
        return _anchored(self.value)

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = self.compiled().fullmatch(value) is not None
        return hit if self.op == "=~" else not hit


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _anchored(pattern: str) -> re.Pattern[str]:
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        compiled = re.compile(f"(?s:{pattern})")
        if len(_REGEX_CACHE) > 4096:
            _REGEX_CACHE.clear()
        _REGEX_CACHE[pattern] = compiled
    return compiled


@dataclass(slots=True)
class Series:
    """One series' samples in a time range: ``t`` int64 milliseconds ascending, ``v`` float64
    (stale markers kept as :data:`STALE_NAN`). ``labels`` includes ``__name__``."""

    labels: dict[str, str]
    t: np.ndarray
    v: np.ndarray


@dataclass(slots=True)
class Exemplar:
    labels: dict[str, str]
    t_ms: int
    value: float


@dataclass(slots=True)
class SeriesExemplars:
    series_labels: dict[str, str]
    exemplars: list[Exemplar] = field(default_factory=list)


class Querier(Protocol):
    """Read access to one tenant's series. Times are inclusive Unix milliseconds."""

    def select(self, matchers: list[Matcher], start_ms: int, end_ms: int) -> list[Series]:
        """Every series matching all ``matchers`` with its samples in ``[start_ms, end_ms]``.

        Series with no sample in the range may be omitted."""
        ...

    def label_names(self, matchers: list[list[Matcher]], start_ms: int, end_ms: int) -> list[str]:
        """Sorted label names of the series matching any of the matcher sets (all if empty)."""
        ...

    def label_values(self, name: str, matchers: list[list[Matcher]], start_ms: int, end_ms: int) -> list[str]:
        ...

    def series(self, matchers: list[list[Matcher]], start_ms: int, end_ms: int) -> list[dict[str, str]]:
        ...


def matches_all(labels: dict[str, str], matchers: list[Matcher]) -> bool:
    return all(m.matches(labels.get(m.name, "")) for m in matchers)


class MemoryQuerier:
    """A plain in-memory :class:`Querier` for tests and the in-process conformance runner.

    Not for production: it scans every series for every select."""

    def __init__(self) -> None:
        self._series: dict[tuple[tuple[str, str], ...], tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def clear(self) -> None:
        self._series.clear()

    def add(self, labels: dict[str, str], t_ms: np.ndarray, values: np.ndarray) -> None:
        """Add samples to a series; a later sample at an existing timestamp replaces it."""
        key = tuple(sorted(labels.items()))
        ts, vs = self._series.setdefault(key, ([], []))
        ts.append(np.asarray(t_ms, dtype=np.int64))
        vs.append(np.asarray(values, dtype=np.float64))

    def _materialize(self, key: tuple[tuple[str, str], ...]) -> tuple[np.ndarray, np.ndarray]:
        ts, vs = self._series[key]
        t = np.concatenate(ts) if ts else np.empty(0, np.int64)
        v = np.concatenate(vs) if vs else np.empty(0, np.float64)
        # keep the last write for each timestamp, then sort by time
        rev_t, rev_idx = np.unique(t[::-1], return_index=True)
        idx = len(t) - 1 - rev_idx
        t, v = rev_t, v[idx]
        self._series[key] = ([t], [v])
        return t, v

    def select(self, matchers: list[Matcher], start_ms: int, end_ms: int) -> list[Series]:
        out = []
        for key in list(self._series):
            labels = dict(key)
            if not matches_all(labels, matchers):
                continue
            t, v = self._materialize(key)
            lo, hi = np.searchsorted(t, start_ms, "left"), np.searchsorted(t, end_ms, "right")
            if hi > lo:
                out.append(Series(labels, t[lo:hi], v[lo:hi]))
        return out

    def series(self, matchers: list[list[Matcher]], start_ms: int, end_ms: int) -> list[dict[str, str]]:
        sets = matchers or [[]]
        found: dict[tuple, dict[str, str]] = {}
        for ms in sets:
            for s in self.select(ms, start_ms, end_ms):
                found[tuple(sorted(s.labels.items()))] = s.labels
        return [found[k] for k in sorted(found)]

    def label_names(self, matchers: list[list[Matcher]], start_ms: int, end_ms: int) -> list[str]:
        return sorted({n for labels in self.series(matchers, start_ms, end_ms) for n in labels})

    def label_values(self, name: str, matchers: list[list[Matcher]], start_ms: int, end_ms: int) -> list[str]:
        return sorted({lb[name] for lb in self.series(matchers, start_ms, end_ms) if lb.get(name)})
