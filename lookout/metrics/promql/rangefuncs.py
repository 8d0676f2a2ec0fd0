"""Functions over range vectors (``rate``, ``*_over_time``, ``deriv``, ...).

For each series the windows of all steps are gathered at once into a padded ``(steps, L)``
matrix (``L`` = the largest window), with a mask for the valid entries, which always come first
in a row. Each function is then array math over that matrix; the only Python loops are over
series and, for the order-dependent Kahan/smoothing recurrences, over window positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lookout.metrics.promql.errors import execution
from lookout.metrics.promql.kahan import kahan_inc, kahan_mean, kahan_sum


@dataclass(slots=True)
class Win:
    t: np.ndarray  # (S, L) int64 sample times
    v: np.ndarray  # (S, L) float64 sample values
    m: np.ndarray  # (S, L) valid mask, valid entries first
    n: np.ndarray  # (S,) number of samples per window
    ends: np.ndarray  # (S,) window end (eval time - offset)
    range_ms: int
    ts: np.ndarray  # (S,) the step times


def gather(t: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    n = hi - lo
    width = int(n.max()) if n.size else 0
    pos = np.arange(max(width, 1))
    m = pos[None, :] < n[:, None]
    if len(t) == 0:
        return np.zeros(m.shape, np.int64), np.zeros(m.shape), m & False, n
    idx = np.minimum(lo[:, None] + pos[None, :], len(t) - 1)
    return t[idx], v[idx], m, n


def _last(w: Win, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The k-th from last sample time and value of each window (clipped)."""
    rows = np.arange(len(w.n))
    j = np.maximum(w.n - k, 0)
    return w.t[rows, j], w.v[rows, j]


def _rate(w: Win, counter: bool, is_rate: bool):
    ok = w.n >= 2
    first_t, first_v = w.t[:, 0], w.v[:, 0]
    last_t, last_v = _last(w)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        result = last_v - first_v
        if counter and w.v.shape[1] > 1:
            prev, cur = w.v[:, :-1], w.v[:, 1:]
            drops = (cur < prev) & w.m[:, 1:]
            result = result + np.where(drops, prev, 0.0).sum(axis=1)
        range_start = w.ends - w.range_ms
        to_start = (first_t - range_start) / 1000.0
        to_end = (w.ends - last_t) / 1000.0
        sampled = (last_t - first_t) / 1000.0
        avg_dur = sampled / np.maximum(w.n - 1, 1)
        threshold = avg_dur * 1.1
        to_start = np.where(to_start >= threshold, avg_dur / 2, to_start)
        if counter:
            to_zero = np.where((result > 0) & (first_v >= 0), sampled * (first_v / result), to_start)
            to_start = np.minimum(to_start, to_zero)
        to_end = np.where(to_end >= threshold, avg_dur / 2, to_end)
        factor = (sampled + to_start + to_end) / sampled
        if is_rate:
            factor = factor / (w.range_ms / 1000.0)
        return result * factor, ok


def _instant_rate(w: Win, is_rate: bool):
    ok = w.n >= 2
    t1, v1 = _last(w, 1)
    t0, v0 = _last(w, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        if is_rate:
            d = np.where(v1 < v0, v1, v1 - v0)
            return d / ((t1 - t0) / 1000.0), ok
        return v1 - v0, ok


def _regression(w: Win, intercept_t: np.ndarray):
    """Prometheus' ``linearRegression`` (Kahan sums, constant-series shortcut) per window."""
    x = (w.t - intercept_t[:, None]) / 1000.0
    y = w.v
    m = w.m
    nf = w.n.astype(float)
    sx = kahan_sum(x, m)
    sy = kahan_sum(y, m)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        sxy = kahan_sum(x * y, m)
        sx2 = kahan_sum(x * x, m)
        init = y[:, 0]
        const = np.all((y == init[:, None]) | ~m, axis=1)
        cov = sxy - sx * sy / nf
        var = sx2 - sx * sx / nf
        slope = cov / var
        icpt = sy / nf - slope * sx / nf
    slope = np.where(const, np.where(np.isinf(init), np.nan, 0.0), slope)
    icpt = np.where(const, np.where(np.isinf(init), np.nan, init), icpt)
    return slope, icpt


def _sorted_rows(w: Win) -> np.ndarray:
    """Window values sorted ascending per row with NaNs first (Go's sort order) and padding last."""
    primary = np.where(w.m, np.where(np.isnan(w.v), 0, 1), 2)
    order = np.lexsort((np.where(np.isnan(w.v), 0.0, w.v), primary), axis=-1)
    return np.take_along_axis(w.v, order, axis=1)


def quantile_rows(q: np.ndarray, srt: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Prometheus' ``quantile`` over pre-sorted rows of length ``n`` (q may differ per row)."""
    rows = np.arange(len(n))
    nf = n.astype(float)
    with np.errstate(invalid="ignore"):
        rank = q * (nf - 1)
        lower = np.maximum(0, np.floor(rank))
        upper = np.minimum(nf - 1, lower + 1)
        weight = rank - np.floor(rank)
        li = np.clip(np.nan_to_num(lower), 0, max(srt.shape[1] - 1, 0)).astype(np.int64)
        ui = np.clip(np.nan_to_num(upper), 0, max(srt.shape[1] - 1, 0)).astype(np.int64)
        res = srt[rows, li] * (1 - weight) + srt[rows, ui] * weight
    res = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, res))
    return np.where(np.isnan(q) | (n == 0), np.nan, res)


def _minmax(w: Win, is_max: bool):
    vals = np.where(w.m & ~np.isnan(w.v), w.v, -np.inf if is_max else np.inf)
    r = vals.max(axis=1) if is_max else vals.min(axis=1)
    all_nan = ~(w.m & ~np.isnan(w.v)).any(axis=1)
    return np.where(all_nan, np.nan, r), w.n > 0


def _ts_of_minmax(w: Win, is_max: bool):
    vals = np.where(w.m & ~np.isnan(w.v), w.v, -np.inf if is_max else np.inf)
    target = vals.max(axis=1) if is_max else vals.min(axis=1)
    hit = (vals == target[:, None]) & w.m & ~np.isnan(w.v)
    # the last sample that attains the extreme value
    rev = hit[:, ::-1]
    j = w.m.shape[1] - 1 - np.argmax(rev, axis=1)
    all_nan = ~hit.any(axis=1)
    j = np.where(all_nan, np.maximum(w.n - 1, 0), j)
    return w.t[np.arange(len(j)), j] / 1000.0, w.n > 0


def _stdvar(w: Win):
    count = np.zeros(len(w.n))
    mean = np.zeros(len(w.n))
    cmean = np.zeros(len(w.n))
    aux = np.zeros(len(w.n))
    caux = np.zeros(len(w.n))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for j in range(w.v.shape[1]):
            m = w.m[:, j]
            f = w.v[:, j]
            count = np.where(m, count + 1, count)
            delta = f - (mean + cmean)
            mean, cmean = kahan_inc(delta / np.where(m, count, 1), mean, cmean, m)
            aux, caux = kahan_inc(delta * (f - (mean + cmean)), aux, caux, m)
        return (aux + caux) / count, w.n > 0


def _changes(w: Win, resets: bool):
    if w.v.shape[1] < 2:
        return np.zeros(len(w.n)), w.n > 0
    prev, cur = w.v[:, :-1], w.v[:, 1:]
    valid = w.m[:, 1:]
    if resets:
        hit = cur < prev
    else:
        hit = ~((cur == prev) | (np.isnan(cur) & np.isnan(prev)))
    return (hit & valid).sum(axis=1).astype(float), w.n > 0


def _smoothing(w: Win, sf: np.ndarray, tf: np.ndarray):
    if np.any((sf <= 0) | (sf >= 1)):
        bad = sf[(sf <= 0) | (sf >= 1)][0]
        raise execution(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {bad:f}")
    if np.any((tf <= 0) | (tf >= 1)):
        bad = tf[(tf <= 0) | (tf >= 1)][0]
        raise execution(f"invalid trend factor. Expected: 0 < tf < 1, got: {bad:f}")
    ok = w.n >= 2
    if w.v.shape[1] < 2:
        return np.zeros(len(w.n)), ok
    s0 = np.zeros(len(w.n))
    s1 = w.v[:, 0].copy()
    b = w.v[:, 1] - w.v[:, 0]
    with np.errstate(invalid="ignore", over="ignore"):
        for i in range(1, w.v.shape[1]):
            m = w.m[:, i]
            x = sf * w.v[:, i]
            nb = b if i == 1 else tf * (s1 - s0) + (1 - tf) * b
            y = (1 - sf) * (s1 + nb)
            b = np.where(m, nb, b)
            s0, s1 = np.where(m, s1, s0), np.where(m, x + y, s1)
    return s1, ok


def _mad(w: Win):
    srt = _sorted_rows(w)
    med = quantile_rows(np.full(len(w.n), 0.5), srt, w.n)
    dev = np.abs(w.v - med[:, None])
    w2 = Win(w.t, dev, w.m, w.n, w.ends, w.range_ms, w.ts)
    res = quantile_rows(np.full(len(w.n), 0.5), _sorted_rows(w2), w.n)
    return np.where((np.isnan(w.v) & w.m).any(axis=1), np.nan, res), w.n > 0


def _scalar_arg(args, k: int, steps: int) -> np.ndarray:
    return np.broadcast_to(args[k], (steps,)) if args[k] is not None else np.zeros(steps)


RangeFn = Callable[[Win, list], tuple[np.ndarray, np.ndarray]]

RANGE_FUNCS: dict[str, RangeFn] = {
    "rate": lambda w, a: _rate(w, True, True),
    "increase": lambda w, a: _rate(w, True, False),
    "delta": lambda w, a: _rate(w, False, False),
    "irate": lambda w, a: _instant_rate(w, True),
    "idelta": lambda w, a: _instant_rate(w, False),
    "sum_over_time": lambda w, a: (kahan_sum(w.v, w.m), w.n > 0),
    "count_over_time": lambda w, a: (w.n.astype(float), w.n > 0),
    "avg_over_time": lambda w, a: (kahan_mean(w.v, w.m), w.n > 0),
    "min_over_time": lambda w, a: _minmax(w, False),
    "max_over_time": lambda w, a: _minmax(w, True),
    "last_over_time": lambda w, a: (_last(w)[1], w.n > 0),
    "first_over_time": lambda w, a: (w.v[:, 0], w.n > 0),
    "ts_of_last_over_time": lambda w, a: (_last(w)[0] / 1000.0, w.n > 0),
    "ts_of_first_over_time": lambda w, a: (w.t[:, 0] / 1000.0, w.n > 0),
    "ts_of_max_over_time": lambda w, a: _ts_of_minmax(w, True),
    "ts_of_min_over_time": lambda w, a: _ts_of_minmax(w, False),
    "present_over_time": lambda w, a: (np.ones(len(w.n)), w.n > 0),
    "stdvar_over_time": lambda w, a: _stdvar(w),
    "stddev_over_time": lambda w, a: (np.sqrt(_stdvar(w)[0]), w.n > 0),
    "changes": lambda w, a: _changes(w, False),
    "resets": lambda w, a: _changes(w, True),
    "deriv": lambda w, a: (_regression(w, w.t[:, 0])[0], w.n >= 2),
    "mad_over_time": lambda w, a: _mad(w),
}


def predict_linear(w: Win, args) -> tuple[np.ndarray, np.ndarray]:
    slope, icpt = _regression(w, w.ts)
    with np.errstate(invalid="ignore", over="ignore"):
        return icpt + slope * _scalar_arg(args, 1, len(w.n)), w.n >= 2


def quantile_over_time(w: Win, args) -> tuple[np.ndarray, np.ndarray]:
    q = _scalar_arg(args, 0, len(w.n))
    return quantile_rows(np.asarray(q, float), _sorted_rows(w), w.n), w.n > 0


def double_exponential_smoothing(w: Win, args) -> tuple[np.ndarray, np.ndarray]:
    return _smoothing(w, _scalar_arg(args, 1, len(w.n)), _scalar_arg(args, 2, len(w.n)))


RANGE_FUNCS["predict_linear"] = predict_linear
RANGE_FUNCS["quantile_over_time"] = quantile_over_time
RANGE_FUNCS["double_exponential_smoothing"] = double_exponential_smoothing

# Which argument of each range function is the range vector (the others are scalars).
RANGE_ARG = {name: 0 for name in RANGE_FUNCS}
RANGE_ARG["quantile_over_time"] = 1

# Range functions that keep the metric name (they return a sample of the input unchanged).
KEEPS_NAME = {"last_over_time", "first_over_time"}
