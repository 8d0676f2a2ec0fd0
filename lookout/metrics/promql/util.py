"""Helpers shared by the evaluator's modules: label signatures and series merging."""

from __future__ import annotations

import numpy as np

from lookout.metrics.promql.errors import execution
from lookout.metrics.promql.values import NAME, Vector, key_of

SCHEMA_LABELS = frozenset({NAME, "__type__", "__unit__"})
SAME_LABELSET = "vector cannot contain metrics with the same labelset"


def group_ids(keys: list) -> tuple[np.ndarray, list]:
    """Dense ids for hashable keys, in first-appearance order, plus the distinct keys."""
    ids: dict = {}
    out = np.empty(len(keys), np.int64)
    for i, k in enumerate(keys):
        out[i] = ids.setdefault(k, len(ids))
    return out, list(ids)


def signature(labels: dict[str, str], on: bool, names: tuple[str, ...]) -> tuple:
    """Prometheus' matching signature: the ``on`` labels, or all but ``ignoring`` and the name."""
    if on:
        return tuple(labels.get(n, "") for n in sorted(set(names)))
    skip = set(names) | {NAME}
    return tuple(sorted((k, v) for k, v in labels.items() if k not in skip))


def merge_same(vec: Vector, message: str = SAME_LABELSET, *, with_drop: bool = True) -> Vector:
    """Combine series that carry the same label set (and name-drop flag) into one; two of them
    present at the same step is an error with ``message``."""
    if len(vec) < 2:
        return vec
    keys = [(key_of(lb), bool(d)) if with_drop else key_of(lb) for lb, d in zip(vec.labels, vec.drop, strict=False)]
    gid, uniq = group_ids(keys)
    if len(uniq) == len(keys):
        return vec
    counts = np.zeros((len(uniq), vec.ok.shape[1]), np.int64)
    np.add.at(counts, gid, vec.ok.astype(np.int64))
    if (counts > 1).any():
        raise execution(message)
    v = np.zeros((len(uniq), vec.ok.shape[1]))
    ok = np.zeros((len(uniq), vec.ok.shape[1]), bool)
    rows, cols = np.nonzero(vec.ok)
    v[gid[rows], cols] = vec.v[rows, cols]
    ok[gid[rows], cols] = True
    first = np.zeros(len(uniq), np.int64)
    first[gid[::-1]] = np.arange(len(gid))[::-1]
    drop = vec.drop[first]
    return Vector([vec.labels[i] for i in first], v, ok, drop)


def finalize(vec: Vector) -> Vector:
    """End of evaluation: remove ``__name__`` where a function or operator dropped it, then
    insist on distinct label sets (merging series that never overlap in time)."""
    if vec.drop.any():
        labels = [{k: v for k, v in lb.items() if k not in SCHEMA_LABELS} if d else lb
                  for lb, d in zip(vec.labels, vec.drop, strict=False)]
        vec = Vector(labels, vec.v, vec.ok, np.zeros(len(labels), bool))
    return merge_same(vec, with_drop=False)
