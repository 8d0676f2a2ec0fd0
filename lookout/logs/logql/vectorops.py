"""Vector aggregations, binary operators and ``label_replace`` over step matrices.

Aggregations group series once by their label signature, then reduce each group across all steps
with numpy (``sum``/``count``/``avg``/``min``/``max``); ``stddev``/``stdvar``/``topk``/``bottomk``
go step by step. Binary operators follow Prometheus' vector matching (on/ignoring,
group_left/right, ``bool``) with Loki's twist that ``/`` and ``%`` by zero give NaN.
"""

from __future__ import annotations

import math
import re

import numpy as np

from lookout.gocompat import expand

from . import ast
from .errors import LogQLError
from .series import Matrix, Scalar, label_key, series_string

_CMP = ("==", "!=", ">", ">=", "<", "<=")


# ---------------------------------------------------------------- aggregation


def _group_labels(labels: dict[str, str], g: ast.Grouping | None) -> dict[str, str]:
    if g is None:
        return {}
    if g.without:
        return {k: v for k, v in labels.items() if k not in g.labels}
    return {k: labels[k] for k in g.labels if k in labels}


def aggregate(op: str, m: Matrix, g: ast.Grouping | None, param: float | None, instant: bool) -> Matrix:
    t = m.values.shape[1]
    if op in ("sort", "sort_desc"):
        return _sort(m, desc=op == "sort_desc")
    if op in ("topk", "bottomk", "approx_topk"):
        return _topk(m, g, int(param or 0), bottom=op == "bottomk")
    groups: dict[tuple, list[int]] = {}
    glabels: dict[tuple, dict[str, str]] = {}
    for i, lb in enumerate(m.labels):
        gl = _group_labels(lb, g)
        k = label_key(gl)
        groups.setdefault(k, []).append(i)
        glabels[k] = gl
    out_labels, out_vals, out_pres = [], [], []
    for k, idx in groups.items():
        v = m.values[idx]
        p = m.present[idx]
        cnt = p.sum(axis=0)
        has = cnt > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            if op == "sum":
                r = np.where(p, v, 0.0).sum(axis=0)
            elif op == "count":
                r = cnt.astype(np.float64)
            elif op == "avg":
                r = np.where(p, v, 0.0).sum(axis=0) / np.maximum(cnt, 1)
            elif op == "min":
                r = np.fmin.reduce(np.where(p, v, np.nan), axis=0)
            elif op == "max":
                r = np.fmax.reduce(np.where(p, v, np.nan), axis=0)
            elif op in ("stddev", "stdvar"):
                r = np.full(t, np.nan)
                for s in np.nonzero(has)[0]:
                    w = v[p[:, s], s]
                    d = w - w[0]
                    var = float(np.mean(d * d) - np.mean(d) ** 2) if len(w) > 1 else 0.0
                    r[s] = math.sqrt(var) if op == "stddev" and not math.isnan(var) else var
            else:
                raise LogQLError(f"unsupported aggregation {op}")
        out_labels.append(glabels[k])
        out_vals.append(r)
        out_pres.append(has)
    if not out_labels:
        return Matrix.empty(t)
    return Matrix(out_labels, np.array(out_vals), np.array(out_pres)).compact()


def _sort_key(v: float, desc: bool) -> tuple[int, float]:
    if math.isnan(v):
        return (1, 0.0)
    return (0, -v if desc else v)


def _sort(m: Matrix, desc: bool) -> Matrix:
    """Instant-only ordering by value; NaN sorts last either way."""
    if len(m) == 0:
        return m
    col = m.values[:, -1]
    idx = sorted(range(len(m)), key=lambda i: _sort_key(float(col[i]), desc))
    return Matrix([m.labels[i] for i in idx], m.values[idx], m.present[idx], ordered=True)


def _topk(m: Matrix, g: ast.Grouping | None, k: int, bottom: bool) -> Matrix:
    """Select (not aggregate) the k largest/smallest series per group at each step; NaN ranks last."""
    t = m.values.shape[1]
    groups: dict[tuple, list[int]] = {}
    for i, lb in enumerate(m.labels):
        groups.setdefault(label_key(_group_labels(lb, g)), []).append(i)
    keep = np.zeros_like(m.present)
    for idx in groups.values():
        idx_a = np.array(idx)
        for s in range(t):
            live = idx_a[m.present[idx_a, s]]
            if len(live) == 0:
                continue
            chosen = sorted(live, key=lambda i: _sort_key(float(m.values[i, s]), not bottom))[:k]
            keep[chosen, s] = True
    return Matrix(m.labels, m.values, keep).compact()


# ---------------------------------------------------------------- label_replace


def label_replace(m: Matrix, dst: str, repl: str, src: str, regex: str) -> Matrix:
    rx = re.compile(f"^(?:{regex})$", re.S)
    out = []
    for lb in m.labels:
        mm = rx.match(lb.get(src, ""))
        if not mm:
            out.append(lb)
            continue
        val = expand(repl, mm)
        nl = dict(lb)
        if val == "":
            nl.pop(dst, None)
        else:
            nl[dst] = val
        out.append(nl)
    return Matrix(out, m.values, m.present, m.ordered)


# ---------------------------------------------------------------- binary operators


def _arith(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return np.where(b == 0, np.nan, a / np.where(b == 0, 1, b))
        if op == "%":
            return np.where(b == 0, np.nan, np.fmod(a, np.where(b == 0, 1, b)))
        if op == "^":
            return np.power(a, b)
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
    raise LogQLError(f"unsupported operator {op}")


def scalar_scalar(op: str, a: Scalar, b: Scalar) -> Scalar:
    r = _arith(op, a.values, b.values)
    return Scalar(r.astype(np.float64))


def vector_scalar(op: str, m: Matrix, s: Scalar, scalar_left: bool, bool_mod: bool) -> Matrix:
    sv = np.broadcast_to(s.values, m.values.shape)
    lhs, rhs = (sv, m.values) if scalar_left else (m.values, sv)
    r = _arith(op, lhs, rhs)
    if op in _CMP:
        hit = r.astype(bool)
        if bool_mod:
            return Matrix(m.labels, hit.astype(np.float64), m.present, m.ordered)
        return Matrix(m.labels, m.values, m.present & hit, m.ordered).compact()
    return Matrix(m.labels, r, m.present, m.ordered)


def _sig(labels: dict[str, str], vm: ast.VectorMatching) -> tuple:
    if vm.on:
        return tuple((k, labels.get(k, "")) for k in sorted(vm.labels))
    ign = set(vm.labels)
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ign))


def set_op(op: str, lhs: Matrix, rhs: Matrix, vm: ast.VectorMatching) -> Matrix:
    t = lhs.values.shape[1] if len(lhs) else rhs.values.shape[1]
    rs: dict[tuple, np.ndarray] = {}
    for lb, p in zip(rhs.labels, rhs.present, strict=True):
        k = _sig(lb, vm)
        rs[k] = rs[k] | p if k in rs else p.copy()
    if op in ("and", "unless"):
        pres = []
        for lb, p in zip(lhs.labels, lhs.present, strict=True):
            other = rs.get(_sig(lb, vm), np.zeros(t, dtype=bool))
            pres.append(p & other if op == "and" else p & ~other)
        if not pres:
            return Matrix.empty(t)
        return Matrix(lhs.labels, lhs.values, np.array(pres)).compact()
    # or: every lhs sample, plus rhs samples whose signature no lhs sample holds at that step
    ls: dict[tuple, np.ndarray] = {}
    for lb, p in zip(lhs.labels, lhs.present, strict=True):
        k = _sig(lb, vm)
        ls[k] = ls[k] | p if k in ls else p.copy()
    labels = list(lhs.labels)
    vals = [v for v in lhs.values]
    pres = [p for p in lhs.present]
    for lb, v, p in zip(rhs.labels, rhs.values, rhs.present, strict=True):
        taken = ls.get(_sig(lb, vm), np.zeros(t, dtype=bool))
        labels.append(lb)
        vals.append(v)
        pres.append(p & ~taken)
    if not labels:
        return Matrix.empty(t)
    return _merge(labels, np.array(vals), np.array(pres))


def _merge(labels: list[dict[str, str]], vals: np.ndarray, pres: np.ndarray) -> Matrix:
    """Combine rows that carry the same label set (their samples never overlap)."""
    index: dict[tuple, int] = {}
    out_l, out_v, out_p = [], [], []
    for lb, v, p in zip(labels, vals, pres, strict=True):
        k = label_key(lb)
        if k in index:
            j = index[k]
            out_v[j] = np.where(p, v, out_v[j])
            out_p[j] = out_p[j] | p
        else:
            index[k] = len(out_l)
            out_l.append(lb)
            out_v.append(v.copy())
            out_p.append(p.copy())
    return Matrix(out_l, np.array(out_v), np.array(out_p)).compact()


def _result_labels(lhs: dict[str, str], rhs: dict[str, str], vm: ast.VectorMatching) -> dict[str, str]:
    out = dict(lhs)
    if vm.card == "one-to-one":
        if vm.on:
            out = {k: v for k, v in out.items() if k in vm.labels}
        else:
            out = {k: v for k, v in out.items() if k not in vm.labels}
    for name in vm.include:
        v = rhs.get(name, "")
        if v:
            out[name] = v
        else:
            out.pop(name, None)
    return out


def vector_vector(op: str, lhs: Matrix, rhs: Matrix, vm: ast.VectorMatching, bool_mod: bool) -> Matrix:
    t = lhs.values.shape[1] if len(lhs) else (rhs.values.shape[1] if len(rhs) else 0)
    if not len(lhs) or not len(rhs):
        return Matrix.empty(t)
    one_to_many = vm.card == "one-to-many"
    many, one = (rhs, lhs) if one_to_many else (lhs, rhs)
    one_side = "left" if one_to_many else "right"
    many_sigs = [_sig(lb, vm) for lb in many.labels]
    one_sigs = [_sig(lb, vm) for lb in one.labels]
    out: dict[tuple, tuple[dict[str, str], np.ndarray, np.ndarray]] = {}
    for s in range(t):
        table: dict[tuple, int] = {}
        for j in np.nonzero(one.present[:, s])[0]:
            k = one_sigs[j]
            if k in table:
                raise LogQLError(
                    f"found duplicate series on the {one_side} hand-side of the operation: "
                    f"[{series_string(one.labels[j])}, {series_string(one.labels[table[k]])}]; "
                    "many-to-many matching not allowed: matching labels must be unique on one side")
            table[k] = j
        matched: set[tuple] = set()
        inserted: set[tuple] = set()
        for i in np.nonzero(many.present[:, s])[0]:
            k = many_sigs[i]
            j = table.get(k)
            if j is None:
                continue
            lv, rv = many.values[i, s], one.values[j, s]
            if one_to_many:
                lv, rv = rv, lv
            r = float(_arith(op, np.array(lv), np.array(rv)))
            if op in _CMP:
                if bool_mod:
                    val = 1.0 if r else 0.0
                elif not r:
                    continue
                else:
                    val = float(lv)
            else:
                val = r
            labels = _result_labels(many.labels[i], one.labels[j], vm)
            lk = label_key(labels)
            if vm.card == "one-to-one":
                if k in matched:
                    raise LogQLError("multiple matches for labels: many-to-one matching must be explicit "
                                     "(group_left/group_right)")
                matched.add(k)
            else:
                if lk in inserted:
                    raise LogQLError("multiple matches for labels: grouping labels must ensure unique matches")
                inserted.add(lk)
            if lk not in out:
                out[lk] = (labels, np.zeros(t), np.zeros(t, dtype=bool))
            out[lk][1][s] = val
            out[lk][2][s] = True
    if not out:
        return Matrix.empty(t)
    labs = [v[0] for v in out.values()]
    return Matrix(labs, np.array([v[1] for v in out.values()]), np.array([v[2] for v in out.values()]))
