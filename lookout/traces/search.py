"""Trace search and tag discovery over head + blocks, executed by DuckDB.

Python only plans: it picks the tenant's blocks overlapping the time range, registers the head's
Arrow tables, and builds one SQL statement. Span filters (from TraceQL or legacy ``tags``) become
a WHERE clause with ``?`` parameters; trace-level facts (root service and name, trace start and
duration) come from a GROUP BY over the matched traces' spans. Results come back as Arrow.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from lookout.traces.store import TraceStore

SEARCH_COLUMNS = [
    "trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_unix_nano", "duration_nano",
    "status_code", "status_message", "service_name", "attrs_str", "attrs_int", "attrs_dbl", "attrs_bool",
    "attrs_other", "res_attrs_str", "res_attrs_int", "res_attrs_dbl", "res_attrs_bool", "res_attrs_other",
    "scope_name", "scope_version",
]
TAG_MAPS = {"span": ["attrs_str", "attrs_int", "attrs_dbl", "attrs_bool", "attrs_other"],
            "resource": ["res_attrs_str", "res_attrs_int", "res_attrs_dbl", "res_attrs_bool", "res_attrs_other"]}
VALUE_TYPES = {"str": "string", "int": "int", "dbl": "float", "bool": "bool"}
INTRINSICS = ["duration", "kind", "name", "rootName", "rootServiceName", "status", "statusMessage",
              "traceDuration"]


Tree = int | tuple[str, "Tree", "Tree"]


@dataclass(slots=True)
class SpanFilter:
    """Span predicates (one per TraceQL spanset) and how they combine per trace: ``tree`` is a
    predicate index or ``("&&" | "||", left, right)``. A trace matches when the tree holds with
    each leaf read as "some span of the trace matches this predicate"; the matched spans are
    those matching any leaf. ``trace_columns`` are trace-level columns the predicates read."""

    predicates: list[tuple[str, list]] = field(default_factory=lambda: [("TRUE", [])])
    tree: Tree = 0
    trace_columns: frozenset[str] = frozenset()


def _tree_sql(tree: Tree) -> str:
    if isinstance(tree, int):
        return f"bool_or(side = {tree})"
    op, left, right = tree
    return f"({_tree_sql(left)} {'AND' if op == '&&' else 'OR'} {_tree_sql(right)})"


_TRACE_COLUMNS_SQL = """
  SELECT sp.*, tr.trace_root_service, tr.trace_root_name, tr.trace_duration_nano FROM spans sp JOIN (
    SELECT trace_id,
           arg_min(service_name, start_time_unix_nano) FILTER (WHERE octet_length(parent_span_id) = 0)
             AS trace_root_service,
           arg_min(name, start_time_unix_nano) FILTER (WHERE octet_length(parent_span_id) = 0)
             AS trace_root_name,
           max(start_time_unix_nano + duration_nano) - min(start_time_unix_nano) AS trace_duration_nano
    FROM spans GROUP BY trace_id) tr USING (trace_id)"""


_local = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(config={"threads": 2})
        _local.con = con
    return con


class _Relation:
    """Registers a tenant's head tables and block files as one ``spans`` view on a cursor."""

    def __init__(self, store: TraceStore, tenant: str, start_ns: int | None, end_ns: int | None,
                 columns: list[str]) -> None:
        self.cur = _connection().cursor()
        parts = []
        cols = ", ".join(columns)
        for i, table in enumerate(store.head.tables(tenant)):
            name = f"head_{i}"
            self.cur.register(name, table.select(columns))
            parts.append(f"SELECT {cols} FROM {name}")
        files = [f for m in store.block_list(tenant, start_ns, end_ns) for f in store.blocks.data_files(m)]
        if files:
            flist = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            parts.append(f"SELECT {cols} FROM read_parquet([{flist}])")
        self.empty = not parts
        where = []
        if start_ns is not None:
            where.append(f"start_time_unix_nano + duration_nano >= {int(start_ns)}")
        if end_ns is not None:
            where.append(f"start_time_unix_nano <= {int(end_ns)}")
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        if parts:
            union = " UNION ALL ".join(parts)
            self.cur.execute(f"CREATE OR REPLACE TEMP VIEW spans AS SELECT * FROM ({union}){cond}")

    def close(self) -> None:
        self.cur.close()


def search(store: TraceStore, tenant: str, flt: SpanFilter, *, start_ns: int | None = None,
           end_ns: int | None = None, min_duration_ns: int | None = None, max_duration_ns: int | None = None,
           limit: int = 20, spans_per_set: int = 3) -> list[dict]:
    rel = _Relation(store, tenant, start_ns, end_ns, SEARCH_COLUMNS)
    try:
        if rel.empty:
            return []
        params: list = []
        side_sql = []
        source = f"({_TRACE_COLUMNS_SQL})" if flt.trace_columns else "spans"
        for i, (pred, p) in enumerate(flt.predicates):
            side_sql.append(f"SELECT trace_id, span_id, start_time_unix_nano, duration_nano, service_name, "
                            f"{i} AS side FROM {source} WHERE ({pred})")
            params.extend(p)
        matched = " UNION ALL ".join(side_sql)
        trace_filter = []
        if min_duration_ns is not None:
            trace_filter.append(f"t_end - t_start >= {int(min_duration_ns)}")
        if max_duration_ns is not None:
            trace_filter.append(f"t_end - t_start <= {int(max_duration_ns)}")
        tf = (" WHERE " + " AND ".join(trace_filter)) if trace_filter else ""
        sql = f"""
        WITH m AS ({matched}),
        hit AS (SELECT trace_id FROM m GROUP BY trace_id HAVING {_tree_sql(flt.tree)}),
        t AS (
          SELECT s.trace_id, min(s.start_time_unix_nano) AS t_start,
                 max(s.start_time_unix_nano + s.duration_nano) AS t_end,
                 arg_min(s.service_name, s.start_time_unix_nano)
                   FILTER (WHERE octet_length(s.parent_span_id) = 0) AS root_service,
                 arg_min(s.name, s.start_time_unix_nano)
                   FILTER (WHERE octet_length(s.parent_span_id) = 0) AS root_name
          FROM spans s SEMI JOIN hit USING (trace_id) GROUP BY s.trace_id),
        top AS (SELECT * FROM t{tf} ORDER BY t_start DESC, trace_id LIMIT {int(limit)}),
        ms AS (SELECT DISTINCT ON (trace_id, span_id) trace_id, span_id, start_time_unix_nano, duration_nano,
                      service_name FROM m SEMI JOIN top USING (trace_id)),
        ranked AS (SELECT *, row_number() OVER (PARTITION BY trace_id ORDER BY start_time_unix_nano, span_id) AS rn,
                          count(*) OVER (PARTITION BY trace_id) AS matched FROM ms)
        SELECT top.trace_id, top.t_start, top.t_end, top.root_service, top.root_name,
               list({{'span_id': r.span_id, 'start': r.start_time_unix_nano, 'duration': r.duration_nano,
                      'service': r.service_name}} ORDER BY r.start_time_unix_nano)
                 FILTER (WHERE r.rn <= {int(spans_per_set)}) AS spans,
               max(r.matched) AS matched
        FROM top JOIN ranked r USING (trace_id)
        GROUP BY ALL ORDER BY top.t_start DESC, top.trace_id
        """
        rows = rel.cur.sql(sql, params=params).to_arrow_table().to_pylist()
    finally:
        rel.close()
    return rows


def tag_names(store: TraceStore, tenant: str, start_ns: int | None = None, end_ns: int | None = None,
              scope: str | None = None) -> dict[str, list[str]]:
    """Attribute keys per scope (``span``, ``resource``) seen in the time range."""
    scopes = [scope] if scope in TAG_MAPS else list(TAG_MAPS)
    cols = [c for s in scopes for c in TAG_MAPS[s]]
    rel = _Relation(store, tenant, start_ns, end_ns, ["trace_id", "start_time_unix_nano", "duration_nano", *cols])
    out: dict[str, list[str]] = {s: [] for s in scopes}
    try:
        if rel.empty:
            return out
        for s in scopes:
            unions = " UNION ".join(f"SELECT DISTINCT unnest(map_keys({c})) AS k FROM spans" for c in TAG_MAPS[s])
            keys = rel.cur.sql(f"SELECT k FROM ({unions}) WHERE k IS NOT NULL ORDER BY k").to_arrow_table()
            out[s] = keys.column(0).to_pylist()
    finally:
        rel.close()
    return out


def _matching_spans(store: TraceStore, tenant: str, start_ns: int | None, end_ns: int | None, columns: list[str],
                    flt: SpanFilter | None) -> tuple[_Relation, str, list]:
    """The tenant's spans (``columns`` of them) narrowed to those a filter matches (any of its
    spanset filters: exact for one, a superset for ``&&``): the relation, the SQL to select from
    and its parameters. A filter reads other columns, so then every search column is loaded."""
    if flt is None or not flt.predicates:
        return _Relation(store, tenant, start_ns, end_ns, columns), "spans", []
    rel = _Relation(store, tenant, start_ns, end_ns, SEARCH_COLUMNS)
    source = f"({_TRACE_COLUMNS_SQL})" if flt.trace_columns else "spans"
    where = " OR ".join(f"({pred})" for pred, _ in flt.predicates)
    return rel, f"(SELECT * FROM {source} WHERE {where})", [x for _, ps in flt.predicates for x in ps]


def tag_values(store: TraceStore, tenant: str, scope: str | None, key: str, *, start_ns: int | None = None,
               end_ns: int | None = None, limit: int = 1000, flt: SpanFilter | None = None) -> list[dict]:
    """Distinct values of one attribute with their TraceQL types; ``scope`` None = both scopes.
    ``flt`` (Tempo's ``q``) keeps only the values of the spans it matches."""
    if scope is None and key in ("name", "status", "kind", "statusMessage", "rootServiceName", "rootName"):
        return _intrinsic_values(store, tenant, key, start_ns, end_ns, limit, flt)
    scopes = [scope] if scope in TAG_MAPS else list(TAG_MAPS)
    maps = [c for s in scopes for c in TAG_MAPS[s] if not c.endswith("_other")]
    rel, source, fparams = _matching_spans(store, tenant, start_ns, end_ns,
                                           ["trace_id", "start_time_unix_nano", "duration_nano", *maps], flt)
    try:
        if rel.empty:
            return []
        parts = []
        for c in maps:
            vtype = VALUE_TYPES[c.rsplit("_", 1)[1]]
            parts.append(f"SELECT DISTINCT '{vtype}' AS type, CAST({c}[?] AS VARCHAR) AS value FROM {source}")
        sql = f"SELECT DISTINCT type, value FROM ({' UNION '.join(parts)}) WHERE value IS NOT NULL " \
              f"ORDER BY type, value LIMIT {int(limit)}"
        rows = rel.cur.sql(sql, params=[key, *fparams] * len(parts)).to_arrow_table().to_pylist()
    finally:
        rel.close()
    return rows


_KIND_NAMES = ["unspecified", "internal", "server", "client", "producer", "consumer"]
_STATUS_NAMES = ["unset", "ok", "error"]


def _intrinsic_values(store: TraceStore, tenant: str, key: str, start_ns, end_ns, limit,
                      flt: SpanFilter | None = None) -> list[dict]:
    if key == "status":
        return [{"type": "keyword", "value": v} for v in _STATUS_NAMES]
    if key == "kind":
        return [{"type": "keyword", "value": v} for v in _KIND_NAMES]
    column = {"name": "name", "statusMessage": "status_message", "rootServiceName": "service_name",
              "rootName": "name"}[key]
    own = ["trace_id", "start_time_unix_nano", "duration_nano", "parent_span_id", column]
    rel, source, fparams = _matching_spans(store, tenant, start_ns, end_ns, own, flt)
    try:
        if rel.empty:
            return []
        root = " AND octet_length(parent_span_id) = 0" if key.startswith("root") else ""
        tbl: pa.Table = rel.cur.sql(
            f"SELECT DISTINCT {column} AS value FROM {source} WHERE {column} <> ''{root} ORDER BY 1 "
            f"LIMIT {int(limit)}", params=fparams
        ).to_arrow_table()
    finally:
        rel.close()
    return [{"type": "string", "value": v} for v in tbl.column(0).to_pylist()]
