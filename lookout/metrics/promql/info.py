"""The experimental ``info()`` function: enrich series with the data labels of info metrics
(``target_info`` by default) that share their identifying labels (``instance``, ``job``).

Info series are selected once for all steps, as of the base expression's *effective* time (the
``@`` / ``offset`` of its selectors and subqueries). Per base series, the info series chosen at
each step (per info metric name: the one with the latest sample) form a small integer matrix;
the output labels are built once per distinct choice, never per step."""

from __future__ import annotations

import numpy as np

from lookout.metrics.model import Matcher
from lookout.metrics.promql import ast as A
from lookout.metrics.promql import selectors
from lookout.metrics.promql.errors import execution
from lookout.metrics.promql.util import merge_same
from lookout.metrics.promql.values import NAME, Vector, key_of

IDENTIFYING = ("instance", "job")


def effective_times(e: A.Expr, ts: np.ndarray, start_ms: int, end_ms: int) -> np.ndarray:
    """The times the samples of ``e`` are read at, per step: ``@`` pins, ``offset`` shifts, and
    both compose through subqueries (down the first argument that holds a selector)."""
    e = A.unparen(e)
    if isinstance(e, A.VectorSel):
        return selectors.eval_times(e.at, e.offset_ms, ts, start_ms, end_ms)
    if isinstance(e, A.MatrixSel):
        return effective_times(e.vs, ts, start_ms, end_ms)
    if isinstance(e, A.Subquery):
        return effective_times(e.expr, selectors.eval_times(e.at, e.offset_ms, ts, start_ms, end_ms),
                               start_ms, end_ms)
    for c in A.children(e):
        if any(isinstance(n, A.VectorSel) for n in A.walk(c)):
            return effective_times(c, ts, start_ms, end_ms)
    return ts


def info(ev, e: A.Call, ts: np.ndarray) -> Vector:
    base: Vector = ev.eval(e.args[0], ts)
    steps = len(ts)
    matchers: tuple[Matcher, ...] = ()
    if len(e.args) > 1:
        sel = A.unparen(e.args[1])
        matchers = sel.matchers if isinstance(sel, A.VectorSel) else ()
    name_m = [m for m in matchers if m.name == NAME] or [Matcher(NAME, "=", "target_info")]
    if not any(m.op in ("=", "=~") for m in name_m):
        # only negated name matchers: they narrow down the *_info metrics
        name_m.append(Matcher(NAME, "=~", ".+_info"))
    data_m = [m for m in matchers if m.name != NAME]
    if len(base) == 0:
        return base
    te = effective_times(e.args[0], ts, ev.start_ms, ev.end_ms)
    node = A.VectorSel(None, tuple(name_m + data_m))
    infos, _ = selectors.instant(ev.querier, node, te, ev.lookback_ms)
    info_ts, _ = selectors.instant(ev.querier, node, te, ev.lookback_ms, want_ts=True)
    ts_of = {key_of(lb): info_ts.v[j] for j, lb in enumerate(info_ts.labels)}
    by_id: dict[tuple, list[int]] = {}
    for j, lb in enumerate(infos.labels):
        by_id.setdefault(tuple(lb.get(k, "") for k in IDENTIFYING), []).append(j)
    # A base series that is itself one of the selected info metrics is passed through.
    # data matchers that reject the empty value require an info series to be found
    required = any(not m.matches("") for m in data_m)
    wanted = {m.name for m in data_m}
    out_labels, out_v, out_ok, out_drop = [], [], [], []
    for i, lb in enumerate(base.labels):
        if all(m.matches(lb.get(m.name, "")) for m in name_m):
            out_labels.append(lb)
            out_v.append(base.v[i])
            out_ok.append(base.ok[i])
            out_drop.append(base.drop[i])
            continue
        cands = by_id.get(tuple(lb.get(k, "") for k in IDENTIFYING), [])
        by_name: dict[str, list[int]] = {}
        for j in cands:
            by_name.setdefault(infos.labels[j].get(NAME, ""), []).append(j)
        # per info metric name and step: the candidate with the latest sample (-1: none)
        choice = np.full((len(by_name), steps), -1, np.int64)
        for r, js in enumerate(by_name.values()):
            t = np.vstack([np.where(infos.ok[j], ts_of[key_of(infos.labels[j])], -np.inf) for j in js])
            best = t.argmax(axis=0)
            choice[r] = np.where(np.isfinite(t.max(axis=0)), np.array(js)[best], -1)
        choice = np.where(base.ok[i][None, :], choice, -2)
        combos, inv = np.unique(choice, axis=1, return_inverse=True)
        inv = np.asarray(inv).reshape(-1)
        rows: dict[tuple, np.ndarray] = {}
        for c in range(combos.shape[1]):
            chosen = combos[:, c]
            if (chosen == -2).any():
                continue
            if required and not (chosen >= 0).any():
                continue
            new = _enriched(lb, [infos.labels[j] for j in chosen if j >= 0], wanted)
            key = key_of(new)
            rows[key] = rows.get(key, np.zeros(steps, bool)) | (inv == c)
        for key, ok in rows.items():
            out_labels.append(dict(key))
            out_v.append(base.v[i])
            out_ok.append(ok)
            out_drop.append(base.drop[i])
    if not out_labels:
        return Vector.empty(steps)
    return merge_same(Vector(out_labels, np.vstack(out_v), np.vstack(out_ok), np.array(out_drop, bool)))


def _enriched(lb: dict[str, str], info_labels: list[dict[str, str]], wanted: set[str]) -> dict[str, str]:
    """``lb`` plus the data labels of the chosen info series (labels of the base series win;
    two info metrics disagreeing on a data label is an error)."""
    new = dict(lb)
    added: dict[str, str] = {}
    for il in info_labels:
        for k, v in il.items():
            if k == NAME or k in IDENTIFYING or k in lb:
                continue
            if wanted and k not in wanted:
                continue
            if k in added and added[k] != v:
                raise execution(f"conflicting label: {k!r} has values {added[k]!r} and {v!r} in different info metrics")
            added[k] = v
            new[k] = v
    return new
