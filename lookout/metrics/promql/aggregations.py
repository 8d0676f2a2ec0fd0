"""Aggregation operators (``sum``, ``avg``, ``topk``, ``quantile``, ``count_values``, ...).

Series are grouped once (labels are the same at every step). Each group's members are laid out
as a padded ``(groups * steps, max_group_size)`` matrix with a presence mask, so every operator is
a row reduction shared with the range functions."""

from __future__ import annotations

import re

import numpy as np
import xxhash

from lookout.metrics.promql import ast as A
from lookout.metrics.promql.errors import execution
from lookout.metrics.promql.format import format_float
from lookout.metrics.promql.kahan import kahan_mean, kahan_sum
from lookout.metrics.promql.rangefuncs import quantile_rows
from lookout.metrics.promql.util import group_ids, merge_same
from lookout.metrics.promql.values import NAME, Vector

_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _group_key(labels: dict[str, str], node: A.Agg) -> tuple:
    if node.without:
        skip = set(node.grouping) | {NAME}
        return tuple(sorted((k, v) for k, v in labels.items() if k not in skip))
    return tuple((k, labels[k]) for k in sorted(set(node.grouping)) if labels.get(k, "") != "")


def _layout(vec: Vector, gid: np.ndarray, ngroups: int):
    """Padded (G*S, R) value/mask matrices, and the (G, R) member index (-1 = none)."""
    steps = vec.ok.shape[1]
    order = np.argsort(gid, kind="stable")
    sg = gid[order]
    first = np.searchsorted(sg, sg, "left")
    rank = np.empty(len(gid), np.int64)
    rank[order] = np.arange(len(gid)) - first
    width = int(rank.max()) + 1 if len(gid) else 1
    member = np.full((ngroups, width), -1, np.int64)
    member[gid, rank] = np.arange(len(gid))
    w = np.zeros((ngroups, width, steps))
    m = np.zeros((ngroups, width, steps), bool)
    w[gid, rank] = vec.v
    m[gid, rank] = vec.ok
    w = w.transpose(0, 2, 1).reshape(ngroups * steps, width)
    m = m.transpose(0, 2, 1).reshape(ngroups * steps, width)
    return w, m, member


def _compact_rows(w: np.ndarray, m: np.ndarray):
    """Move each row's valid entries first (stable), as the order-dependent reductions need."""
    order = np.argsort(~m, axis=1, kind="stable")
    return np.take_along_axis(w, order, axis=1), np.take_along_axis(m, order, axis=1)


def _param_scalar(param: np.ndarray | None, steps: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(param, float), (steps,)) if param is not None else np.zeros(steps)


def aggregate(node: A.Agg, vec: Vector, param, steps: int) -> Vector:
    op = node.op
    if op == "count_values":
        return _count_values(node, vec, param, steps)
    if op in ("topk", "bottomk", "limitk", "limit_ratio"):
        return _select(node, vec, param, steps)
    if len(vec) == 0:
        return Vector.empty(steps)
    keys = [_group_key(lb, node) for lb in vec.labels]
    gid, uniq = group_ids(keys)
    ngroups = len(uniq)
    w, m, member = _layout(vec, gid, ngroups)
    n = m.sum(axis=1)
    with np.errstate(all="ignore"):
        if op == "sum":
            wc, mc = _compact_rows(w, m)
            res = kahan_sum(wc, mc)
        elif op == "avg":
            wc, mc = _compact_rows(w, m)
            res = kahan_mean(wc, mc)
        elif op == "count":
            res = n.astype(float)
        elif op == "group":
            res = np.ones(len(n))
        elif op in ("min", "max"):
            valid = m & ~np.isnan(w)
            fill = -np.inf if op == "max" else np.inf
            vals = np.where(valid, w, fill)
            res = vals.max(axis=1) if op == "max" else vals.min(axis=1)
            res = np.where(valid.any(axis=1), res, np.nan)
        elif op in ("stddev", "stdvar"):
            wc, mc = _compact_rows(w, m)
            mean = wc[:, 0].copy()
            acc = np.zeros(len(n))
            cnt = mc[:, 0].astype(float)
            for j in range(1, wc.shape[1]):
                mj = mc[:, j]
                cnt = np.where(mj, cnt + 1, cnt)
                delta = wc[:, j] - mean
                nmean = mean + delta / np.where(mj, cnt, 1)
                acc = np.where(mj, acc + delta * (wc[:, j] - nmean), acc)
                mean = np.where(mj, nmean, mean)
            res = acc / cnt
            res = np.where((~np.isfinite(w) & m).any(axis=1), np.nan, res)
            if op == "stddev":
                res = np.sqrt(res)
        elif op == "quantile":
            q = np.repeat(_param_scalar(param, steps)[None, :], ngroups, axis=0).reshape(-1)
            primary = np.where(m, np.where(np.isnan(w), 0, 1), 2)
            order = np.lexsort((np.where(np.isnan(w), 0.0, w), primary), axis=-1)
            res = quantile_rows(q, np.take_along_axis(w, order, axis=1), n)
        else:
            raise execution(f"unsupported aggregation {op}")
    res = res.reshape(ngroups, steps)
    ok = n.reshape(ngroups, steps) > 0
    labels = [dict(k) for k in uniq]
    has_name = np.array([NAME in lb for lb in labels])
    drop_any = np.zeros(ngroups, bool)
    np.logical_or.at(drop_any, gid, vec.drop)
    return Vector(labels, res, ok, drop_any & has_name).compact()


def _int_param(op: str, k: np.ndarray) -> np.ndarray:
    if np.isnan(k).any():
        raise execution("Parameter value is NaN")
    if (np.abs(k) >= 2.0**63).any():
        raise execution(f"Scalar value {format_float(float(k[np.abs(k) >= 2.0**63][0]))} overflows int64")
    return np.trunc(k).astype(np.int64)


def _label_hash_offset(labels: dict[str, str]) -> float:
    """Prometheus' ``sampleOffset``: the label-set hash scaled into [0, 1)."""
    b = bytearray()
    for k, v in sorted(labels.items()):
        b += k.encode() + b"\xff" + v.encode() + b"\xff"
    return xxhash.xxh64_intdigest(bytes(b)) / float(2**64 - 1)


def _select(node: A.Agg, vec: Vector, param, steps: int) -> Vector:
    """topk / bottomk / limitk / limit_ratio: they return input series, not new ones."""
    op = node.op
    p = _param_scalar(param, steps)
    if op == "limit_ratio":
        if np.isnan(p).any():
            raise execution("Ratio value is NaN")
    if op != "limit_ratio":
        k = _int_param(op, p)
    if len(vec) == 0:
        return Vector.empty(steps)
    keys = [_group_key(lb, node) for lb in vec.labels]
    gid, uniq = group_ids(keys)
    if op == "limit_ratio":
        r = np.clip(p, -1.0, 1.0)
        off = np.array([_label_hash_offset(lb) for lb in vec.labels])[:, None]
        keep = np.where(r[None, :] >= 0, off < r[None, :], off >= 1 + r[None, :])
        return Vector(vec.labels, vec.v, vec.ok & keep, vec.drop).compact()
    ngroups = len(uniq)
    w, m, member = _layout(vec, gid, ngroups)
    width = w.shape[1]
    kk = np.repeat(k[None, :], ngroups, axis=0).reshape(-1)
    if op == "limitk":
        rank_in_row = np.cumsum(m, axis=1) - 1
        sel = m & (rank_in_row < kk[:, None])
        order_rank = rank_in_row
    else:
        nan = np.isnan(w)
        key = -w if op == "topk" else w
        primary = np.where(m, np.where(nan, 1, 0), 2)
        order = np.lexsort((np.where(nan, 0.0, key), primary), axis=-1)
        pos = np.empty_like(order)
        np.put_along_axis(pos, order, np.arange(width)[None, :].repeat(len(order), 0), axis=1)
        sel = m & (pos < kk[:, None])
        order_rank = pos
    sel = sel.reshape(ngroups, steps, width).transpose(0, 2, 1)
    rk = order_rank.reshape(ngroups, steps, width).transpose(0, 2, 1)
    keep = np.zeros_like(vec.ok)
    rank_of = np.zeros(vec.ok.shape, np.int64)
    gi, ri = np.nonzero(member >= 0)
    idx = member[gi, ri]
    keep[idx] = sel[gi, ri]
    rank_of[idx] = rk[gi, ri]
    out = Vector(vec.labels, vec.v, vec.ok & keep, vec.drop)
    if steps == 1:  # instant query: groups in order of appearance, each sorted by rank
        order = np.lexsort((rank_of[:, 0], gid))
        out = out.take(order)
    return out.compact()


def _count_values(node: A.Agg, vec: Vector, param, steps: int) -> Vector:
    label = param
    if not _LABEL_RE.match(label or ""):
        raise execution(f"invalid label name {_go_quote(label)}")
    if len(vec) == 0:
        return Vector.empty(steps)
    rows, cols = np.nonzero(vec.ok)
    vals = vec.v[rows, cols]
    keys = [_group_key(vec.labels[r], node) for r in rows.tolist()]
    strs = [format_float(x) if not (x != x) else "NaN" for x in vals.tolist()]
    strs = [s if "e" not in s else np.format_float_positional(float(x), unique=True, trim="-")
            for s, x in zip(strs, vals.tolist(), strict=False)]
    out_keys = [(k, s) for k, s in zip(keys, strs, strict=False)]
    gid, uniq = group_ids(out_keys)
    counts = np.zeros((len(uniq), steps))
    np.add.at(counts, (gid, cols), 1.0)
    labels = []
    for k, s in uniq:
        lb = dict(k)
        lb[label] = s
        labels.append(lb)
    out = Vector(labels, counts, counts > 0, np.zeros(len(labels), bool))
    return merge_same(out)


def _go_quote(s: str) -> str:
    out = ['"']
    for b in s.encode("utf-8", "surrogateescape"):
        ch = chr(b)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\x{b:02x}")
    # re-join valid UTF-8 multibyte runs as Go would print them (printable runes stay literal)
    return "".join(out) + '"'
