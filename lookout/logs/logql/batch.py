"""The columnar working set a pipeline runs over.

A :class:`Batch` holds one row per log entry: timestamps (numpy), the current line (Arrow string),
one Arrow string column per label name (null where the entry does not have that label), the
``__error__``/``__error_details__`` state (numpy object arrays, None = no error) and, after
``unwrap``, the sample values. Stages never loop over rows: they compute masks and columns with
pyarrow compute, numpy or DuckDB and return a new batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.logs.model import LogSelection

ERROR = "__error__"
ERROR_DETAILS = "__error_details__"
_SANITIZE = re.compile(r"[^a-zA-Z0-9_]")


def sanitize_key(key: str, first: bool = True) -> str:
    """Loki's ``sanitizeLabelKey``: non-word characters become ``_``, a leading digit gets a ``_``."""
    key = key.strip()
    if not key:
        return key
    if first and key[0].isdigit():
        key = "_" + key
    return _SANITIZE.sub("_", key)


def nulls(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


def valid(col: pa.Array) -> np.ndarray:
    return pc.is_valid(col).to_numpy(zero_copy_only=False)


def where(mask: np.ndarray, a: pa.Array | None, b: pa.Array | None, n: int) -> pa.Array:
    """Row-wise ``a if mask else b`` over string columns (None stands for an all-null column)."""
    a = nulls(n) if a is None else a
    b = nulls(n) if b is None else b
    return pc.if_else(pa.array(mask, pa.bool_()), a, b)


def scatter(n: int, rows: np.ndarray, values: pa.Array) -> pa.Array:
    """A length-``n`` column with ``values[i]`` at ``rows[i]`` (first one wins on duplicates), null elsewhere."""
    idx = np.full(n, -1, dtype=np.int64)
    pos = np.arange(len(rows), dtype=np.int64)
    idx[rows[::-1]] = pos[::-1]
    return values.take(pa.array(idx, mask=idx < 0))


@dataclass
class Batch:
    ts: np.ndarray
    line: pa.Array
    labels: dict[str, pa.Array]
    base: dict[str, np.ndarray] = field(default_factory=dict)  # rows whose label came from stream/metadata
    err: np.ndarray | None = None
    details: np.ndarray | None = None
    value: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def __post_init__(self) -> None:
        n = len(self.ts)
        if self.err is None:
            self.err = np.full(n, None, dtype=object)
        if self.details is None:
            self.details = np.full(n, None, dtype=object)

    def copy(self) -> Batch:
        return replace(self, labels=dict(self.labels), base=dict(self.base))

    def filter(self, mask: np.ndarray) -> Batch:
        if mask.all():
            return self
        m = pa.array(mask, pa.bool_())
        return Batch(
            ts=self.ts[mask],
            line=self.line.filter(m),
            labels={k: v.filter(m) for k, v in self.labels.items()},
            base={k: v[mask] for k, v in self.base.items()},
            err=self.err[mask],
            details=self.details[mask],
            value=None if self.value is None else self.value[mask],
        )

    def take(self, idx: np.ndarray) -> Batch:
        t = pa.array(idx, pa.int64())
        return Batch(
            ts=self.ts[idx],
            line=self.line.take(t),
            labels={k: v.take(t) for k, v in self.labels.items()},
            base={k: v[idx] for k, v in self.base.items()},
            err=self.err[idx],
            details=self.details[idx],
            value=None if self.value is None else self.value[idx],
        )

    # ---------------------------------------------------------------- label sources

    def get(self, name: str) -> pa.Array:
        """The label column, nulls where absent; ``__error__``/``__error_details__`` read the error state."""
        if name == ERROR:
            return pa.array(self.err, pa.string())
        if name == ERROR_DETAILS:
            return pa.array(self.details, pa.string())
        col = self.labels.get(name)
        return nulls(len(self)) if col is None else col

    def add_base(self, name: str, col: pa.Array) -> None:
        """Stream label or structured metadata: the first base source keeps the name, a later one's
        value goes to ``<name>_extracted`` (precedence stream > metadata)."""
        n = len(self)
        cv = valid(col)
        if name not in self.labels:
            self.labels[name] = col
            self.base[name] = cv
            return
        old = self.labels[name]
        ov = valid(old)
        both = ov & cv
        self.labels[name] = pc.coalesce(old, col)
        self.base[name] = self.base.get(name, ov) | cv
        if both.any():
            ext = name + "_extracted"
            self.labels[ext] = where(both, col, self.labels.get(ext), n)

    def add_parsed(self, name: str, col: pa.Array) -> None:
        """A parsed label: rows where a stream/metadata label holds the name get ``<name>_extracted``
        (parsed wins that slot), the others get the name itself."""
        n = len(self)
        cv = valid(col)
        if not cv.any():
            return
        b = self.base.get(name)
        if b is None or not b.any():
            self.labels[name] = col if name not in self.labels else where(cv, col, self.labels[name], n)
            return
        to_ext = cv & b
        to_base = cv & ~b
        if to_base.any():
            self.labels[name] = where(to_base, col, self.labels.get(name), n)
        ext = name + "_extracted"
        self.labels[ext] = where(to_ext, col, self.labels.get(ext), n)

    def set_label(self, name: str, col: pa.Array) -> None:
        self.labels[name] = col
        self.base.pop(name, None)

    def drop_label(self, name: str, rows: np.ndarray | None = None) -> None:
        if name in (ERROR, ERROR_DETAILS):
            target = self.err if name == ERROR else self.details
            if rows is None:
                target[:] = None
            else:
                target[rows] = None
            if name == ERROR:
                if rows is None:
                    self.details[:] = None
                else:
                    self.details[rows] = None
            return
        if name not in self.labels:
            return
        if rows is None:
            del self.labels[name]
            self.base.pop(name, None)
        else:
            self.labels[name] = where(rows, None, self.labels[name], len(self))

    def set_error(self, rows: np.ndarray, kind: str, details: np.ndarray | str | None) -> None:
        """Flag ``rows`` with an error unless they already carry one (the first failure owns it)."""
        rows = rows & np.equal(self.err, None)
        if not rows.any():
            return
        self.err[rows] = kind
        if details is None:
            self.details[rows] = None
        elif isinstance(details, str):
            self.details[rows] = details
        else:
            self.details[rows] = details[rows]


def from_selection(sel: LogSelection) -> Batch:
    """Rows of a selection with stream labels and structured metadata as label columns."""
    t = sel.entries
    n = t.num_rows
    ts = t["ts"].to_numpy()
    line = t["line"].combine_chunks() if n else pa.array([], pa.string())
    b = Batch(ts=np.asarray(ts, dtype=np.int64), line=line, labels={})
    if n == 0:
        return b
    sids = np.asarray(t["stream_id"].to_numpy(), dtype=np.uint64)
    order = sorted(sel.streams)
    keys = np.array(order, dtype=np.uint64)
    pos = np.searchsorted(keys, sids)
    idx = pa.array(pos.astype(np.int64))
    names = sorted({k for lb in sel.streams.values() for k in lb})
    for name in names:
        # An empty stream label is no label (Prometheus label semantics).
        vals = pa.array([sel.streams[s].get(name) or None for s in order], pa.string())
        b.add_base(name, vals.take(idx))
    md = t["metadata"].combine_chunks()
    if md.null_count == n:
        return b
    # As list<struct<key, value>> the list kernels apply (and slices and nulls are handled for us).
    as_list = md.cast(pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())])))
    pairs = pc.list_flatten(as_list)
    if len(pairs) == 0:
        return b
    parents = pc.list_parent_indices(as_list).to_numpy(zero_copy_only=False)
    keys_arr = pairs.field("key")
    items = pairs.field("value")
    for key in sorted(pc.unique(keys_arr).to_pylist()):
        m = pc.equal(keys_arr, key).to_numpy(zero_copy_only=False)
        col = scatter(n, parents[m], items.filter(pa.array(m)))
        b.add_base(key, col)
    return b


def series_ids(b: Batch, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-row group id over the given label columns, plus the index of each group's first row."""
    n = len(b)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if not names:
        return np.zeros(n, dtype=np.int64), np.zeros(1, dtype=np.int64)
    codes = np.empty((n, len(names)), dtype=np.int64)
    for j, name in enumerate(names):
        enc = pc.dictionary_encode(b.get(name))
        if isinstance(enc, pa.ChunkedArray):
            enc = enc.combine_chunks()
        codes[:, j] = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
    _, first, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), first


def row_labels(b: Batch, row: int, names: list[str], with_error: bool = False) -> dict[str, str]:
    out = {}
    for name in names:
        v = b.labels[name][row].as_py() if name in b.labels else None
        if v is not None:
            out[name] = v
    if with_error and b.err[row] is not None:
        out[ERROR] = b.err[row]
        if b.details[row] is not None:
            out[ERROR_DETAILS] = b.details[row]
    return out
