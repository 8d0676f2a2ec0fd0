"""Selectors: one ``Querier.select`` per selector node, covering every step at once.

An instant selector picks, per step, the newest sample in ``(t - lookback, t]`` unless that sample
is a stale marker; a range selector keeps every non-stale sample and leaves the windowing to the
functions (``RangeVec.bounds``)."""

from __future__ import annotations

import numpy as np

from lookout.metrics.model import Querier, is_stale
from lookout.metrics.promql import ast as A
from lookout.metrics.promql.values import RangeVec, Vector


def eval_times(at: A.At | None, offset_ms: int, ts: np.ndarray, start_ms: int, end_ms: int) -> np.ndarray:
    """The effective time per step: the ``@`` time (or the step), minus the offset."""
    if at is None:
        base = ts
    elif at.kind == "start":
        base = np.full(len(ts), start_ms, np.int64)
    elif at.kind == "end":
        base = np.full(len(ts), end_ms, np.int64)
    else:
        base = np.full(len(ts), at.t_ms, np.int64)
    return base - offset_ms


def instant(querier: Querier, node: A.VectorSel, te: np.ndarray, lookback_ms: int,
            want_ts: bool = False) -> tuple[Vector, int]:
    """Evaluate an instant selector at times ``te``; returns the vector and the samples loaded.
    With ``want_ts`` the values are the chosen samples' timestamps in seconds (``timestamp()``)."""
    steps = len(te)
    series = querier.select(list(node.matchers), int(te.min()) - lookback_ms + 1, int(te.max()))
    labels, vals, oks = [], [], []
    loaded = 0
    for s in series:
        t, v = s.t, s.v
        loaded += len(t)
        idx = np.searchsorted(t, te, "right") - 1
        ok = idx >= 0
        idx = np.maximum(idx, 0)
        st, sv = t[idx], v[idx]
        ok &= st > te - lookback_ms
        ok &= ~is_stale(sv)
        if not ok.any():
            continue
        labels.append(s.labels)
        vals.append(st / 1000.0 if want_ts else sv)
        oks.append(ok)
    if not labels:
        return Vector.empty(steps), loaded
    return Vector(labels, np.vstack(vals), np.vstack(oks), np.zeros(len(labels), bool)), loaded


def ranged(querier: Querier, node: A.MatrixSel, ends: np.ndarray) -> tuple[RangeVec, int]:
    vs = node.vs
    series = querier.select(list(vs.matchers), int(ends.min()) - node.range_ms + 1, int(ends.max()))
    labels, ts, vs_ = [], [], []
    loaded = 0
    for s in series:
        keep = ~is_stale(s.v)
        t, v = s.t[keep], s.v[keep]
        if len(t) == 0:
            continue
        loaded += len(t)
        labels.append(s.labels)
        ts.append(t)
        vs_.append(v)
    return RangeVec(labels, ts, vs_, ends, node.range_ms, np.zeros(len(labels), bool)), loaded
