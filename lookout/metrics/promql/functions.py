"""Instant-vector and scalar functions (``abs``, ``label_replace``, ``histogram_quantile``, ...).

Range-vector functions live in ``rangefuncs.py``; the evaluator dispatches calls here with the
already evaluated arguments. Element-wise functions are plain numpy over the (series x steps)
matrix."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from lookout.gocompat import expand
from lookout.metrics.promql import ast as A
from lookout.metrics.promql import classic
from lookout.metrics.promql.errors import execution
from lookout.metrics.promql.util import SAME_LABELSET, merge_same
from lookout.metrics.promql.values import NAME, Scalar, String, Vector

_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _elementwise(f: Callable[[np.ndarray], np.ndarray]):
    def fn(args, ctx):
        vec: Vector = args[0]
        with np.errstate(all="ignore"):
            return Vector(vec.labels, f(vec.v), vec.ok, np.ones(len(vec), bool))
    return fn


def _sgn(x):
    return np.where(np.isnan(x), np.nan, np.sign(x))


def _round(args, ctx):
    vec: Vector = args[0]
    to = args[1].v if len(args) > 1 else np.ones(vec.v.shape[1])
    with np.errstate(all="ignore"):
        inv = 1.0 / to
        # Go: math.Floor(f*toNearestInverse+0.5) / toNearestInverse
        v = np.floor(vec.v * inv[None, :] + 0.5) / inv[None, :]
    return Vector(vec.labels, v, vec.ok, np.ones(len(vec), bool))


def _clamp(args, ctx):
    vec: Vector = args[0]
    lo, hi = args[1].v[None, :], args[2].v[None, :]
    with np.errstate(invalid="ignore"):
        v = np.maximum(lo, np.minimum(hi, vec.v))
    ok = vec.ok & ~(lo > hi)
    return Vector(vec.labels, v, ok, np.ones(len(vec), bool)).compact()


def _clamp_one(is_min: bool):
    def fn(args, ctx):
        vec: Vector = args[0]
        b = args[1].v[None, :]
        with np.errstate(invalid="ignore"):
            v = np.maximum(vec.v, b) if is_min else np.minimum(vec.v, b)
        return Vector(vec.labels, v, vec.ok, np.ones(len(vec), bool))
    return fn


def _label_replace(args, ctx):
    vec: Vector = args[0]
    dst, repl, src, regex = (a.s for a in args[1:5])
    try:
        rx = re.compile(f"(?s:{_go_regex(regex)})")
    except re.error:
        raise execution(f"invalid regular expression in label_replace(): {regex}") from None
    if not _LABEL_RE.match(dst):
        raise execution(f"invalid destination label name in label_replace(): {dst}")
    labels, drop = [], vec.drop.copy()
    for i, lb in enumerate(vec.labels):
        m = rx.fullmatch(lb.get(src, ""))
        if m is None:
            labels.append(lb)
            continue
        val = expand(repl, m)
        nl = dict(lb)
        if val:
            nl[dst] = val
        else:
            nl.pop(dst, None)
        if dst == NAME:
            drop[i] = False
        labels.append(nl)
    return merge_same(Vector(labels, vec.v, vec.ok, drop), SAME_LABELSET)


def _go_regex(rx: str) -> str:
    """Translate the RE2 syntax Prometheus users write into Python's ``re``."""
    from lookout.metrics.promql.parse import re2_to_python

    return re2_to_python(rx)


def _label_join(args, ctx):
    vec: Vector = args[0]
    dst, sep = args[1].s, args[2].s
    srcs = [a.s for a in args[3:]]
    if not _LABEL_RE.match(dst):
        raise execution(f"invalid destination label name in label_join(): {dst}")
    for s in srcs:
        if not _LABEL_RE.match(s):
            raise execution(f"invalid source label name in label_join(): {s}")
    labels, drop = [], vec.drop.copy()
    for i, lb in enumerate(vec.labels):
        val = sep.join(lb.get(s, "") for s in srcs)
        nl = dict(lb)
        if val:
            nl[dst] = val
        else:
            nl.pop(dst, None)
        if dst == NAME:
            drop[i] = False
        labels.append(nl)
    return merge_same(Vector(labels, vec.v, vec.ok, drop), SAME_LABELSET)


def _sort(desc: bool, by_label: bool = False):
    def fn(args, ctx):
        vec: Vector = args[0]
        if vec.v.shape[1] != 1 or len(vec) == 0:
            return vec
        if by_label:
            names = [a.s for a in args[1:]]
            keys = [tuple(_natural_key(lb.get(n, "")) for n in names) + (tuple(sorted(lb.items())),)
                    for lb in vec.labels]
            order = sorted(range(len(vec)), key=lambda i: keys[i], reverse=desc)
            return vec.take(np.array(order, np.int64))
        v = vec.v[:, 0]
        nan = np.isnan(v)
        # NaNs always last, as Prometheus sorts them
        order = np.lexsort((-v if desc else v, nan))
        return vec.take(order)
    return fn


def _natural_key(s: str):
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|\D+", s)) or ((1, 0, ""),)


def _timestamp_fn(args, ctx):
    vec: Vector = args[0]
    return Vector(vec.labels, vec.v, vec.ok, np.ones(len(vec), bool))


def _date_fn(f: Callable[[np.ndarray], np.ndarray]):
    def fn(args, ctx):
        if not args:
            t = ctx.ts / 1000.0
            return Vector([{}], f(t)[None, :], np.ones((1, len(t)), bool), np.zeros(1, bool))
        vec: Vector = args[0]
        with np.errstate(invalid="ignore"):
            v = f(vec.v)
        return Vector(vec.labels, v, vec.ok, np.ones(len(vec), bool))
    return fn


def _dt(x: np.ndarray):
    """Seconds to datetime64 (NaN-safe), for the calendar functions."""
    with np.errstate(invalid="ignore"):
        safe = np.where(np.isfinite(x), x, 0)
    return (safe * 1000).astype(np.int64).astype("datetime64[ms]"), ~np.isfinite(x)


def _cal(kind: str):
    def f(x: np.ndarray) -> np.ndarray:
        d, bad = _dt(np.asarray(x, float))
        if kind == "year":
            r = d.astype("datetime64[Y]").astype(int) + 1970
        elif kind == "month":
            r = d.astype("datetime64[M]").astype(int) % 12 + 1
        elif kind == "day_of_month":
            r = (d.astype("datetime64[D]") - d.astype("datetime64[M]")).astype(int) + 1
        elif kind == "day_of_year":
            r = (d.astype("datetime64[D]") - d.astype("datetime64[Y]")).astype(int) + 1
        elif kind == "day_of_week":
            r = (d.astype("datetime64[D]").astype(int) + 4) % 7
        elif kind == "hour":
            r = (d.astype("datetime64[h]").astype(np.int64) % 24)
        elif kind == "minute":
            r = (d.astype("datetime64[m]").astype(np.int64) % 60)
        elif kind == "days_in_month":
            m = d.astype("datetime64[M]")
            r = ((m + 1).astype("datetime64[D]") - m.astype("datetime64[D]")).astype(int)
        else:
            raise execution(kind)
        return np.where(bad, np.nan, r.astype(float))
    return f


def _invalid_quantiles(q: np.ndarray, ctx, offset: int) -> None:
    ctx.ev.invalid_quantiles(q, offset)


def _classic_groups(vec: Vector, ctx, offset: int) -> list[classic.Group]:
    return classic.groups(vec, lambda le, name: ctx.annotate(classic.bad_bucket_warning(le, name), offset))


def _groups_vector(groups: list[classic.Group], vals: list, oks: list, steps: int) -> Vector:
    if not groups:
        return Vector.empty(steps)
    labels = [g.labels for g in groups]
    return Vector(labels, np.vstack(vals), np.vstack(oks), np.ones(len(labels), bool)).compact()


def _quantile_of(groups: list[classic.Group], q: np.ndarray, ctx, offset: int, steps: int) -> Vector:
    vals, oks = [], []
    for g in groups:
        v, ok, forced = classic.quantile(g, q)
        if forced:
            ctx.annotate(classic.with_metric_name(classic.MONOTONICITY_INFO, g.name), offset)
        vals.append(v)
        oks.append(ok)
    return _groups_vector(groups, vals, oks, steps)


def _histogram_quantile(args, ctx):
    """Classic-bucket ``histogram_quantile``: buckets grouped by labels without ``le``."""
    q = np.asarray(args[0].v, float)
    vec: Vector = args[1]
    steps = vec.v.shape[1]
    _invalid_quantiles(q, ctx, ctx.arg_offset(0))
    return _quantile_of(_classic_groups(vec, ctx, ctx.arg_offset(1)), q, ctx, ctx.arg_offset(1), steps)


def _histogram_quantiles(args, ctx):
    """``histogram_quantiles(v, "label", q1, q2, ...)``: one output series per quantile."""
    vec: Vector = args[0]
    label = args[1].s
    steps = vec.v.shape[1]
    if any(label in lb for lb in vec.labels):
        raise execution(f"label {label!r} already exists in input series")
    groups = _classic_groups(vec, ctx, ctx.arg_offset(0))
    outs = []
    for k, qa in enumerate(args[2:]):
        q = np.asarray(qa.v, float)
        _invalid_quantiles(q, ctx, ctx.arg_offset(2 + k))
        res = _quantile_of(groups, q, ctx, ctx.arg_offset(0), steps)
        qs = float(q[0])
        text = "NaN" if qs != qs else (f"{qs:.1f}" if qs == int(qs) else repr(qs))
        res = Vector([dict(lb, **{label: text}) for lb in res.labels], res.v, res.ok, res.drop)
        outs.append(res)
    outs = [o for o in outs if len(o)]
    if not outs:
        return Vector.empty(len(ctx.ts))
    return Vector([lb for o in outs for lb in o.labels], np.concatenate([o.v for o in outs]),
                  np.concatenate([o.ok for o in outs]), np.concatenate([o.drop for o in outs]))


def _histogram_fraction(args, ctx):
    """Classic-bucket ``histogram_fraction(lower, upper, buckets)``."""
    lower, upper = np.asarray(args[0].v, float), np.asarray(args[1].v, float)
    vec: Vector = args[2]
    steps = vec.v.shape[1]
    groups = _classic_groups(vec, ctx, ctx.arg_offset(2))
    vals, oks = [], []
    for g in groups:
        v, ok = classic.fraction(g, lower, upper)
        vals.append(v)
        oks.append(ok)
    return _groups_vector(groups, vals, oks, steps)


def _vector(args, ctx):
    s = args[0].v
    return Vector([{}], s[None, :].copy(), np.ones((1, len(s)), bool), np.zeros(1, bool))


def _scalar(args, ctx):
    vec: Vector = args[0]
    cnt = vec.ok.sum(axis=0)
    val = np.where(vec.ok, vec.v, 0).sum(axis=0) if len(vec) else np.zeros(vec.v.shape[1])
    return Scalar(np.where(cnt == 1, val, np.nan))


def _pi(args, ctx):
    return Scalar(np.full(len(ctx.ts), np.pi))


def _time(args, ctx):
    return Scalar(ctx.ts / 1000.0)


def _minmax_of(is_max: bool):
    def fn(args, ctx):
        vals = [a.v for a in args]
        r = vals[0]
        for x in vals[1:]:
            r = np.maximum(r, x) if is_max else np.minimum(r, x)
        return Scalar(r)
    return fn


Fn = Callable[[list, object], object]

FUNCS: dict[str, Fn] = {
    "abs": _elementwise(np.abs),
    "ceil": _elementwise(np.ceil),
    "floor": _elementwise(np.floor),
    "exp": _elementwise(np.exp),
    "sqrt": _elementwise(np.sqrt),
    "ln": _elementwise(np.log),
    "log2": _elementwise(np.log2),
    "log10": _elementwise(np.log10),
    "sgn": _elementwise(_sgn),
    "acos": _elementwise(np.arccos),
    "acosh": _elementwise(np.arccosh),
    "asin": _elementwise(np.arcsin),
    "asinh": _elementwise(np.arcsinh),
    "atan": _elementwise(np.arctan),
    "atanh": _elementwise(np.arctanh),
    "cos": _elementwise(np.cos),
    "cosh": _elementwise(np.cosh),
    "sin": _elementwise(np.sin),
    "sinh": _elementwise(np.sinh),
    "tan": _elementwise(np.tan),
    "tanh": _elementwise(np.tanh),
    "deg": _elementwise(lambda x: x * 180 / np.pi),
    "rad": _elementwise(lambda x: x * np.pi / 180),
    "round": _round,
    "clamp": _clamp,
    "clamp_min": _clamp_one(True),
    "clamp_max": _clamp_one(False),
    "label_replace": _label_replace,
    "label_join": _label_join,
    "sort": _sort(False),
    "sort_desc": _sort(True),
    "sort_by_label": _sort(False, True),
    "sort_by_label_desc": _sort(True, True),
    "timestamp": _timestamp_fn,
    "year": _date_fn(_cal("year")),
    "month": _date_fn(_cal("month")),
    "day_of_month": _date_fn(_cal("day_of_month")),
    "day_of_year": _date_fn(_cal("day_of_year")),
    "day_of_week": _date_fn(_cal("day_of_week")),
    "days_in_month": _date_fn(_cal("days_in_month")),
    "hour": _date_fn(_cal("hour")),
    "minute": _date_fn(_cal("minute")),
    "histogram_quantile": _histogram_quantile,
    "histogram_quantiles": _histogram_quantiles,
    "histogram_fraction": _histogram_fraction,
    "vector": _vector,
    "scalar": _scalar,
    "pi": _pi,
    "time": _time,
    "min_of": _minmax_of(False),
    "max_of": _minmax_of(True),
}

# Functions returning their input series unchanged keep the metric name.
KEEP_NAME = {"label_replace", "label_join", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc"}


def absent_labels(expr: A.Expr) -> dict[str, str]:
    """The labels ``absent()`` / ``absent_over_time()`` give their output: the equality matchers
    of a lone selector argument (a label matched twice is left out)."""
    expr = A.unparen(expr)
    if isinstance(expr, A.MatrixSel):
        expr = expr.vs
    if isinstance(expr, A.Subquery):
        return {}
    if not isinstance(expr, A.VectorSel):
        return {}
    out: dict[str, str] = {}
    seen: set[str] = set()
    for m in expr.matchers:
        if m.name == NAME:
            continue
        if m.op == "=" and m.name not in seen:
            out[m.name] = m.value
        else:
            out.pop(m.name, None)
        seen.add(m.name)
    return out


def utc_now() -> datetime:
    return datetime.now(UTC)


__all__ = ["FUNCS", "KEEP_NAME", "absent_labels", "String"]
