"""Lookout's PromQL engine: Prometheus 3 semantics, vectorised over series x steps in numpy.

Public API: :class:`Engine`, :class:`PromQLError`, :class:`QueryResult`, :func:`result_to_json`,
:func:`parse_query_json`, :func:`format_query`."""

from lookout.metrics.promql.engine import Engine
from lookout.metrics.promql.errors import PromQLError
from lookout.metrics.promql.format import format_query, parse_query_json
from lookout.metrics.promql.jsonfmt import QueryResult, result_to_json

__all__ = ["Engine", "PromQLError", "QueryResult", "format_query", "parse_query_json", "result_to_json"]
