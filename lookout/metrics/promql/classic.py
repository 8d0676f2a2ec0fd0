"""Classic (``le``-bucket) histograms: ``histogram_quantile``, ``histogram_quantiles`` and
``histogram_fraction`` over float bucket series, as Prometheus 3's ``BucketQuantile`` /
``BucketFraction`` compute them.

Bucket series are grouped once by their labels without ``le``. Within a group the buckets form a
``(buckets, steps)`` matrix with a presence mask; every rule (coalescing equal bounds, the
monotonicity fix, the bucket search and the interpolation) is array math over all steps at once,
looping only over the (few) buckets of a group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookout.metrics.promql.util import group_ids
from lookout.metrics.promql.values import NAME, Vector

SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = 2.2250738585072014e-308

MONOTONICITY_INFO = ("PromQL info: input to histogram_quantile needed to be fixed for monotonicity "
                     "(see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)")


def with_metric_name(msg: str, name: str) -> str:
    """Prometheus' ``maybeAddMetricName``."""
    return f'{msg} for metric name "{name}"' if name else msg


def bad_bucket_warning(le: str, name: str) -> str:
    return with_metric_name(
        f'PromQL warning: bucket label "le" is missing or has a malformed value of "{le}"', name)


def go_g(x: float) -> str:
    """Go's ``%g`` for a float64 (shortest representation)."""
    if x != x:
        return "NaN"
    if x in (np.inf, -np.inf):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "0"
    mant, exp = np.format_float_scientific(x, unique=True, trim="-").split("e")
    e = int(exp)
    if e < -4 or e >= 21:
        return f"{mant}e{'-' if e < 0 else '+'}{abs(e):02d}"
    return np.format_float_positional(x, unique=True, trim="-")


@dataclass(slots=True)
class Group:
    """One classic histogram: sorted distinct bounds, and per bucket and step the (coalesced)
    cumulative count and whether any bucket series with that bound was present."""

    labels: dict[str, str]
    name: str
    bounds: np.ndarray  # (B,)
    counts: np.ndarray  # (B, S)
    present: np.ndarray  # (B, S)


def groups(vec: Vector, warn) -> list[Group]:
    """Group the bucket series of ``vec`` (labels without ``le``); series with a missing or
    malformed ``le`` are left out, each reported through ``warn(le, metric_name)``."""
    les, keys, rows = [], [], []
    for i, lb in enumerate(vec.labels):
        le = lb.get("le", "")
        try:
            b = float(le.strip())
        except ValueError:
            if vec.ok[i].any():
                warn(le, lb.get(NAME, ""))
            continue
        les.append(b)
        keys.append(tuple(sorted((k, v) for k, v in lb.items() if k != "le")))
        rows.append(i)
    if not rows:
        return []
    gid, uniq = group_ids(keys)
    rows_a, les_a = np.array(rows), np.array(les)
    out = []
    order = np.argsort(gid, kind="stable")
    starts = np.searchsorted(gid[order], np.arange(len(uniq)), "left")
    ends = np.searchsorted(gid[order], np.arange(len(uniq)), "right")
    for g, key in enumerate(uniq):
        members = order[starts[g]:ends[g]]
        ub, inv = np.unique(les_a[members], return_inverse=True)
        r = rows_a[members]
        counts = np.zeros((len(ub), vec.v.shape[1]))
        present = np.zeros((len(ub), vec.v.shape[1]), bool)
        np.add.at(counts, inv, np.where(vec.ok[r], vec.v[r], 0.0))
        np.logical_or.at(present, inv, vec.ok[r])
        labels = dict(key)
        out.append(Group(labels, labels.get(NAME, ""), ub, counts, present))
    return out


def _almost_equal(a: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """Prometheus' ``almost.Equal``."""
    with np.errstate(invalid="ignore", over="ignore"):
        both_nan = np.isnan(a) & np.isnan(b)
        abs_sum = np.abs(a) + np.abs(b)
        diff = np.abs(a - b)
        tiny = (a == 0) | (b == 0) | (abs_sum < _MIN_NORMAL)
        rel = diff / np.minimum(abs_sum, np.finfo(float).max)
        return both_nan | (a == b) | np.where(tiny, diff < eps * _MIN_NORMAL, rel < eps)


def _fix_monotonic(g: Group) -> tuple[np.ndarray, np.ndarray]:
    """``ensureMonotonicAndIgnoreSmallDeltas`` over the present buckets of every step: returns
    the corrected counts and, per step, whether monotonicity had to be forced."""
    c = g.counts.copy()
    steps = c.shape[1]
    prev = np.zeros(steps)
    started = np.zeros(steps, bool)
    forced = np.zeros(steps, bool)
    with np.errstate(invalid="ignore"):
        for i in range(c.shape[0]):
            m = g.present[i]
            cur = c[i]
            first = m & ~started
            later = m & started
            same = later & (cur == prev)
            small = later & ~same & _almost_equal(prev, cur, SMALL_DELTA_TOLERANCE)
            dec = later & ~same & ~small & (cur < prev)
            fix = small | dec
            c[i] = np.where(fix, prev, cur)
            forced |= dec
            prev = np.where(first | (later & ~fix), cur, prev)
            started |= m
    return c, forced


def _previous_present(present: np.ndarray) -> np.ndarray:
    """Per bucket and step, the index of the closest lower present bucket (-1 if none)."""
    idx = np.where(present, np.arange(present.shape[0])[:, None], -1)
    incl = np.maximum.accumulate(idx, axis=0)
    prev = np.full_like(incl, -1)
    prev[1:] = incl[:-1]
    return prev


def quantile(g: Group, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """``BucketQuantile`` at every step: (values, presence, monotonicity was forced)."""
    steps = g.counts.shape[1]
    ok = g.present.any(axis=0)
    res = np.full(steps, np.nan)
    usable = ok & ~np.isnan(q) & (q >= 0) & (q <= 1) & g.present[-1] & (g.bounds[-1] == np.inf)
    res = np.where(ok & (q < 0), -np.inf, np.where(ok & (q > 1), np.inf, res))
    if not usable.any() or len(g.bounds) < 2:
        return res, ok, False
    c, forced = _fix_monotonic(g)
    prev = _previous_present(g.present)
    cols = np.arange(steps)
    last = g.bounds.shape[0] - 1
    usable &= g.present.sum(axis=0) >= 2
    obs = c[last]
    with np.errstate(invalid="ignore"):
        usable &= obs != 0
        rank = q * obs
        hit = g.present[:-1] & (c[:-1] >= rank[None, :])
    found = hit.any(axis=0)
    b = np.where(found, hit.argmax(axis=0), last)
    pb = prev[b, cols]
    first_present = pb < 0
    bound_b = g.bounds[b]
    prev_bound = np.where(first_present, 0.0, g.bounds[np.maximum(pb, 0)])
    prev_count = np.where(first_present, 0.0, c[np.maximum(pb, 0), cols])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        interp = prev_bound + (bound_b - prev_bound) * ((rank - prev_count) / (c[b, cols] - prev_count))
    second_highest = g.bounds[np.maximum(prev[last], 0)]
    val = np.where(~found, second_highest, np.where(first_present & (bound_b <= 0), bound_b, interp))
    res = np.where(usable, val, res)
    return res, ok, bool((forced & usable).any())


def fraction(g: Group, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``BucketFraction`` at every step. The lowest bucket starts at 0 if its bound is positive
    (else at -Inf); within a bucket of infinite width no interpolation happens: its observations
    count as lying at the infinite end."""
    steps = g.counts.shape[1]
    ok = g.present.any(axis=0)
    c, _ = _fix_monotonic(g)
    prev = _previous_present(g.present)
    last = g.bounds.shape[0] - 1
    cols = np.arange(steps)
    total = c[last]
    valid = ok & g.present[-1] & (g.bounds[-1] == np.inf)
    pc = np.maximum(prev, 0)
    first = prev < 0
    up = np.broadcast_to(g.bounds[:, None], c.shape)
    lo = np.where(first, np.where(up > 0, 0.0, -np.inf), g.bounds[pc])
    rank = np.where(first, 0.0, c[pc, cols[None, :]])
    cnt = c - rank

    def rank_at(v: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            reach = g.present & ((lo >= v[None, :]) | (up > v[None, :]))
            found = reach.any(axis=0)
            i = reach.argmax(axis=0)
            lo_i, up_i, rank_i, cnt_i = lo[i, cols], up[i, cols], rank[i, cols], cnt[i, cols]
            frac = np.where(np.isneginf(lo_i), 1.0, np.where(np.isposinf(up_i), 0.0, (v - lo_i) / (up_i - lo_i)))
            r = np.where(lo_i >= v, rank_i, rank_i + cnt_i * frac)
            r = np.where(found, r, total)
            return np.where(r > total, total, r)

    with np.errstate(invalid="ignore", divide="ignore"):
        res = (rank_at(upper) - rank_at(lower)) / total
        res = np.where(lower >= upper, 0.0, res)
        res = np.where((total == 0) | np.isnan(lower) | np.isnan(upper) | ~valid, np.nan, res)
    return res, ok
