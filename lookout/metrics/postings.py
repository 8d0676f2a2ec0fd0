"""Inverted label indexes: label name -> value -> series, and matcher resolution over them.

Two forms share one resolution algorithm (design doc 6.2):

- :class:`MemPostings` for the head: mutable, ``dict name -> dict value -> BitMap`` of dense
  per-tenant series numbers (pyroaring does the set algebra in C);
- :class:`BlockPostings` for a block: built once from the block's series table and cached; per
  label name a sorted array of distinct values and a CSR list of series rows, materialised
  lazily per name, and sets are numpy boolean masks over the block's series.

Matchers follow Prometheus: ``=``/``=~`` select the series whose label matches, ``!=``/``!~`` are
the complement of the positive form, and a matcher that matches the empty string also selects
series that do not have the label at all. Regexes are fully anchored and run over the *distinct
values* of the label only, never over series or samples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyroaring import BitMap

from lookout.metrics.model import Matcher

_LITERAL_ALT = re.compile(r"^[A-Za-z0-9_:\-/ ,@#%=<>!~\"'`;&]*(\|[A-Za-z0-9_:\-/ ,@#%=<>!~\"'`;&]*)*$")


def literal_alternatives(pattern: str) -> list[str] | None:
    """``a|b|c`` with no regex metacharacters: the exact values it matches, else None.

    The common Grafana form (``job=~"api|web"``) then costs dictionary lookups, not a scan."""
    if _LITERAL_ALT.match(pattern):
        return pattern.split("|")
    return None


def regex_mask(values: pa.Array, pattern: str) -> np.ndarray:
    """Which of ``values`` fully match ``pattern``; RE2 in Arrow (Go regexp syntax, as PromQL),
    falling back to Python's ``re`` for what RE2 refuses."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    try:
        hit = pc.match_substring_regex(values, pattern=f"^(?s:{pattern})$")
        return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        rx = Matcher("x", "=~", pattern).compiled()
        return np.fromiter((rx.fullmatch(v) is not None for v in values.to_pylist()), bool, len(values))


def matches_empty(m: Matcher) -> bool:
    """Whether the *positive* form of ``m`` matches the empty string (an absent label)."""
    if m.op in ("=", "!="):
        return m.value == ""
    return m.compiled().fullmatch("") is not None


# ---- head -------------------------------------------------------------------------------------


class MemPostings:
    """Head postings of one tenant. Not thread-safe: the head calls it under its lock."""

    def __init__(self) -> None:
        self._m: dict[str, dict[str, BitMap]] = {}
        self._values_cache: dict[str, pa.Array] = {}
        self.all = BitMap()

    def add(self, name: str, value: str, nums: Iterable[int]) -> None:
        vals = self._m.get(name)
        if vals is None:
            vals = self._m[name] = {}
        bm = vals.get(value)
        if bm is None:
            bm = vals[value] = BitMap()
            self._values_cache.pop(name, None)
        bm.update(nums)

    def add_all(self, nums: Iterable[int]) -> None:
        self.all.update(nums)

    def remove(self, num: int, pairs: Iterable[tuple[str, str]]) -> None:
        self.all.discard(num)
        for name, value in pairs:
            vals = self._m.get(name)
            bm = vals.get(value) if vals else None
            if bm is None:
                continue
            bm.discard(num)
            if not bm:
                del vals[value]
                self._values_cache.pop(name, None)
                if not vals:
                    del self._m[name]

    # -- reads

    def names(self) -> list[str]:
        return sorted(self._m)

    def values_of(self, name: str) -> dict[str, BitMap]:
        return self._m.get(name, {})

    def value_array(self, name: str) -> pa.Array:
        arr = self._values_cache.get(name)
        if arr is None:
            arr = self._values_cache[name] = pa.array(list(self._m.get(name, {})), pa.string())
        return arr

    def _union_values(self, name: str, values: Iterable[str]) -> BitMap:
        vals = self._m.get(name, {})
        return BitMap.union(BitMap(), *(vals[v] for v in values if v in vals))

    def _has_label(self, name: str) -> BitMap:
        return BitMap.union(BitMap(), *self._m.get(name, {}).values())

    def positive(self, m: Matcher) -> BitMap:
        """Series matching the positive form (``=`` or ``=~``) of ``m``."""
        if m.op in ("=", "!="):
            hit = self._union_values(m.name, [m.value]) if m.value else BitMap()
        else:
            lits = literal_alternatives(m.value)
            if lits is not None:
                hit = self._union_values(m.name, lits)
            else:
                arr = self.value_array(m.name)
                mask = regex_mask(arr, m.value)
                hit = self._union_values(m.name, [arr[i].as_py() for i in np.flatnonzero(mask)])
        if matches_empty(m):
            hit |= self.all - self._has_label(m.name)
        return hit

    def select(self, matchers: list[Matcher]) -> BitMap:
        """Series numbers matching every matcher; the positive matchers go first (they are the
        small sets), negatives are subtracted."""
        result: BitMap | None = None
        ordered = sorted(matchers, key=lambda m: (m.op not in ("=", "=~"), m.op != "="))
        for m in ordered:
            pos = self.positive(m)
            if m.op in ("=", "=~"):
                result = pos if result is None else result & pos
            else:
                result = (self.all if result is None else result) - pos
            if not result:
                return BitMap()
        return BitMap(self.all) if result is None else result


# ---- blocks -----------------------------------------------------------------------------------


class BlockPostings:
    """Postings of one block, from its series table's ``labels`` column.

    Per label name (built on first use): ``values`` (sorted distinct, Arrow) and CSR arrays
    ``offsets``/``rows`` so ``rows[offsets[k]:offsets[k+1]]`` are the series rows having value
    ``k``. Sets are boolean masks over the ``n`` series rows."""

    def __init__(self, labels: pa.ListArray) -> None:
        flat = labels.flatten()
        self.n = len(labels)
        off = labels.offsets.to_numpy()
        counts = np.diff(off) if self.n else np.zeros(0, np.int64)
        self._row_of = np.repeat(np.arange(self.n, dtype=np.int64), counts)
        self._names = flat.field("name")
        self._values = flat.field("value")
        self._by_name: dict[str, tuple[pa.Array, np.ndarray, np.ndarray]] = {}
        self._name_list: list[str] | None = None

    def names(self) -> list[str]:
        if self._name_list is None:
            self._name_list = sorted(pc.unique(self._names).to_pylist())
        return self._name_list

    def label(self, name: str) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        got = self._by_name.get(name)
        if got is None:
            sel = pc.equal(self._names, name)
            vals = self._values.filter(sel)
            rows = self._row_of[np.asarray(sel.to_numpy(zero_copy_only=False), dtype=bool)]
            order = np.asarray(pc.sort_indices(vals))
            vals, rows = vals.take(pa.array(order)), rows[order]
            n = len(vals)
            change = np.ones(n, dtype=bool)
            if n > 1:
                change[1:] = ~np.asarray(pc.equal(vals.slice(1), vals.slice(0, n - 1)).to_numpy(zero_copy_only=False))
            starts = np.flatnonzero(change)
            uniq = vals.take(pa.array(starts))
            offsets = np.append(starts, n).astype(np.int64)
            got = self._by_name[name] = (uniq, offsets, rows)
        return got

    def _mask_for(self, name: str, which: np.ndarray) -> np.ndarray:
        """Mask of series having label ``name`` with one of the value indexes ``which``."""
        _, offsets, rows = self.label(name)
        mask = np.zeros(self.n, dtype=bool)
        if len(which):
            lo, hi = offsets[which], offsets[which + 1]
            total = int((hi - lo).sum())
            if total:
                idx = np.repeat(lo - np.cumsum(np.r_[0, (hi - lo)[:-1]]), hi - lo) + np.arange(total)
                mask[rows[idx]] = True
        return mask

    def positive(self, m: Matcher) -> np.ndarray:
        uniq, offsets, rows = self.label(m.name)
        if m.op in ("=", "!="):
            which = _find(uniq, [m.value]) if m.value else np.zeros(0, np.int64)
        else:
            lits = literal_alternatives(m.value)
            which = _find(uniq, lits) if lits is not None else np.flatnonzero(regex_mask(uniq, m.value))
        mask = self._mask_for(m.name, which)
        if matches_empty(m):
            has = np.zeros(self.n, dtype=bool)
            has[rows] = True
            mask |= ~has
        return mask

    def select(self, matchers: list[Matcher]) -> np.ndarray:
        result = np.ones(self.n, dtype=bool)
        ordered = sorted(matchers, key=lambda m: (m.op not in ("=", "=~"), m.op != "="))
        for m in ordered:
            pos = self.positive(m)
            result &= pos if m.op in ("=", "=~") else ~pos
            if not result.any():
                break
        return result


def _find(uniq: pa.Array, values: list[str]) -> np.ndarray:
    """Indexes in ``uniq`` of those ``values`` present (vectorised via Arrow's hash lookup)."""
    if not len(uniq) or not values:
        return np.zeros(0, np.int64)
    idx = pc.index_in(pa.array(values, pa.string()), value_set=uniq)
    return np.unique(idx.drop_null().to_numpy().astype(np.int64))
