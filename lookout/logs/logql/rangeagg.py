"""Range aggregations (``count_over_time``, ``rate``, ``*_over_time``, ``rate_counter``, ...).

Rows are grouped into series once (label columns → group ids), sorted by (series, ts), and every
step's window ``(T - R, T]`` is found with ``np.searchsorted`` per series. Counts, byte sums and
plain sums/min/max/first/last come from prefix sums and ``ufunc.reduceat`` over all windows at
once; only stddev/stdvar/quantile/rate_counter look at each window's slice (a loop over windows,
never over entries).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow.compute as pc

from . import ast
from .batch import ERROR, Batch, row_labels, series_ids
from .errors import LimitError, PipelineError
from .series import Matrix, series_string

NS = 1e9


def check_errors(b: Batch) -> None:
    """Loki fails a metric query whose samples still carry ``__error__``."""
    bad = ~np.equal(b.err, None)
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        labels = row_labels(b, i, sorted(b.labels), with_error=True)
        raise PipelineError(str(b.err[i]), series_string(labels))


def grouping_names(b: Batch, grouping: ast.Grouping | None) -> list[str]:
    names = sorted(n for n in b.labels if n != ERROR)
    if grouping is None:
        return names
    if grouping.without:
        drop = set(grouping.labels)
        return [n for n in names if n not in drop]
    return sorted(set(grouping.labels))


def _prom_quantile(q: float, vals: np.ndarray) -> float:
    if len(vals) == 0 or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    v = np.sort(vals)
    n = len(v)
    rank = q * (n - 1)
    lo = max(0, math.floor(rank))
    hi = min(n - 1, lo + 1)
    w = rank - math.floor(rank)
    return float(v[lo] * (1 - w) + v[hi] * w)


def _stdvar(vals: np.ndarray) -> float:
    # Shifting by the first value keeps a constant window at exactly 0, as Prometheus' Welford does.
    d = vals - vals[0]
    return float(np.mean(d * d) - np.mean(d) ** 2) if len(d) > 1 else 0.0


def _counter_rate(ts: np.ndarray, vals: np.ndarray, start: float, end: float, rng: float) -> float:
    """Prometheus ``extrapolatedRate`` for a counter (times in seconds); one sample gives 0."""
    n = len(vals)
    if n < 2:
        return 0.0
    d = np.diff(vals)
    result = float(vals[-1] - vals[0] + vals[:-1][d < 0].sum())
    to_start = ts[0] - start
    to_end = end - ts[-1]
    sampled = ts[-1] - ts[0]
    if sampled == 0:
        return 0.0
    avg = sampled / (n - 1)
    threshold = avg * 1.1
    if to_start >= threshold:
        to_start = avg / 2
    if result > 0 and vals[0] >= 0:
        to_zero = sampled * (vals[0] / result)
        if to_zero < to_start:
            to_start = to_zero
    if to_end >= threshold:
        to_end = avg / 2
    factor = (sampled + to_start + to_end) / sampled / rng
    return result * factor


# Cap on the (series x steps) cells of one range aggregation before vector aggregation reduces them.
MAX_CELLS = 20_000_000


def _count_like(gid: np.ndarray, ts: np.ndarray, weights: np.ndarray | None, steps: np.ndarray, rng: int,
                off: int, ngroups: int) -> tuple[np.ndarray, np.ndarray]:
    """Window counts (or integer weight sums) for every series and step at once.

    An entry at ``t`` lies in the window of every step ``T`` with ``t + off <= T < t + off + rng``: a contiguous
    run of step indices, added to a difference array and summed along the steps."""
    nsteps = len(steps)
    start = int(steps[0])
    step = int(steps[1] - steps[0]) if nsteps > 1 else 1
    first_t = ts + off
    k_lo = np.maximum(-((start - first_t) // step), 0)  # ceil((first_t - start) / step)
    k_hi = np.minimum((first_t + rng - 1 - start) // step, nsteps - 1)
    ok = k_lo <= k_hi
    w = np.ones(len(ts)) if weights is None else weights
    diff = np.zeros((ngroups, nsteps + 1))
    cnt = np.zeros((ngroups, nsteps + 1), dtype=np.int64)
    np.add.at(diff, (gid[ok], k_lo[ok]), w[ok])
    np.add.at(diff, (gid[ok], k_hi[ok] + 1), -w[ok])
    np.add.at(cnt, (gid[ok], k_lo[ok]), 1)
    np.add.at(cnt, (gid[ok], k_hi[ok] + 1), -1)
    return np.cumsum(diff, axis=1)[:, :nsteps], np.cumsum(cnt, axis=1)[:, :nsteps] > 0


def evaluate(b: Batch, agg: ast.RangeAgg, steps: np.ndarray, max_series: int,
             matchers_eq: dict[str, str]) -> Matrix:
    """Evaluate one range aggregation over a pipeline's output ``b`` at every step."""
    op = agg.op
    rng = agg.range.range_ns
    off = agg.range.offset_ns
    nsteps = len(steps)
    ends = steps - off
    starts = ends - rng
    if op == "absent_over_time":
        ts = np.sort(b.ts)
        cnt = np.searchsorted(ts, ends, "right") - np.searchsorted(ts, starts, "right")
        absent = cnt == 0
        if not absent.any():
            return Matrix.empty(nsteps)
        return Matrix([dict(matchers_eq)], np.ones((1, nsteps)), absent[None, :])
    check_errors(b)
    names = grouping_names(b, agg.grouping)
    gid, first = series_ids(b, names)
    ngroups = len(first)
    if ngroups * nsteps > MAX_CELLS:
        raise LimitError(f"maximum of series ({max_series}) reached for a single query; consider reducing query "
                         "cardinality by adding more filters or using keep / drop")
    labels = [row_labels(b, int(r), names) for r in first]
    rng_s = rng / NS
    if op in ("count_over_time", "rate", "bytes_over_time", "bytes_rate") and b.value is None:
        weights = None
        if op.startswith("bytes"):
            lens = pc.binary_length(pc.cast(b.line, "binary")).to_numpy(zero_copy_only=False)
            weights = np.asarray(lens, dtype=np.float64)
        v, has = _count_like(gid, b.ts, weights, steps, rng, off, ngroups)
        if op in ("rate", "bytes_rate"):
            v = v / rng_s
        return Matrix(labels, np.where(has, v, 0.0), has).compact()
    order = np.lexsort((b.ts, gid))
    gid_s = gid[order]
    ts_s = b.ts[order]
    bounds = np.searchsorted(gid_s, np.arange(ngroups + 1))
    values = np.zeros((ngroups, nsteps))
    present = np.zeros((ngroups, nsteps), dtype=bool)
    vals_s = b.value[order] if b.value is not None else np.zeros(len(order))
    for g in range(ngroups):
        a, z = bounds[g], bounds[g + 1]
        t = ts_s[a:z]
        lo = np.searchsorted(t, starts, "right")
        hi = np.searchsorted(t, ends, "right")
        has = hi > lo
        v = _window_values(op, vals_s[a:z], t, lo, hi, has, agg.param, starts, ends, rng_s)
        values[g] = np.where(has, v, 0.0)
        present[g] = has
    return Matrix(labels, values, present).compact()


def _window_values(op: str, x: np.ndarray, t: np.ndarray, lo: np.ndarray, hi: np.ndarray, has: np.ndarray,
                   param: float | None, starts: np.ndarray, ends: np.ndarray, rng_s: float) -> np.ndarray:
    """Per-window statistics of unwrapped values ``x`` (sorted by time ``t``)."""
    nst = len(lo)
    out = np.full(nst, np.nan)
    if not has.any():
        return out
    if op in ("sum_over_time", "avg_over_time", "min_over_time", "max_over_time", "rate"):
        ufunc = {"min_over_time": np.fmin, "max_over_time": np.fmax}.get(op, np.add)
        xp = np.append(x, 0.0)
        idx = np.empty(2 * nst, dtype=np.int64)
        idx[0::2] = np.where(has, lo, 0)
        idx[1::2] = np.where(has, hi, 0)
        with np.errstate(invalid="ignore"):
            red = ufunc.reduceat(xp, idx)[0::2]
        if op == "avg_over_time":
            with np.errstate(invalid="ignore", divide="ignore"):
                red = red / np.maximum(hi - lo, 1)
        elif op == "rate":
            red = red / rng_s
        return np.where(has, red, np.nan)
    if op == "first_over_time":
        return np.where(has, x[np.minimum(lo, len(x) - 1)], np.nan)
    if op == "last_over_time":
        return np.where(has, x[np.maximum(hi - 1, 0)], np.nan)
    for k in np.nonzero(has)[0]:
        w = x[lo[k]:hi[k]]
        if op == "stdvar_over_time":
            out[k] = _stdvar(w)
        elif op == "stddev_over_time":
            out[k] = math.sqrt(_stdvar(w)) if not math.isnan(_stdvar(w)) else math.nan
        elif op == "quantile_over_time":
            out[k] = _prom_quantile(param if param is not None else math.nan, w)
        elif op == "rate_counter":
            out[k] = _counter_rate(t[lo[k]:hi[k]] / NS, w, starts[k] / NS, ends[k] / NS, rng_s)
        else:
            raise ValueError(op)
    return out
