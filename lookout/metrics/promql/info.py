"""The experimental ``info()`` function: enrich series with the data labels of info metrics
(``target_info`` by default) that share their identifying labels (``instance``, ``job``).

Info series are selected once for all steps; the join itself loops over base series and steps,
which is acceptable for this rarely used function."""

from __future__ import annotations

import numpy as np

from lookout.metrics.model import Matcher
from lookout.metrics.promql import ast as A
from lookout.metrics.promql import selectors
from lookout.metrics.promql.util import merge_same
from lookout.metrics.promql.values import NAME, Vector, key_of

IDENTIFYING = ("instance", "job")


def info(ev, e: A.Call, ts: np.ndarray) -> Vector:
    base: Vector = ev.eval(e.args[0], ts)
    steps = len(ts)
    matchers: tuple[Matcher, ...] = ()
    if len(e.args) > 1:
        sel = A.unparen(e.args[1])
        matchers = sel.matchers if isinstance(sel, A.VectorSel) else ()
    name_m = [m for m in matchers if m.name == NAME] or [Matcher(NAME, "=", "target_info")]
    data_m = [m for m in matchers if m.name != NAME]
    if len(base) == 0:
        return base
    node = A.VectorSel(None, tuple(name_m + data_m))
    te = ts
    infos, _ = selectors.instant(ev.querier, node, te, ev.lookback_ms)
    info_ts, _ = selectors.instant(ev.querier, node, te, ev.lookback_ms, want_ts=True)
    by_id: dict[tuple, list[int]] = {}
    for j, lb in enumerate(infos.labels):
        by_id.setdefault(tuple(lb.get(k, "") for k in IDENTIFYING), []).append(j)
    ts_of = {key_of(lb): info_ts.v[j] for j, lb in enumerate(info_ts.labels)}
    required = [m for m in data_m if not m.matches("")]
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
        rows: dict[tuple, np.ndarray] = {}
        for s in np.nonzero(base.ok[i])[0]:
            chosen: dict[str, tuple[float, int]] = {}
            for j in cands:
                if not infos.ok[j, s]:
                    continue
                name = infos.labels[j].get(NAME, "")
                t = ts_of[key_of(infos.labels[j])][s]
                if name not in chosen or t > chosen[name][0]:
                    chosen[name] = (t, j)
            new = dict(lb)
            for _, j in chosen.values():
                for k, v in infos.labels[j].items():
                    if k == NAME or k in IDENTIFYING or k in lb:
                        continue
                    if wanted and k not in wanted:
                        continue
                    new[k] = v
            if any(m.name not in new for m in required):
                continue
            key = key_of(new)
            if key not in rows:
                rows[key] = np.zeros(steps, bool)
            rows[key][s] = True
        for key, ok in rows.items():
            out_labels.append(dict(key))
            out_v.append(base.v[i])
            out_ok.append(ok)
            out_drop.append(base.drop[i])
    if not out_labels:
        return Vector.empty(steps)
    return merge_same(Vector(out_labels, np.vstack(out_v), np.vstack(out_ok), np.array(out_drop, bool)))
