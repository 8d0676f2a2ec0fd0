"""Binary operators: arithmetic, comparisons (with ``bool``), set operators and vector matching.

Matching is resolved once per pair of series (labels do not change between steps); presence,
values and the one-to-one / many-to-one uniqueness checks are then array operations over all
steps, so the errors fire exactly at the steps where Prometheus would raise them."""

from __future__ import annotations

import numpy as np

from lookout.metrics.promql import ast as A
from lookout.metrics.promql.errors import execution
from lookout.metrics.promql.util import SCHEMA_LABELS, group_ids, merge_same, signature
from lookout.metrics.promql.values import NAME, Vector, labels_str

ARITH = {"+", "-", "*", "/", "^", "%", "atan2"}
COMPARE = {"==", "!=", ">", "<", ">=", "<="}


def arith(op: str, a, b):
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return np.true_divide(a, b)
        if op == "^":
            return np.power(np.asarray(a, float), b)
        if op == "%":
            return np.fmod(a, b)
        if op == "atan2":
            return np.arctan2(a, b)
    raise execution(f"operator {op!r} not allowed for arithmetic")


def compare(op: str, a, b):
    with np.errstate(invalid="ignore"):
        return {"==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less,
                ">=": np.greater_equal, "<=": np.less_equal}[op](a, b)


def scalar_scalar(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if op in COMPARE:
        return compare(op, a, b).astype(float)
    return arith(op, a, b)


def vector_scalar(op: str, vec: Vector, s: np.ndarray, swap: bool, return_bool: bool) -> Vector:
    lv, rv = vec.v, s[None, :]
    if swap:
        lv, rv = rv, lv
    if op in COMPARE:
        keep = compare(op, lv, rv)
        if return_bool:
            return Vector(vec.labels, keep.astype(float), vec.ok.copy(), np.ones(len(vec), bool))
        return Vector(vec.labels, vec.v, vec.ok & keep, vec.drop).compact()
    return Vector(vec.labels, np.broadcast_to(arith(op, lv, rv), vec.v.shape).copy(), vec.ok,
                  np.ones(len(vec), bool))


def _sig_presence(vec: Vector, sigs: np.ndarray, nsig: int) -> np.ndarray:
    pres = np.zeros((nsig, vec.ok.shape[1]), bool)
    rows, cols = np.nonzero(vec.ok)
    pres[sigs[rows], cols] = True
    return pres


def set_op(node: A.Binary, lhs: Vector, rhs: Vector) -> Vector:
    ls = [signature(lb, node.on, node.matching) for lb in lhs.labels]
    rs = [signature(lb, node.on, node.matching) for lb in rhs.labels]
    ids, uniq = group_ids(ls + rs)
    lid, rid = ids[: len(ls)], ids[len(ls):]
    if node.op == "and":
        rp = _sig_presence(rhs, rid, len(uniq))
        return Vector(lhs.labels, lhs.v, lhs.ok & rp[lid], lhs.drop).compact()
    if node.op == "unless":
        rp = _sig_presence(rhs, rid, len(uniq))
        return Vector(lhs.labels, lhs.v, lhs.ok & ~rp[lid], lhs.drop).compact()
    lp = _sig_presence(lhs, lid, len(uniq))
    r2 = Vector(rhs.labels, rhs.v, rhs.ok & ~lp[rid], rhs.drop).compact()
    out = Vector(lhs.labels + r2.labels, np.concatenate([lhs.v, r2.v]), np.concatenate([lhs.ok, r2.ok]),
                 np.concatenate([lhs.drop, r2.drop]))
    return merge_same(out)


def _match_labels_str(labels: dict[str, str], node: A.Binary) -> str:
    if node.on:
        sub = {k: labels[k] for k in node.matching if labels.get(k)}
    else:
        skip = set(node.matching) | {NAME}
        sub = {k: v for k, v in labels.items() if k not in skip}
    return labels_str(sub)


def _result_labels(ll: dict[str, str], rl: dict[str, str], node: A.Binary) -> dict[str, str]:
    out = dict(ll)
    if node.op in ARITH:
        for k in SCHEMA_LABELS:
            out.pop(k, None)
    if node.card == "one-to-one":
        if node.on:
            out = {k: v for k, v in out.items() if k in node.matching}
        else:
            for k in node.matching:
                out.pop(k, None)
    for k in node.include:
        if rl.get(k):
            out[k] = rl[k]
        else:
            out.pop(k, None)
    return out


def vector_vector(node: A.Binary, lhs: Vector, rhs: Vector) -> Vector:
    steps = lhs.ok.shape[1]
    filling = node.fill_lhs is not None or node.fill_rhs is not None
    if (len(lhs) == 0 or len(rhs) == 0) and not filling:
        return Vector.empty(steps)
    swapped = node.card == "one-to-many"
    if swapped:
        lhs, rhs = rhs, lhs
    active = lhs.ok.any(axis=0) & rhs.ok.any(axis=0)
    ls = [signature(lb, node.on, node.matching) for lb in lhs.labels]
    rs = [signature(lb, node.on, node.matching) for lb in rhs.labels]
    ids, uniq = group_ids(ls + rs)
    lid, rid = ids[: len(ls)], ids[len(ls):]
    nsig = len(uniq)
    rok = rhs.ok & active
    cnt = np.zeros((nsig, steps), np.int64)
    np.add.at(cnt, rid, rok.astype(np.int64))
    if (cnt > 1).any():
        g, s = np.argwhere(cnt > 1)[0]
        members = [j for j in range(len(rhs)) if rid[j] == g and rok[j, s]]
        one_side = "left" if swapped else "right"
        first, dup = rhs.labels[members[0]], rhs.labels[members[1]]
        raise execution(
            f"found duplicate series for the match group {_match_labels_str(dup, node)} on the {one_side} "
            f"hand-side of the operation: [{labels_str(first)}, {labels_str(dup)}]"
            ";many-to-many matching not allowed: matching labels must be unique on one side"
        )
    # all (lhs, rhs) pairs sharing a signature
    order = np.argsort(rid, kind="stable")
    starts = np.searchsorted(rid[order], np.arange(nsig), "left")
    ends = np.searchsorted(rid[order], np.arange(nsig), "right")
    pl, pr = [], []
    for i in range(len(lhs)):
        g = lid[i]
        for j in order[starts[g]:ends[g]]:
            pl.append(i)
            pr.append(int(j))
    fills = _fills(node, lhs, rhs, lid, rid, nsig, swapped) if filling else []
    if not pl:
        return _concat(fills, steps)
    pl_a, pr_a = np.array(pl, np.int64), np.array(pr, np.int64)
    ok = lhs.ok[pl_a] & rok[pr_a]
    lv, rv = lhs.v[pl_a], rhs.v[pr_a]
    if swapped:
        lv, rv = rv, lv
    ok_pre = ok
    val, ok = _apply(node, lv, rv, ok)
    labels = [_result_labels(lhs.labels[i], rhs.labels[j], node) for i, j in zip(pl, pr, strict=False)]
    psig = lid[pl_a]
    if node.card == "one-to-one":
        c2 = np.zeros((nsig, steps), np.int64)
        np.add.at(c2, psig, ok_pre.astype(np.int64))
        if (c2 > 1).any():
            raise execution("multiple matches for labels: many-to-one matching must be explicit "
                            "(group_left/group_right)")
    else:
        from lookout.metrics.promql.values import key_of

        rid2, _ = group_ids([(int(s), key_of(lb)) for s, lb in zip(psig, labels, strict=False)])
        c2 = np.zeros((int(rid2.max()) + 1, steps), np.int64)
        np.add.at(c2, rid2, ok.astype(np.int64))
        if (c2 > 1).any():
            raise execution("multiple matches for labels: grouping labels must ensure unique matches")
    drop = (lhs.drop[pl_a] | node.return_bool) if node.op in COMPARE else np.zeros(len(pl), bool)
    out = Vector(labels, val, ok, drop).compact()
    if fills:
        out = _concat([out] + fills, steps)
    return merge_same(out, "multiple matches for labels: grouping labels must ensure unique matches")


def _apply(node: A.Binary, lv, rv, ok):
    """The operator on matched values: (values, presence) after comparison filtering."""
    if node.op in COMPARE:
        keep = compare(node.op, lv, rv)
        if node.return_bool:
            return keep.astype(float), ok
        return np.broadcast_to(lv, ok.shape).copy(), ok & keep
    return np.broadcast_to(arith(node.op, lv, rv), ok.shape).copy(), ok


def _concat(vecs: list[Vector], steps: int) -> Vector:
    vecs = [v for v in vecs if len(v)]
    if not vecs:
        return Vector.empty(steps)
    return Vector([lb for v in vecs for lb in v.labels], np.concatenate([v.v for v in vecs]),
                  np.concatenate([v.ok for v in vecs]), np.concatenate([v.drop for v in vecs]))


def _fills(node: A.Binary, lhs: Vector, rhs: Vector, lid, rid, nsig: int, swapped: bool) -> list[Vector]:
    """Experimental ``fill``/``fill_left``/``fill_right``: a side missing at a step is replaced by
    the fill value. The values apply to the sides after the group_right swap, as Prometheus does."""
    out = []
    lp = _sig_presence(lhs, lid, nsig)
    rp = _sig_presence(rhs, rid, nsig)
    if node.fill_rhs is not None and len(lhs):
        ok = lhs.ok & ~rp[lid]
        lv, rv = lhs.v, np.full(lhs.v.shape, node.fill_rhs)
        if swapped:
            lv, rv = rv, lv
        val, ok = _apply(node, lv, rv, ok)
        labels = [_result_labels(lb, {}, node) for lb in lhs.labels]
        drop = lhs.drop | node.return_bool if node.op in COMPARE else np.zeros(len(lhs), bool)
        out.append(Vector(labels, val, ok, drop).compact())
    if node.fill_lhs is not None and len(rhs):
        ok = rhs.ok & ~lp[rid]
        lv, rv = np.full(rhs.v.shape, node.fill_lhs), rhs.v
        if swapped:
            lv, rv = rv, lv
        val, ok = _apply(node, lv, rv, ok)
        if node.on:
            labels = [{k: lb[k] for k in node.matching if lb.get(k)} for lb in rhs.labels]
        else:
            skip = set(node.matching) | SCHEMA_LABELS
            labels = [{k: v for k, v in lb.items() if k not in skip} for lb in rhs.labels]
        if node.card != "one-to-one":
            labels = [dict(lb, **{k: r[k] for k in node.include if r.get(k)})
                      for lb, r in zip(labels, rhs.labels, strict=True)]
        out.append(Vector(labels, val, ok, np.full(len(rhs), node.op in COMPARE and node.return_bool)).compact())
    return out
