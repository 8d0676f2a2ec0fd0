"""Semantic checks on a parsed TraceQL query (Tempo's ``ast_validate.go``).

``validate(query)`` raises ``TraceQLValidationError`` for type errors (``{ 1 = "foo" }``),
non-boolean filters (``{ 1 + 1 }``), invalid regexes, ``nil`` against intrinsics, aggregates and
``by()`` that do not reference the span, ``topk(0)`` and misuse of ``compare()``; then
``TraceQLUnsupportedError`` for constructs Tempo parses but does not execute either (``parent``,
scalar filters with aggregates on both sides, comparisons between scalar pipelines).
"""

from __future__ import annotations

import re

from . import ast
from .errors import TraceQLUnsupportedError, TraceQLValidationError

NUMERIC = frozenset({"int", "float", "duration", "number"})
ANY = "attr"  # an attribute: its type is only known per span


def validate(query: ast.Query) -> None:
    v = _Validator()
    v.node(query.expr, root=True)
    if v.unsupported is not None:
        message, span = v.unsupported
        raise TraceQLUnsupportedError(message, span)


class _Validator:
    def __init__(self) -> None:
        self.unsupported: tuple[str, ast.Span] | None = None

    def fail(self, message: str, node: ast.Node) -> TraceQLValidationError:
        return TraceQLValidationError(message, node.span)

    def unsupported_construct(self, message: str, node: ast.Node) -> None:
        if self.unsupported is None:
            self.unsupported = (message, node.span)

    # -- query level ---------------------------------------------------------------------------

    def node(self, node: ast.Node, root: bool = False) -> None:
        match node:
            case ast.SpansetFilter(expr=expr):
                if expr is not None:
                    t = self.field(expr)
                    if t not in ("bool", ANY):
                        raise self.fail(f"spanset filter must evaluate to a boolean, not {t}: {node}", node)
            case ast.SpansetOperation(left=left, right=right):
                self.node(left)
                self.node(right)
            case ast.Pipeline(stages=stages):
                for i, stage in enumerate(stages):
                    self.node(stage)
                    if i + 1 < len(stages) and _is_compare(stage):
                        raise self.fail("compare() cannot be followed by another stage", stages[i + 1])
            case ast.ScalarFilter(left=left, right=right):
                for side in (left, right):
                    self.scalar(side)
                if _contains(left, ast.Pipeline) or _contains(right, ast.Pipeline):
                    self.unsupported_construct(f"comparisons of scalar pipelines: {node}", node)
                elif not isinstance(left, ast.Aggregate) or _contains(right, ast.Aggregate):
                    self.unsupported_construct(
                        f"scalar filters other than 'aggregate op constant': {node}", node
                    )
            case ast.ScalarOp(left=left, right=right):
                self.scalar(left)
                self.scalar(right)
            case ast.Aggregate():
                self.aggregate(node)
            case ast.GroupBy(expr=expr):
                self.field(expr)
                if not _references_span(expr):
                    raise self.fail(f"by() must reference the span: {node}", node)
            case ast.Select(attributes=attrs):
                for a in attrs:
                    self.field(a)
            case ast.Coalesce() | ast.Static():
                pass
            case ast.MetricsAggregate(filter=flt, attribute=attr, by=by):
                if flt is not None:
                    self.node(flt)
                if attr is not None:
                    self.field(attr)
                for a in by:
                    self.field(a)
            case ast.SecondStage(k=k):
                if k <= 0:
                    raise self.fail(f"{node.func} requires a positive k, got {k}", node)  # type: ignore[attr-defined]
            case ast.MetricsCompare(expr=expr):
                if _is_compare(expr):
                    raise self.fail("compare() cannot be filtered", node)
                self.node(expr)
            case ast.MetricsMath(left=left, right=right):
                for side in (left, right):
                    if _is_compare(side):
                        raise self.fail("compare() cannot be used in arithmetic", node)
                    self.node(side)
            case _:
                raise AssertionError(f"unexpected node {node!r}")

    def scalar(self, node: ast.Node) -> None:
        if isinstance(node, ast.Pipeline):
            self.node(node)
        elif isinstance(node, ast.Aggregate):
            self.aggregate(node)
        elif isinstance(node, ast.ScalarOp):
            self.scalar(node.left)
            self.scalar(node.right)

    def aggregate(self, node: ast.Aggregate) -> None:
        if node.expr is None:
            return
        t = self.field(node.expr)
        if t not in NUMERIC and t != ANY:
            raise self.fail(f"{node.func}() needs a numeric argument, not {t}: {node}", node)
        if not _references_span(node.expr):
            raise self.fail(f"{node.func}() must reference the span: {node}", node)

    # -- field expressions: return the expression's type ---------------------------------------

    def field(self, node: ast.FieldExpr) -> str:
        match node:
            case ast.Static(type=t):
                return t
            case ast.Attribute(parent=parent):
                if parent:
                    self.unsupported_construct(f"parent attributes: {node}", node)
                return ANY
            case ast.Intrinsic():
                t = ast.INTRINSIC_TYPES[node.canonical]
                if t == "parent":
                    self.unsupported_construct("the parent intrinsic", node)
                    return ANY
                return t
            case ast.UnaryOp(op="!", operand=operand):
                t = self.field(operand)
                if t not in ("bool", ANY):
                    raise self.fail(f"'!' needs a boolean, not {t}: {node}", node)
                return "bool"
            case ast.UnaryOp(op="-", operand=operand):
                t = self.field(operand)
                if t not in NUMERIC and t != ANY:
                    raise self.fail(f"'-' needs a number, not {t}: {node}", node)
                return t if t in NUMERIC else "number"
            case ast.BinaryOp(op=op, left=left, right=right):
                return self.binary(node, op, left, right)
        raise AssertionError(f"unexpected field expression {node!r}")

    def binary(self, node: ast.BinaryOp, op: str, left: ast.FieldExpr, right: ast.FieldExpr) -> str:
        lt, rt = self.field(left), self.field(right)
        if op in ("&&", "||"):
            if lt not in ("bool", ANY) or rt not in ("bool", ANY):
                raise self.fail(f"'{op}' needs booleans, not {lt} and {rt}: {node}", node)
            return "bool"
        if op in ast.ARITHMETIC_OPERATORS:
            for t in (lt, rt):
                if t not in NUMERIC and t != ANY:
                    raise self.fail(f"'{op}' needs numbers, not {lt} and {rt}: {node}", node)
            return lt if lt == rt and lt in NUMERIC else "number"
        if op in ("=~", "!~"):
            for t in (lt, rt):
                if t not in ("string", ANY):
                    raise self.fail(f"'{op}' needs strings, not {lt} and {rt}: {node}", node)
            if isinstance(right, ast.Static) and right.type == "string":
                try:
                    re.compile(str(right.value))
                except re.error as exc:
                    raise self.fail(f"invalid regex {right}: {exc}", right) from None
            return "bool"
        # comparisons
        if "nil" in (lt, rt):
            other = right if lt == "nil" else left
            if (lt, rt) == ("nil", "nil"):
                return "bool"
            if isinstance(other, ast.Intrinsic) or _is_service_name(other):
                if op != "!=":
                    raise self.fail(f"{other} always exists and cannot be compared to nil: {node}", node)
                return "bool"
            if (lt if other is left else rt) != ANY or op not in ("=", "!="):
                raise self.fail(f"only attributes can be compared to nil with = or !=: {node}", node)
            return "bool"
        if ANY in (lt, rt):
            other = rt if lt == ANY else lt
            if op not in ("=", "!=") and other in ("status", "kind", "bool"):
                raise self.fail(f"'{op}' cannot order {other} values: {node}", node)
            return "bool"
        if lt in NUMERIC and rt in NUMERIC:
            return "bool"
        if lt != rt:
            raise self.fail(f"cannot compare {lt} with {rt}: {node}", node)
        if op not in ("=", "!=") and lt not in ("string",):
            raise self.fail(f"'{op}' cannot order {lt} values: {node}", node)
        return "bool"


def _is_service_name(node: ast.Node) -> bool:
    return isinstance(node, ast.Attribute) and node.scope == "resource" and node.name == "service.name"


def _references_span(node: ast.Node) -> bool:
    return any(isinstance(n, ast.Attribute | ast.Intrinsic) for n in ast.walk(node))


def _contains(node: ast.Node, cls: type) -> bool:
    return any(isinstance(n, cls) for n in ast.walk(node))


def _is_compare(node: ast.Node) -> bool:
    """Whether ``node`` ends in a ``compare()`` metrics function."""
    match node:
        case ast.MetricsAggregate(func="compare"):
            return True
        case ast.Pipeline(stages=stages):
            return _is_compare(stages[-1])
        case ast.MetricsCompare(expr=expr):
            return _is_compare(expr)
    return False
