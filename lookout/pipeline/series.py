"""Cumulative Prometheus series built from spans: the output type and the accumulator that the
span-metrics and service-graph processors share.

Both processors turn a batch of spans into increments of counters and classic histograms keyed
by a label set, exactly as Tempo's metrics-generator registry does, and hand back the
*cumulative* value of every series on each collection (Prometheus counters never reset while the
process lives, so remote write needs no delta bookkeeping and a lost push loses nothing).

The hot path is vectorized: label columns are dictionary-encoded, combined into one integer key
per row and grouped with ``np.unique``; only the distinct label sets of a batch (bounded by
``max_series``) are looked up in a Python dict, and the increments are ``np.bincount`` sums
scattered into per-series numpy arrays. No Python runs per span.

Exemplars follow tail sampling: an exemplar that points at a trace the sampler drops is a dead
link in Grafana, so each histogram keeps a few candidate (trace, span, value) per series and
only publishes one once ``kept(trace_id)`` says the trace was kept.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(slots=True)
class Exemplar:
    trace_id: bytes
    span_id: bytes
    value: float
    t_ms: int


@dataclass(slots=True)
class SeriesSample:
    labels: dict[str, str]  # incl. "__name__"
    value: float
    exemplar: Exemplar | None = None
    new: bool = False  # first collection of this series: it was 0 at the previous one


KeptFn = Callable[[bytes], "bool | None"]
"""The tail sampler's verdict on a trace: True kept, False dropped, None not decided yet."""

EXEMPLAR_CANDIDATES = 8
"""Candidates remembered per histogram series while their traces are undecided (bounded memory:
``max_series * 8`` small tuples per histogram)."""

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def sanitize_label_name(name: str) -> str:
    """Prometheus ``strutil.SanitizeLabelName``: every invalid character becomes ``_`` (so
    ``http.method`` -> ``http_method``); a leading digit gets a ``_`` prefix."""
    out = _INVALID_LABEL_CHARS.sub("_", name)
    if out and out[0].isdigit():
        out = "_" + out
    return out


def valid_label_name(name: str) -> bool:
    return bool(_LABEL_NAME.match(name)) and not name.startswith("__")


def format_le(bound: float) -> str:
    """``le`` as Prometheus' Go client writes it (``strconv.FormatFloat(b, 'g', -1, 64)``):
    ``1`` not ``1.0``, ``0.002``, ``+Inf``."""
    if bound == float("inf"):
        return "+Inf"
    if float(bound).is_integer() and abs(bound) < 1e21:
        return str(int(bound))
    return repr(float(bound))


def exponential_buckets(start: float, factor: float, count: int) -> list[float]:
    """``prometheus.ExponentialBuckets``: Tempo's defaults are written this way."""
    return [start * factor**i for i in range(count)]


# --------------------------------------------------------------------------------------------
# Label columns -> one integer key per row
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class CodedColumn:
    """A label column already as small integer codes into ``names`` (span kind, status code)."""

    codes: np.ndarray
    names: pa.Array  # pa.string()


LabelColumn = pa.Array | pa.ChunkedArray | CodedColumn


def _encode(col: LabelColumn) -> tuple[np.ndarray, pa.Array]:
    """(int64 codes per row, dictionary of distinct strings)."""
    if isinstance(col, CodedColumn):
        return col.codes.astype(np.int64, copy=False), col.names
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if col.type != pa.string():
        col = col.cast(pa.string())
    enc = pc.dictionary_encode(col.fill_null(""))
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False), enc.dictionary


def group_rows(columns: Sequence[LabelColumn], n: int) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Group ``n`` rows by the tuple of their label values.

    Returns (group index per row, the label tuple of each group). Codes are combined into one
    int64 by mixed radix when the cardinalities allow it (the usual case), otherwise rows of codes
    are uniqued; either way the work is numpy's, and Python only builds one tuple per group.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64), []
    if not columns:
        return np.zeros(n, dtype=np.int64), [()]
    encoded = [_encode(c) for c in columns]
    radix = 1
    for _, d in encoded:
        radix *= max(len(d), 1)
    if radix < 2**62:
        key = np.zeros(n, dtype=np.int64)
        mult = 1
        for codes, d in encoded:
            key += codes * mult
            mult *= max(len(d), 1)
        uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    else:
        stacked = np.stack([codes for codes, _ in encoded], axis=1)
        uniq, first, inverse = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    per_col = [d.take(pa.array(codes[first])).to_pylist() for codes, d in encoded]
    return inverse, list(zip(*per_col, strict=True))


# --------------------------------------------------------------------------------------------
# The accumulator
# --------------------------------------------------------------------------------------------


class SeriesBudget:
    """How many more label sets a processor may create for one tenant (shared by its families)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


@dataclass(slots=True)
class _Histogram:
    name: str
    bounds: np.ndarray  # finite upper bounds, ascending
    buckets: np.ndarray  # [capacity, len(bounds) + 1] non-cumulative counts (last: > max bound)
    sums: np.ndarray
    candidates: list[deque[tuple[bytes, bytes, float, int]]] = field(default_factory=list)
    pending: dict[int, Exemplar] = field(default_factory=dict)


class SeriesFamily:
    """Counters and histograms of one tenant that share one label schema.

    A label set becomes a series index on first sight (if the budget allows; otherwise its rows
    get index -1 and are counted as dropped by the caller). Counters and histograms are numpy
    arrays indexed by series, grown by doubling.
    """

    def __init__(self, label_names: Sequence[str], counters: Sequence[str],
                 histograms: Sequence[tuple[str, Sequence[float]]], budget: SeriesBudget) -> None:
        self.label_names = tuple(label_names)
        self.budget = budget
        self.index: dict[tuple[str, ...], int] = {}
        self.labels: list[tuple[str, ...]] = []
        self._collected = 0  # series [0, _collected) were sent before; the rest are new
        self._cap = 16
        self.counters = {name: np.zeros(self._cap) for name in counters}
        self.hists = {
            name: _Histogram(name, np.asarray(bounds, dtype=np.float64),
                             np.zeros((self._cap, len(bounds) + 1), dtype=np.int64), np.zeros(self._cap))
            for name, bounds in histograms
        }

    def __len__(self) -> int:
        return len(self.labels)

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = self._cap
        while cap < need:
            cap *= 2
        for name, arr in self.counters.items():
            self.counters[name] = np.concatenate([arr, np.zeros(cap - self._cap)])
        for h in self.hists.values():
            h.buckets = np.concatenate([h.buckets, np.zeros((cap - self._cap, h.buckets.shape[1]), dtype=np.int64)])
            h.sums = np.concatenate([h.sums, np.zeros(cap - self._cap)])
        self._cap = cap

    def resolve(self, columns: Sequence[LabelColumn], n: int) -> np.ndarray:
        """Series index per row (-1 where a new label set is over the budget)."""
        inverse, groups = group_rows(columns, n)
        ids = np.empty(len(groups), dtype=np.int64)
        for g, labels in enumerate(groups):  # one iteration per distinct label set in the batch
            sid = self.index.get(labels)
            if sid is None:
                if self.budget.take():
                    sid = len(self.labels)
                    self.index[labels] = sid
                    self.labels.append(labels)
                    for h in self.hists.values():
                        h.candidates.append(deque(maxlen=EXEMPLAR_CANDIDATES))
                else:
                    sid = -1
            ids[g] = sid
        self._grow(len(self.labels))
        return ids[inverse] if len(groups) else np.zeros(0, dtype=np.int64)

    def add(self, counter: str, sid: np.ndarray, weights: np.ndarray | None = None) -> None:
        ok = sid >= 0
        w = None if weights is None else np.asarray(weights, dtype=np.float64)[ok]
        inc = np.bincount(sid[ok], weights=w, minlength=len(self.labels))
        self.counters[counter][: len(inc)] += inc

    def observe(self, hist: str, sid: np.ndarray, values: np.ndarray, trace_ids: pa.Array | None = None,
                span_ids: pa.Array | None = None, t_ms: np.ndarray | None = None) -> None:
        """Add ``values`` (seconds) to histogram ``hist``; remember exemplar candidates: the
        first and the slowest row of each series in this batch."""
        h = self.hists[hist]
        ok = sid >= 0
        s, v = sid[ok], np.asarray(values, dtype=np.float64)[ok]
        if not len(s):
            return
        nb = h.buckets.shape[1]
        b = np.searchsorted(h.bounds, v, side="left")  # first bound >= v: the ``le`` bucket
        n = len(self.labels)
        h.buckets[:n] += np.bincount(s * nb + b, minlength=n * nb)[: n * nb].reshape(n, nb)
        h.sums[:n] += np.bincount(s, weights=v, minlength=n)
        if trace_ids is None or span_ids is None or t_ms is None:
            return
        rows = np.flatnonzero(ok)
        _, first = np.unique(s, return_index=True)
        order = np.lexsort((-v, s))  # by series, slowest first
        _, slow = np.unique(s[order], return_index=True)
        pick = np.unique(np.concatenate([rows[first], rows[order[slow]]]))
        tids = trace_ids.take(pa.array(pick)).to_pylist()
        spids = span_ids.take(pa.array(pick)).to_pylist()
        vals = np.asarray(values, dtype=np.float64)[pick].tolist()
        ts = np.asarray(t_ms)[pick].tolist()
        for i, series in enumerate(sid[pick].tolist()):  # at most two per series per batch
            h.candidates[series].append((tids[i], spids[i], vals[i], ts[i]))

    def add_exemplar_candidates(self, hist: str, series: Sequence[int],
                                candidates: Sequence[tuple[bytes, bytes, float, int]]) -> None:
        h = self.hists[hist]
        for s, c in zip(series, candidates, strict=True):
            if s >= 0:
                h.candidates[s].append(c)

    def _decide_exemplars(self, h: _Histogram, kept: KeptFn) -> None:
        for s, cands in enumerate(h.candidates):
            if not cands:
                continue
            undecided = []
            for c in cands:
                verdict = kept(c[0])
                if verdict is True:
                    h.pending[s] = Exemplar(c[0], c[1], c[2], c[3])  # the latest kept wins
                elif verdict is None:
                    undecided.append(c)
            cands.clear()
            cands.extend(undecided)

    def collect(self, kept: KeptFn, external: dict[str, str]) -> list[SeriesSample]:
        """Every series' cumulative value now; an exemplar on a histogram bucket only when a
        candidate's trace was kept since the last collection (each exemplar is sent once).
        Series created since the last collection are marked ``new`` (see SeriesSample)."""
        out: list[SeriesSample] = []
        names = self.label_names
        base = []
        for labels in self.labels:
            d = dict(external)
            d.update({k: v for k, v in zip(names, labels, strict=True) if v != ""})
            base.append(d)
        for cname, arr in self.counters.items():
            vals = arr[: len(self.labels)].tolist()
            for s, (d, v) in enumerate(zip(base, vals, strict=True)):
                out.append(SeriesSample({**d, "__name__": cname}, v, new=s >= self._collected))
        for h in self.hists.values():
            self._decide_exemplars(h, kept)
            n = len(self.labels)
            cum = np.cumsum(h.buckets[:n], axis=1).tolist()
            sums = h.sums[:n].tolist()
            les = [format_le(b) for b in h.bounds] + ["+Inf"]
            for s, d in enumerate(base):
                ex = h.pending.pop(s, None)
                ex_bucket = int(np.searchsorted(h.bounds, ex.value, side="left")) if ex else -1
                new = s >= self._collected
                for i, le in enumerate(les):
                    out.append(SeriesSample({**d, "__name__": f"{h.name}_bucket", "le": le}, float(cum[s][i]),
                                            ex if i == ex_bucket else None, new))
                out.append(SeriesSample({**d, "__name__": f"{h.name}_sum"}, sums[s], new=new))
                out.append(SeriesSample({**d, "__name__": f"{h.name}_count"}, float(cum[s][-1]), new=new))
        self._collected = len(self.labels)
        return out


def end_ms(table: pa.Table) -> np.ndarray:
    """Span end time in ms: the exemplar's timestamp."""
    start = table.column("start_time_unix_nano").to_numpy()
    dur = table.column("duration_nano").to_numpy()
    return (start + dur) // 1_000_000


def parse_buckets(raw: object, path: str, problems: list[str], default: list[float]) -> list[float]:
    """A non-empty, strictly increasing list of finite numbers (seconds)."""
    if raw is None:
        return list(default)
    if (not isinstance(raw, list) or not raw
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw)):
        problems.append(f"{path}: expected a non-empty list of numbers (seconds), got {raw!r}")
        return list(default)
    vals = [float(x) for x in raw]
    if any(not np.isfinite(x) for x in vals) or any(b <= a for a, b in zip(vals, vals[1:], strict=False)):
        problems.append(f"{path}: bucket bounds must be finite and strictly increasing, got {raw!r}")
        return list(default)
    return vals


def parse_external_labels(raw: object, path: str, problems: list[str]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        problems.append(f"{path}: expected a mapping of label name to string value, got {raw!r}")
        return {}
    for k in raw:
        if not valid_label_name(k):
            problems.append(f'{path}.{k}: invalid label name "{k}"')
    return dict(raw)


# --------------------------------------------------------------------------------------------
# Attribute values of the span table as label strings
# --------------------------------------------------------------------------------------------

_TYPED = ("attrs_str", "attrs_int", "attrs_dbl", "attrs_bool")


def _stringify(arr: pa.Array | pa.ChunkedArray, kind: str) -> pa.ChunkedArray | pa.Array:
    """As Tempo's ``StringifyAnyValue``: ints in decimal, bools ``true``/``false``, doubles
    shortest round-trip (Arrow's cast; Go's ``'f'`` format differs only for exponents)."""
    if kind == "attrs_bool":
        return pc.if_else(arr, "true", "false")
    return arr.cast(pa.string()) if kind != "attrs_str" else arr


def attr_values(table: pa.Table, key: str, prefixes: Sequence[str] = ("res_", "")) -> tuple[pa.Array, np.ndarray]:
    """The value of attribute ``key`` per span as a string, looked up in ``prefixes`` order
    (Tempo's ``FindAttributeValue(key, resource, span)``: the resource wins); returns
    (strings with "" where absent, present mask)."""
    n = table.num_rows
    out: pa.Array | None = None
    for prefix in prefixes:
        for kind in _TYPED:
            name = prefix + kind
            if name not in table.column_names:
                continue
            col = table.column(name)
            col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            if col.null_count == n:
                continue
            vals = pc.map_lookup(col, pa.scalar(key, pa.string()), "first")
            if vals.null_count == n:
                continue
            vals = _stringify(vals, kind)
            out = vals if out is None else pc.coalesce(out, vals)
    if out is None:
        return pa.nulls(n, pa.string()).fill_null(""), np.zeros(n, dtype=bool)
    present = out.is_valid().to_numpy(zero_copy_only=False)
    return out.fill_null(""), present


def string_column(table: pa.Table, name: str) -> pa.Array:
    """A string column with nulls as "" (absent service name, status message...)."""
    col = table.column(name)
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return col.fill_null("")
