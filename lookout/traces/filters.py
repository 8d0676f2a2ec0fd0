"""Turn what a search request asks for (TraceQL ``q`` or legacy ``tags``) into span predicates.

Both produce a ``SpanFilter`` of SQL predicates with ``?`` parameters over the span columns;
user values never reach the SQL text.
"""

from __future__ import annotations

from lookout.traces.search import SpanFilter

_STATUS = {"unset": 0, "ok": 1, "error": 2}


class FilterError(ValueError):
    """The request's query cannot be turned into a filter (HTTP 400, message shown as is)."""


def tags_filter(pairs: list[tuple[str, str]]) -> SpanFilter:
    """Tempo's legacy ``tags`` search: every ``key=value`` must hold on one span, matching the
    value as text against span and resource attributes of any type."""
    conds: list[str] = []
    params: list = []
    for key, value in pairs:
        if key == "name":
            conds.append("name = ?")
            params.append(value)
        elif key in ("status.code", "status"):
            if value.lower() not in _STATUS:
                raise FilterError(f'invalid tags: status must be one of unset, ok, error, got "{value}"')
            conds.append("status_code = ?")
            params.append(_STATUS[value.lower()])
        elif key == "service.name":
            conds.append("service_name = ?")
            params.append(value)
        else:
            alts = []
            for prefix in ("", "res_"):
                for kind in ("str", "int", "dbl", "bool"):
                    alts.append(f"CAST({prefix}attrs_{kind}[?] AS VARCHAR) = ?")
                    params.extend([key, value])
            conds.append("(" + " OR ".join(alts) + ")")
    if not conds:
        return SpanFilter()
    return SpanFilter(predicates=[(" AND ".join(conds), params)])


def traceql_filter(query: str) -> SpanFilter:
    """A TraceQL query as span predicates; parse errors keep Tempo's wording and position."""
    from lookout.traces.traceql import TraceQLError, parse
    from lookout.traces.traceql.sql import plan

    try:
        p = plan(parse(query))
    except TraceQLError as e:
        raise FilterError(str(e)) from e
    return SpanFilter(predicates=[(leaf.where_sql, list(leaf.params)) for leaf in p.leaves], tree=p.tree,
                      trace_columns=p.trace_columns)
