"""The PromQL engine: evaluates our AST for all steps of a query at once.

``Engine.instant_query`` and ``Engine.range_query`` are the entry points; an instant query is a
range query with one step. Each node evaluates to a value covering every step (see
``values.py``); subqueries evaluate their inner expression once on their own step grid."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lookout.metrics.model import Querier
from lookout.metrics.promql import ast as A
from lookout.metrics.promql import selectors
from lookout.metrics.promql.aggregations import aggregate
from lookout.metrics.promql.binops import scalar_scalar, set_op, vector_scalar, vector_vector
from lookout.metrics.promql.classic import go_g
from lookout.metrics.promql.errors import TOO_MANY_SAMPLES, PromQLError, bad_data, execution
from lookout.metrics.promql.functions import FUNCS, KEEP_NAME, absent_labels
from lookout.metrics.promql.jsonfmt import QueryResult
from lookout.metrics.promql.parse import parse
from lookout.metrics.promql.rangefuncs import KEEPS_NAME, RANGE_ARG, RANGE_FUNCS, Win, gather
from lookout.metrics.promql.util import finalize
from lookout.metrics.promql.values import NAME, RangeVec, Scalar, String, Value, Vector

DEFAULT_SUBQUERY_STEP_MS = 60_000
_NATIVE_ONLY = {
    "histogram_count", "histogram_sum", "histogram_avg", "histogram_stddev", "histogram_stdvar",
}


SORT_FUNCS = {"sort", "sort_desc", "sort_by_label", "sort_by_label_desc"}
COUNTER_FUNCS = {"rate", "increase"}


def position(text: str, offset: int) -> str:
    """Prometheus' ``PositionRange.StartPosInput``: 1-based ``line:col`` of an offset."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{col}"


def _go_div(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


@dataclass(slots=True)
class FnCtx:
    """What an instant function may need besides its arguments."""

    ts: np.ndarray
    ev: Evaluator
    call: A.Call | None = None

    def annotate(self, msg: str, offset: int | None = None) -> None:
        """Record ``msg`` (a full ``PromQL warning: ...`` / ``PromQL info: ...`` text) at the
        query offset ``offset`` (default: the call itself)."""
        if offset is None:
            offset = self.call.pos if self.call is not None else 0
        self.ev.annotate(msg, offset)

    def arg_offset(self, i: int) -> int:
        return self.call.arg_offset(i) if self.call is not None else 0


@dataclass(slots=True)
class Evaluator:
    querier: Querier
    start_ms: int
    end_ms: int
    lookback_ms: int
    max_samples: int
    deadline: float
    samples: int = 0
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    text: str = ""

    def annotate(self, msg: str, offset: int = 0) -> None:
        """Record an annotation as the HTTP API renders it: ``msg`` starts with
        ``PromQL warning:`` or ``PromQL info:``; the ``(line:col)`` of ``offset`` is appended."""
        full = f"{msg} ({position(self.text, offset)})"
        target = self.infos if msg.startswith("PromQL info") else self.warnings
        if full not in target:
            target.append(full)

    def _check(self) -> None:
        if time.monotonic() > self.deadline:
            raise PromQLError("query timed out in expression evaluation", "timeout")

    def _count(self, n: int) -> None:
        self.samples += n
        if self.samples > self.max_samples:
            raise execution(TOO_MANY_SAMPLES)

    # -- dispatch -------------------------------------------------------------------------------

    def eval(self, e: A.Expr, ts: np.ndarray) -> Value:
        self._check()
        if isinstance(e, A.NumberLit):
            return Scalar(np.full(len(ts), e.val))
        if isinstance(e, A.StringLit):
            return String(e.val)
        if isinstance(e, A.Paren):
            return self.eval(e.expr, ts)
        if isinstance(e, A.Unary):
            v = self.eval(e.expr, ts)
            if isinstance(v, Scalar):
                return Scalar(-v.v)
            return Vector(v.labels, -v.v, v.ok, np.ones(len(v), bool))
        if isinstance(e, A.VectorSel):
            te = selectors.eval_times(e.at, e.offset_ms, ts, self.start_ms, self.end_ms)
            vec, loaded = selectors.instant(self.querier, e, te, self.lookback_ms)
            self._count(int(vec.ok.sum()))
            return vec
        if isinstance(e, A.MatrixSel):
            ends = selectors.eval_times(e.vs.at, e.vs.offset_ms, ts, self.start_ms, self.end_ms)
            rv, loaded = selectors.ranged(self.querier, e, ends)
            self._count(loaded)
            return rv
        if isinstance(e, A.Subquery):
            return self._subquery(e, ts)
        if isinstance(e, A.Call):
            return self._call(e, ts)
        if isinstance(e, A.Agg):
            return self._agg(e, ts)
        if isinstance(e, A.Binary):
            return self._binary(e, ts)
        raise execution(f"unsupported expression {type(e).__name__}")

    # -- subqueries -----------------------------------------------------------------------------

    def _subquery(self, e: A.Subquery, ts: np.ndarray) -> RangeVec:
        ends = selectors.eval_times(e.at, e.offset_ms, ts, self.start_ms, self.end_ms)
        step = e.step_ms or DEFAULT_SUBQUERY_STEP_MS
        lo = int(ends.min()) - e.range_ms
        start = step * _go_div(lo, step)
        if start <= lo:
            start += step
        end = int(ends.max())
        inner_ts = np.arange(start, end + 1, step, dtype=np.int64)
        if len(inner_ts) == 0:
            return RangeVec([], [], [], ends, e.range_ms, np.zeros(0, bool))
        val = self.eval(e.expr, inner_ts)
        if isinstance(val, Scalar):
            val = Vector([{}], val.v[None, :], np.ones((1, len(inner_ts)), bool), np.zeros(1, bool))
        if not isinstance(val, Vector):
            raise bad_data("subquery is only allowed on instant vector")
        t_list = [inner_ts[val.ok[i]] for i in range(len(val))]
        v_list = [val.v[i][val.ok[i]] for i in range(len(val))]
        self._count(int(val.ok.sum()))
        return RangeVec(val.labels, t_list, v_list, ends, e.range_ms, val.drop.copy())

    # -- functions ------------------------------------------------------------------------------

    def _scalar_args(self, args, ts, skip: int) -> list:
        out = []
        for i, a in enumerate(args):
            if i == skip:
                out.append(None)
                continue
            v = self.eval(a, ts)
            out.append(v.v if isinstance(v, Scalar) else v)
        return out

    def _call(self, e: A.Call, ts: np.ndarray) -> Value:
        name = e.func
        steps = len(ts)
        if name in RANGE_FUNCS:
            k = RANGE_ARG[name]
            others = self._scalar_args(e.args, ts, k)
            rv = self.eval(e.args[k], ts)
            return self._range_func(name, rv, others, ts, e)
        if name == "absent_over_time":
            rv = self.eval(e.args[0], ts)
            present = np.zeros(steps, bool)
            for i in range(len(rv.labels)):
                lo, hi = rv.bounds(i)
                present |= hi > lo
            return self._absent(present, e.args[0])
        if name == "absent":
            vec = self.eval(e.args[0], ts)
            return self._absent(vec.ok.any(axis=0) if len(vec) else np.zeros(steps, bool), e.args[0])
        if name == "timestamp":
            arg = A.unparen(e.args[0])
            if isinstance(arg, A.VectorSel):
                te = selectors.eval_times(arg.at, arg.offset_ms, ts, self.start_ms, self.end_ms)
                vec, _ = selectors.instant(self.querier, arg, te, self.lookback_ms, want_ts=True)
                return Vector(vec.labels, vec.v, vec.ok, np.ones(len(vec), bool))
            vec = self.eval(arg, ts)
            return Vector(vec.labels, np.broadcast_to(ts / 1000.0, vec.v.shape).copy(), vec.ok,
                          np.ones(len(vec), bool))
        if name in _NATIVE_ONLY:
            for a in e.args:
                self.eval(a, ts)
            return Vector.empty(steps)
        if name in ("start", "end", "range", "step"):
            return Scalar(np.full(steps, self._query_param(name)))
        if name == "info":
            from lookout.metrics.promql.info import info

            return info(self, e, ts)
        fn = FUNCS.get(name)
        if fn is None:
            raise bad_data(f"unknown function with name {name!r}")
        if name in SORT_FUNCS and self.step_ms > 0:
            self.annotate("PromQL warning: sort is ineffective for range queries since results are always "
                          "ordered by labels", e.pos)
        args = [self.eval(a, ts) for a in e.args]
        out = fn(args, FnCtx(ts, self, e))
        if isinstance(out, Vector) and name in KEEP_NAME:
            return out
        return out

    def _query_param(self, name: str) -> float:
        if name == "start":
            return self.start_ms / 1000.0
        if name == "end":
            return self.end_ms / 1000.0
        if name == "range":
            return (self.end_ms - self.start_ms) / 1000.0
        return self.step_ms / 1000.0

    step_ms: int = 0

    def _absent(self, present: np.ndarray, arg: A.Expr) -> Vector:
        labels = absent_labels(arg)
        ok = ~present
        return Vector([labels], np.ones((1, len(present))), ok[None, :], np.zeros(1, bool)).compact()

    def _range_func(self, name: str, rv: RangeVec, others: list, ts: np.ndarray, call: A.Call) -> Vector:
        fn = RANGE_FUNCS[name]
        steps = len(ts)
        labels, vals, oks, drops = [], [], [], []
        keep_name = name in KEEPS_NAME
        any_window = np.zeros(steps, bool)
        for i in range(len(rv.labels)):
            if i % 256 == 255:
                self._check()
            lo, hi = rv.bounds(i)
            if not (hi > lo).any():
                continue
            any_window |= hi > lo
            if name in COUNTER_FUNCS and not rv.drop[i]:
                self._check_counter(rv.labels[i], call.arg_offset(0))
            t2, v2, m2, n = gather(rv.t[i], rv.v[i], lo, hi)
            w = Win(t2, v2, m2, n, rv.ends, rv.range_ms, ts)
            val, ok = fn(w, others)
            if not ok.any():
                continue
            labels.append(rv.labels[i])
            vals.append(np.asarray(val, float))
            oks.append(ok)
            drops.append(bool(rv.drop[i]) if keep_name else True)
        if name == "quantile_over_time":
            self.invalid_quantiles(np.broadcast_to(others[0], (steps,))[any_window], call.arg_offset(0))
        if not labels:
            return Vector.empty(steps)
        return Vector(labels, np.vstack(vals), np.vstack(oks), np.array(drops, bool))

    def _check_counter(self, labels: dict[str, str], offset: int) -> None:
        """``rate``/``increase`` over a float series that may not be a counter: an info."""
        name = labels.get(NAME, "")
        typ = labels.get("__type__")
        if typ is not None:
            if typ not in ("counter", "histogram"):
                self.annotate('PromQL info: metric might not be a counter, __type__ label is not set to "counter" '
                              f'or "histogram", got "{typ}": "{name}"', offset)
            return
        if name and not name.endswith(("_total", "_sum", "_count", "_bucket")):
            self.annotate("PromQL info: metric might not be a counter, name does not end in "
                          f'_total/_sum/_count/_bucket: "{name}"', offset)

    def invalid_quantiles(self, q: np.ndarray, offset: int) -> None:
        """Warn once per distinct quantile outside [0, 1] (or NaN)."""
        q = np.asarray(q, float)
        for x in dict.fromkeys(q[np.isnan(q) | (q < 0) | (q > 1)].tolist()):
            self.annotate(f"PromQL warning: quantile value should be between 0 and 1, got {go_g(x)}", offset)

    # -- aggregations and binary operators ------------------------------------------------------

    def _agg(self, e: A.Agg, ts: np.ndarray) -> Vector:
        param = None
        if e.param is not None:
            p = self.eval(e.param, ts)
            param = p.s if isinstance(p, String) else p.v
        vec = self.eval(e.expr, ts)
        if e.op in ("quantile", "limit_ratio") and param is not None and len(vec):
            present = vec.ok.any(axis=0)
            p = np.broadcast_to(np.asarray(param, float), (len(ts),))[present]
            if e.op == "quantile":
                self.invalid_quantiles(p, e.param_pos)
            else:
                for x in dict.fromkeys(p[(p < -1) | (p > 1)].tolist()):
                    self.annotate(f"PromQL warning: ratio value should be between -1 and 1, got {go_g(x)}, "
                                  f"capping to {go_g(max(-1.0, min(1.0, x)))}", e.param_pos)
        return aggregate(e, vec, param, len(ts))

    def _binary(self, e: A.Binary, ts: np.ndarray) -> Value:
        lhs = self.eval(e.lhs, ts)
        rhs = self.eval(e.rhs, ts)
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            return Scalar(scalar_scalar(e.op, lhs.v, rhs.v))
        if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
            return vector_scalar(e.op, lhs, rhs.v, False, e.return_bool)
        if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
            return vector_scalar(e.op, rhs, lhs.v, True, e.return_bool)
        if e.op in ("and", "or", "unless"):
            return set_op(e, lhs, rhs)
        return vector_vector(e, lhs, rhs)


class Engine:
    """Evaluates PromQL against a :class:`Querier` with Prometheus 3 semantics."""

    def __init__(self, *, lookback_delta_ms: int = 300_000, max_samples: int = 50_000_000,
                 timeout_s: float = 120.0) -> None:
        self.lookback_delta_ms = lookback_delta_ms
        self.max_samples = max_samples
        self.timeout_s = timeout_s

    def _evaluator(self, querier: Querier, start: int, end: int, step: int, text: str = "") -> Evaluator:
        ev = Evaluator(querier, start, end, self.lookback_delta_ms, self.max_samples,
                       time.monotonic() + self.timeout_s)
        ev.step_ms = step
        ev.text = text
        return ev

    def instant_query(self, querier: Querier, query: str, t_ms: int) -> QueryResult:
        parsed = parse(query)
        ev = self._evaluator(querier, t_ms, t_ms, 0, query)
        ts = np.array([t_ms], np.int64)
        val = ev.eval(parsed.expr, ts)
        if isinstance(val, Scalar):
            res = QueryResult("scalar", scalar=(t_ms, float(val.v[0])))
        elif isinstance(val, String):
            res = QueryResult("string", string=(t_ms, val.s))
        elif isinstance(val, RangeVec):
            series = []
            for i, lb in enumerate(val.labels):
                lo, hi = val.bounds(i)
                if hi[0] > lo[0]:
                    series.append((lb, val.t[i][lo[0]:hi[0]], val.v[i][lo[0]:hi[0]]))
            vec_drop = val.drop
            series = [(_drop_name(lb) if d else lb, t, v) for (lb, t, v), d in zip(series, vec_drop, strict=False)]
            res = QueryResult("matrix", series=series)
        else:
            vec = finalize(val)
            series = [(vec.labels[i], ts, vec.v[i]) for i in range(len(vec)) if vec.ok[i, 0]]
            res = QueryResult("vector", series=series)
        res.warnings, res.infos = ev.warnings, ev.infos
        return res

    def range_query(self, querier: Querier, query: str, start_ms: int, end_ms: int, step_ms: int) -> QueryResult:
        if step_ms <= 0:
            raise bad_data("zero or negative query resolution step widths are not accepted. "
                           "Try a positive integer")
        if end_ms < start_ms:
            raise bad_data("end timestamp must not be before start time")
        parsed = parse(query)
        ev = self._evaluator(querier, start_ms, end_ms, step_ms, query)
        ts = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
        expr = A.unparen(parsed.expr)
        if isinstance(expr, A.MatrixSel | A.Subquery) or isinstance(expr, A.StringLit):
            kind = "string" if isinstance(expr, A.StringLit) else "range vector"
            raise bad_data(f'invalid expression type "{kind}" for range query, must be Scalar or instant Vector')
        val = ev.eval(parsed.expr, ts)
        if isinstance(val, Scalar):
            val = Vector([{}], val.v[None, :], np.ones((1, len(ts)), bool), np.zeros(1, bool))
        if not isinstance(val, Vector):
            raise bad_data("invalid expression type for range query, must be Scalar or instant Vector")
        vec = finalize(val)
        series = []
        for i in range(len(vec)):
            ok = vec.ok[i]
            if ok.any():
                series.append((vec.labels[i], ts[ok], vec.v[i][ok]))
        series.sort(key=lambda s: sorted(s[0].items()))
        res = QueryResult("matrix", series=series)
        res.warnings, res.infos = ev.warnings, ev.infos
        return res


def _drop_name(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != "__name__"}
