"""LogQL evaluation: log queries to streams, metric queries to vectors/matrices.

:class:`LogQLEngine` parses and validates a query, then evaluates it over a
:class:`~lookout.logs.model.LogQuerier`. Log selection happens once per range aggregation (over
the union of all step windows); the pipeline runs on the whole Arrow batch; numeric work is
numpy over step matrices.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lookout.logs.model import LogQuerier, SelectHints

from . import ast, rangeagg, vectorops
from .batch import ERROR, ERROR_DETAILS, Batch, from_selection, row_labels, series_ids
from .errors import LimitError, LogQLError
from .parser import parse
from .series import Matrix, Scalar
from .stages import Context, apply_unwrap, run_pipeline
from .template import TemplateError
from .validate import validate

_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_LINE_CHANGERS = (ast.LineFormat, ast.Decolorize, ast.UnpackParser)


@dataclass
class QueryResult:
    """What a query produced; :func:`output.result_to_json` renders it as Loki's ``data``."""

    result_type: str  # streams | matrix | vector | scalar
    steps: np.ndarray
    streams: list[tuple[dict[str, str], list[tuple[int, str]]]] = field(default_factory=list)
    matrix: Matrix | None = None
    scalar: Scalar | None = None
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Stats:
    lines: int = 0
    bytes: int = 0
    returned: int = 0
    started: float = field(default_factory=time.perf_counter)

    def to_json(self) -> dict[str, Any]:
        took = max(time.perf_counter() - self.started, 1e-9)
        return {"summary": {
            "bytesProcessedPerSecond": int(self.bytes / took), "linesProcessedPerSecond": int(self.lines / took),
            "totalBytesProcessed": self.bytes, "totalLinesProcessed": self.lines, "execTime": took,
            "queueTime": 0, "subqueries": 0, "totalEntriesReturned": self.returned, "splits": 0, "shards": 0,
            "totalPostFilterLines": self.returned, "totalStructuredMetadataBytesProcessed": 0,
        }}


def hints_for(log: ast.LogExpr) -> SelectHints:
    """What the store may use to skip data: ``|=`` substrings before the line is rewritten, and a
    trace id from a ``trace_id="<hex>"`` label filter placed before any parser."""
    h = SelectHints()
    parsed = False
    for st in log.stages:
        if isinstance(st, _LINE_CHANGERS):
            break
        if isinstance(st, ast.LineFilter) and st.op == "|=" and len(st.values) == 1 and st.values[0][0] == "str":
            if st.values[0][1]:
                h.contains.append(st.values[0][1])
        elif isinstance(st, (ast.JsonParser, ast.LogfmtParser, ast.RegexpParser, ast.PatternParser,
                             ast.LabelFormat)):
            parsed = True
        elif isinstance(st, ast.LabelFilter) and not parsed and h.trace_id is None:
            tid = _trace_id_filter(st.expr)
            if tid:
                h.trace_id = tid.lower()
    return h


def _trace_id_filter(e: ast.LabelFilterExpr) -> str | None:
    if isinstance(e, ast.LFString):
        if e.name == "trace_id" and e.op == "=" and _HEX32.match(e.value):
            return e.value
        return None
    if isinstance(e, ast.LFBinary) and e.op == "and":
        return _trace_id_filter(e.left) or _trace_id_filter(e.right)
    return None


def _filters_lines(log: ast.LogExpr) -> bool:
    return any(isinstance(s, (ast.LineFilter, ast.LabelFilter, ast.Distinct)) for s in log.stages)


class LogQLEngine:
    """Evaluates LogQL over a :class:`LogQuerier` with Loki-like limits."""

    def __init__(self, *, max_lines: int = 5000, max_series: int = 500, max_range_ns: int = 30 * 24 * 3600 * 10**9):
        self.max_lines = max_lines
        self.max_series = max_series
        self.max_range_ns = max_range_ns

    # ------------------------------------------------------------ public

    def query_range(self, querier: LogQuerier, query: str, start_ns: int, end_ns: int, step_ns: int, *,
                    limit: int = 100, direction: str = "backward", interval_ns: int | None = None) -> QueryResult:
        if end_ns < start_ns:
            raise LogQLError("end timestamp must not be before or equal to start time")
        if step_ns <= 0:
            raise LogQLError("zero or negative query resolution step widths are not accepted. "
                             "Try a positive integer")
        if end_ns - start_ns > self.max_range_ns:
            raise LimitError(f"the query time range exceeds the limit (query length: {(end_ns - start_ns) / 1e9}s, "
                             f"limit: {self.max_range_ns / 1e9}s)")
        expr = self._parse(query)
        if isinstance(expr, ast.LogExpr):
            return self._log_query(querier, expr, start_ns, end_ns, limit, direction)
        steps = np.arange(start_ns, end_ns + 1, step_ns, dtype=np.int64)
        if len(steps) > 11000:
            raise LimitError("exceeded maximum resolution of 11,000 points per timeseries. "
                             "Try decreasing the query resolution (?step=XX)")
        return self._metric_query(querier, expr, steps, instant=False)

    def query_instant(self, querier: LogQuerier, query: str, t_ns: int, *, limit: int = 100,
                      direction: str = "backward") -> QueryResult:
        expr = self._parse(query)
        if isinstance(expr, ast.LogExpr):
            raise LogQLError("log queries are not supported as an instant query type, please change your query "
                             "to a range query type")
        return self._metric_query(querier, expr, np.array([t_ns], dtype=np.int64), instant=True)

    # ------------------------------------------------------------ internals

    def _parse(self, query: str) -> ast.Expr:
        expr = parse(query)
        validate(expr)
        return expr

    def _log_query(self, querier: LogQuerier, expr: ast.LogExpr, start_ns: int, end_ns: int, limit: int,
                   direction: str) -> QueryResult:
        if limit > self.max_lines:
            raise LimitError(f"max entries limit per query exceeded, limit > max_entries_limit "
                             f"({limit} > {self.max_lines})")
        if direction not in ("forward", "backward"):
            raise LogQLError(f"invalid direction: {direction}")
        stats = _Stats()
        hints = hints_for(expr)
        hints.direction = direction
        if not _filters_lines(expr):
            hints.limit = limit
        sel = querier.select(expr.matchers, start_ns, end_ns, hints)
        b = from_selection(sel)
        stats.lines = len(b)
        b = self._pipeline(b, expr.stages)
        # Newest first for backward, oldest first for forward; keep `limit` entries.
        order = np.argsort(b.ts, kind="stable")
        if direction == "backward":
            order = order[::-1]
        order = order[:limit]
        b = b.take(order)
        names = sorted(n for n in b.labels)
        gid, first = series_ids_with_error(b, names)
        lines = b.line.to_pylist()
        streams: list[tuple[dict[str, str], list[tuple[int, str]]]] = []
        pos: dict[int, int] = {}
        for i, g in enumerate(gid.tolist()):
            if g not in pos:
                pos[g] = len(streams)
                streams.append((row_labels(b, int(first[g]), names, with_error=True), []))
            streams[pos[g]][1].append((int(b.ts[i]), lines[i]))
        stats.returned = len(lines)
        return QueryResult("streams", np.array([end_ns]), streams=streams, stats=stats.to_json())

    def _pipeline(self, b: Batch, stages: list[ast.Stage]) -> Batch:
        ctx = Context()
        try:
            return run_pipeline(b, stages, ctx)
        except TemplateError as e:
            raise LogQLError(str(e)) from None
        finally:
            ctx.close()

    def _metric_query(self, querier: LogQuerier, expr: ast.Expr, steps: np.ndarray, instant: bool) -> QueryResult:
        stats = _Stats()
        res = self._eval(querier, expr, steps, instant, stats)
        if isinstance(res, Scalar):
            if instant:
                return QueryResult("scalar", steps, scalar=res, stats=stats.to_json())
            res = Matrix([{}], res.values[None, :].copy(), np.ones((1, len(steps)), dtype=bool))
        if len(res) > self.max_series:
            raise LimitError(f"maximum of series ({self.max_series}) reached for a single query")
        return QueryResult("vector" if instant else "matrix", steps, matrix=res, stats=stats.to_json())

    def _eval(self, q: LogQuerier, e: ast.Expr, steps: np.ndarray, instant: bool, stats: _Stats) -> Matrix | Scalar:
        t = len(steps)
        if isinstance(e, ast.Literal):
            return Scalar(np.full(t, e.value))
        if isinstance(e, ast.VectorLit):
            return Matrix([{}], np.full((1, t), e.value), np.ones((1, t), dtype=bool))
        if isinstance(e, ast.Paren):
            return self._eval(q, e.expr, steps, instant, stats)
        if isinstance(e, ast.RangeAgg):
            return self._range_agg(q, e, steps, stats)
        if isinstance(e, ast.VectorAgg):
            if e.op == "approx_topk" and not instant:
                raise LogQLError("approx_topk is only supported on instant queries")
            inner = self._eval(q, _pushdown(e), steps, instant, stats)
            if isinstance(inner, Scalar):
                raise LogQLError(f"unexpected scalar argument to {e.op}")
            return vectorops.aggregate(e.op, inner, e.grouping, e.param, instant)
        if isinstance(e, ast.LabelReplace):
            inner = self._eval(q, e.expr, steps, instant, stats)
            if isinstance(inner, Scalar):
                raise LogQLError("unexpected scalar argument to label_replace")
            return vectorops.label_replace(inner, e.dst, e.replacement, e.src, e.regex)
        if isinstance(e, ast.BinOp):
            lhs = self._eval(q, e.lhs, steps, instant, stats)
            rhs = self._eval(q, e.rhs, steps, instant, stats)
            if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
                return vectorops.scalar_scalar(e.op, lhs, rhs)
            if isinstance(lhs, Scalar):
                return vectorops.vector_scalar(e.op, rhs, lhs, True, e.bool_mod)  # type: ignore[arg-type]
            if isinstance(rhs, Scalar):
                return vectorops.vector_scalar(e.op, lhs, rhs, False, e.bool_mod)
            if e.op in ("and", "or", "unless"):
                return vectorops.set_op(e.op, lhs, rhs, e.matching)
            return vectorops.vector_vector(e.op, lhs, rhs, e.matching, e.bool_mod)
        if isinstance(e, ast.LogExpr):
            raise LogQLError("log queries are not allowed in metric expressions")
        raise LogQLError(f"unsupported expression {type(e).__name__}")

    def _range_agg(self, q: LogQuerier, e: ast.RangeAgg, steps: np.ndarray, stats: _Stats) -> Matrix:
        r = e.range
        lo = int(steps[0]) - r.offset_ns - r.range_ns + 1
        hi = int(steps[-1]) - r.offset_ns + 1
        sel = q.select(r.log.matchers, lo, hi, hints_for(r.log))
        b = from_selection(sel)
        stats.lines += len(b)
        ctx = Context()
        try:
            b = run_pipeline(b, r.log.stages, ctx)
            if r.unwrap is not None:
                b = apply_unwrap(b, r.unwrap, ctx)
        except TemplateError as err:
            raise LogQLError(str(err)) from None
        finally:
            ctx.close()
        eq = {m.name: m.value for m in r.log.matchers if m.op == "="}
        return rangeagg.evaluate(b, e, steps, self.max_series, eq)


# Range aggregations whose per-series results the outer vector aggregation merely combines with the same
# operator, so grouping the samples first gives the same numbers with far fewer series (Loki's pushdown).
_PUSHDOWN = {
    "sum": {"count_over_time", "rate", "bytes_over_time", "bytes_rate", "sum_over_time"},
    "min": {"min_over_time"},
    "max": {"max_over_time"},
}


def _pushdown(e: ast.VectorAgg) -> ast.Expr:
    inner = e.expr
    while isinstance(inner, ast.Paren):
        inner = inner.expr
    if isinstance(inner, ast.RangeAgg) and inner.grouping is None and inner.op in _PUSHDOWN.get(e.op, ()):
        g = e.grouping or ast.Grouping(False, [])
        return ast.RangeAgg(inner.op, inner.range, inner.param, g)
    return e.expr


def series_ids_with_error(b: Batch, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Group rows by label set including the error labels (log queries show them)."""
    if not (np.not_equal(b.err, None).any()):
        return series_ids(b, names)
    import pyarrow as pa

    extra = b.copy()
    extra.labels = dict(b.labels)
    extra.labels[ERROR] = pa.array(b.err, pa.string())
    extra.labels[ERROR_DETAILS] = pa.array(b.details, pa.string())
    gid, first = series_ids(extra, sorted(extra.labels))
    return gid, first


def format_query(query: str) -> str:
    """``/loki/api/v1/format_query``: the query parsed and printed back canonically."""
    expr = parse(query)
    return str(expr)


__all__ = ["LogQLEngine", "QueryResult", "format_query"]
