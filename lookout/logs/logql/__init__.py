"""LogQL: parser, pipeline stages on Arrow, metric evaluation, Loki JSON output.

Public API: :class:`LogQLEngine`, :class:`QueryResult`, :func:`result_to_json`, :func:`parse`,
:func:`format_query`, :class:`LogQLError` (``status`` is the HTTP status to answer).
"""

from .ast import Expr
from .engine import LogQLEngine, QueryResult, format_query
from .errors import LimitError, LogQLError, ParseError, PipelineError, ValidationError
from .output import result_to_json
from .parser import parse

__all__ = [
    "Expr", "LimitError", "LogQLEngine", "LogQLError", "ParseError", "PipelineError", "QueryResult",
    "ValidationError", "format_query", "parse", "result_to_json",
]
