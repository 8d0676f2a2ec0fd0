"""Checks that Loki applies after parsing (``syntax.validateExpr`` and the range-aggregation rules)."""

from __future__ import annotations

import re

from . import ast
from .errors import ValidationError

NEEDS_UNWRAP = frozenset({"sum_over_time", "avg_over_time", "min_over_time", "max_over_time", "stddev_over_time",
                          "stdvar_over_time", "quantile_over_time", "first_over_time", "last_over_time",
                          "rate_counter"})
NO_UNWRAP = frozenset({"count_over_time", "bytes_rate", "bytes_over_time"})
NO_GROUPING = frozenset({"rate", "count_over_time", "bytes_rate", "bytes_over_time", "absent_over_time",
                         "sum_over_time", "rate_counter"})


def _matches_empty(op: str, value: str) -> bool:
    if op == "=":
        return value == ""
    if op == "!=":
        return value != ""
    hit = re.fullmatch(value, "") is not None
    return hit if op == "=~" else not hit


def validate_selector(log: ast.LogExpr) -> None:
    if not log.matchers or all(_matches_empty(m.op, m.value) for m in log.matchers):
        raise ValidationError(
            "parse error : queries require at least one regexp or equality matcher that does not have an "
            "empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"
        )


def validate(e: ast.Node) -> None:
    """Raise :class:`ValidationError` for a tree Loki refuses."""
    if isinstance(e, ast.LogExpr):
        validate_selector(e)
    elif isinstance(e, ast.RangeAgg):
        validate_selector(e.range.log)
        op = e.op
        if op in NEEDS_UNWRAP and e.range.unwrap is None:
            raise ValidationError(f"invalid aggregation {op} without unwrap")
        if op in NO_UNWRAP and e.range.unwrap is not None:
            raise ValidationError(f"invalid aggregation {op} with unwrap")
        if op in NO_GROUPING and e.grouping is not None:
            raise ValidationError(f"grouping not allowed for {op} aggregation")
        if op == "quantile_over_time" and e.param is None:
            raise ValidationError("parameter required for operation quantile_over_time")
        if op != "quantile_over_time" and e.param is not None:
            raise ValidationError(f"parameter not allowed for operation {op}")
    elif isinstance(e, ast.VectorAgg):
        validate(e.expr)
    elif isinstance(e, ast.BinOp):
        validate(e.lhs)
        validate(e.rhs)
    elif isinstance(e, (ast.LabelReplace, ast.Paren)):
        validate(e.expr)
