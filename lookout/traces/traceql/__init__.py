"""TraceQL: parser, validator and the DuckDB planner for span search.

``parse(text) -> ast.Query`` (syntax only), ``validate(query)`` (types, regexes, unsupported
constructs), ``plan(query) -> SpansetPlan`` and ``to_sql(plan, relation) -> (sql, params)``.
"""

from .ast import Query
from .errors import (
    TraceQLError,
    TraceQLParseError,
    TraceQLUnsupportedError,
    TraceQLValidationError,
)
from .parser import parse
from .sql import TRACE_COLUMNS, Predicate, SpansetPlan, plan, plan_query, to_sql
from .validate import validate

__all__ = [
    "TRACE_COLUMNS",
    "Predicate",
    "Query",
    "SpansetPlan",
    "TraceQLError",
    "TraceQLParseError",
    "TraceQLUnsupportedError",
    "TraceQLValidationError",
    "parse",
    "plan",
    "plan_query",
    "to_sql",
    "validate",
]
