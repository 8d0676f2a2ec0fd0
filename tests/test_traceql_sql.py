"""TraceQL plans executed by DuckDB over small Arrow tables of the span schema."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from lookout.traces.schema import SPAN_SCHEMA
from lookout.traces.traceql import (
    TraceQLUnsupportedError,
    TraceQLValidationError,
    plan_query,
    to_sql,
)

MS = 1_000_000
T1, T2 = b"\x01" * 16, b"\x02" * 16


def _span(trace: bytes, sid: int, parent: int | None, name: str, **kw: object) -> dict:
    row: dict = {f: None for f in SPAN_SCHEMA.names}
    row.update(
        trace_id=trace,
        span_id=sid.to_bytes(8, "big"),
        parent_span_id=b"" if parent is None else parent.to_bytes(8, "big"),
        name=name,
        start_time_unix_nano=1_000 * sid,
        duration_nano=MS,
    )
    for prefix in ("", "res_"):
        for m in ("attrs_str", "attrs_int", "attrs_dbl", "attrs_bool", "attrs_other"):
            row[prefix + m] = []
    for k, v in kw.items():
        row[k] = list(v.items()) if isinstance(v, dict) else v
    return row


ROWS = [
    _span(
        T1,
        1,
        None,
        "GET /api",
        kind=2,
        status_code=2,
        duration_nano=150 * MS,
        service_name="frontend",
        attrs_str={"http.method": "GET", "shadow": "span"},
        attrs_int={"http.status_code": 500, "typed": 1},
        res_attrs_str={"service.name": "frontend", "region": "us-east-1", "shadow": "res", "typed": "x"},
    ),
    _span(
        T1,
        2,
        1,
        "SELECT",
        kind=3,
        status_code=1,
        duration_nano=20 * MS,
        service_name="db",
        status_message="fine",
        attrs_str={"db.system": "postgresql"},
        attrs_dbl={"ratio": 0.5},
        attrs_bool={"cached": True},
        res_attrs_str={"service.name": "db"},
    ),
    _span(
        T2,
        3,
        None,
        "POST /orders",
        kind=2,
        status_code=None,
        duration_nano=2_000 * MS,
        service_name="orders",
        status_message="Forbidden",
        attrs_int={"http.status_code": 200},
        attrs_dbl={"weight": 200.0},
        attrs_str={"foo bar": "v"},
        res_attrs_str={"service.name": "orders"},
    ),
    _span(
        T2,
        4,
        3,
        "consume",
        kind=5,
        status_code=2,
        duration_nano=500_000,
        service_name="worker",
        attrs_bool={"cached": False},
        res_attrs_str={"region": "us-west-1"},
    ),
]
NAMES = {r["span_id"]: r["name"] for r in ROWS}
ALL = {r["name"] for r in ROWS}


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    table = pa.Table.from_pylist(ROWS, schema=SPAN_SCHEMA)
    c = duckdb.connect()
    c.register("spans", table)
    return c


def match(con: duckdb.DuckDBPyConnection, query: str, **kw: object) -> set[str]:
    sql, params = to_sql(plan_query(query), "spans", **kw)  # type: ignore[arg-type]
    assert sql.count("?") == len(params)
    return {NAMES[r[0]] for r in con.execute(f"SELECT span_id FROM ({sql})", params).fetchall()}


CASES = [
    # empty and literal filters
    ("{ }", ALL),
    ("{}", ALL),
    ("{ true }", ALL),
    ("{ false }", set()),
    ("{ 1 = 2 }", set()),
    ("{ 1 < 2 }", ALL),
    ('{ "a" =~ "a|b" }', ALL),
    # name / statusMessage, both spellings
    ('{ name = "SELECT" }', {"SELECT"}),
    ('{ span:name != "SELECT" }', ALL - {"SELECT"}),
    ('{ name =~ "GET.*" }', {"GET /api"}),
    ('{ name =~ "GET" }', set()),  # anchored
    ('{ name !~ ".*/.*" }', {"SELECT", "consume"}),
    ('{ statusMessage = "Forbidden" }', {"POST /orders"}),
    ('{ span:statusMessage =~ "f.*" }', {"SELECT"}),
    ("{ name != nil }", ALL),
    # status (NULL status_code is unset)
    ("{ status = error }", {"GET /api", "consume"}),
    ("{ span:status = ok }", {"SELECT"}),
    ("{ status = unset }", {"POST /orders"}),
    ("{ status != error }", {"SELECT", "POST /orders"}),
    # kind
    ("{ kind = server }", {"GET /api", "POST /orders"}),
    ("{ span:kind = consumer }", {"consume"}),
    ("{ kind != client }", ALL - {"SELECT"}),
    ("{ kind = internal }", set()),
    # duration literals in every unit
    ("{ duration > 100ms }", {"GET /api", "POST /orders"}),
    ("{ span:duration >= 1.5s }", {"POST /orders"}),
    ("{ duration < 2m }", ALL),
    ("{ duration <= 500us }", {"consume"}),
    ("{ duration = 500000ns }", {"consume"}),
    ("{ duration > 10us && duration < 100ms }", {"SELECT", "consume"}),
    ("{ duration = 20ms }", {"SELECT"}),
    # ints against attrs_int and attrs_dbl
    ("{ span.http.status_code >= 400 }", {"GET /api"}),
    ("{ span.http.status_code = 200 }", {"POST /orders"}),
    ("{ .http.status_code < 500 }", {"POST /orders"}),
    ("{ .weight = 200 }", {"POST /orders"}),
    ("{ .weight > 199.5 }", {"POST /orders"}),
    ("{ span.ratio < 1 }", {"SELECT"}),
    ("{ .ratio = 0.5 }", {"SELECT"}),
    ('{ span.http.status_code = "500" }', set()),  # type mismatch: false
    ('{ span.http.status_code != "500" }', set()),  # ... for != too
    # strings
    ('{ span.http.method = "GET" }', {"GET /api"}),
    ('{ span.http.method >= "G" }', {"GET /api"}),
    ('{ span.http.method < "G" }', set()),
    ('{ span.http.method != "POST" }', {"GET /api"}),  # != on a missing attribute is false
    ('{ !(span.http.method = "GET") }', ALL - {"GET /api"}),  # but ! of = is true
    ('{ span."foo bar" = "v" }', {"POST /orders"}),
    ('{ ."foo bar" =~ "v|w" }', {"POST /orders"}),
    # regex anchoring on attributes
    ('{ span.db.system =~ "postgres" }', set()),
    ('{ span.db.system =~ "postgres.*" }', {"SELECT"}),
    ('{ .db.system =~ "postgresql|mysql" }', {"SELECT"}),
    ('{ .db.system !~ "mysql" }', {"SELECT"}),  # missing attribute: false
    ('{ .db.system !~ "postgres.*" }', set()),
    # booleans
    ("{ .cached = true }", {"SELECT"}),
    ("{ span.cached != true }", {"consume"}),
    ("{ .cached }", {"SELECT"}),
    ("{ !.cached }", ALL - {"SELECT"}),
    ("{ .cached = false || .ratio > 0 }", {"SELECT", "consume"}),
    # nil
    ("{ span.db.system = nil }", ALL - {"SELECT"}),
    ("{ span.db.system != nil }", {"SELECT"}),
    ("{ .region != nil }", {"GET /api", "consume"}),
    ("{ resource.region = nil }", {"SELECT", "POST /orders"}),
    ("{ span.region = nil }", ALL),
    ("{ .nothing = nil }", ALL),
    # resource attributes and service.name
    ('{ resource.region = "us-east-1" }', {"GET /api"}),
    ('{ resource.service.name = "frontend" }', {"GET /api"}),
    ('{ resource.service.name =~ "o.*|w.*" }', {"POST /orders", "consume"}),
    ('{ .service.name = "worker" }', {"consume"}),  # via the service_name column
    ('{ resource.service.name != "db" }', ALL - {"SELECT"}),
    # unscoped: a span attribute of any type shadows the resource attribute
    ('{ .shadow = "span" }', {"GET /api"}),
    ('{ .shadow = "res" }', set()),
    ('{ resource.shadow = "res" }', {"GET /api"}),
    ('{ .typed = "x" }', set()),
    ("{ .typed = 1 }", {"GET /api"}),
    ('{ resource.typed = "x" }', {"GET /api"}),
    # boolean structure
    ("{ kind = server && status = error }", {"GET /api"}),
    ('{ kind = consumer || name = "SELECT" }', {"SELECT", "consume"}),
    ("{ !(kind = server || status = error) }", {"SELECT"}),
    ("{ (kind = server || kind = client) && duration < 1s }", {"GET /api", "SELECT"}),
    ('{ "SELECT" = name }', {"SELECT"}),
    ("{ 400 <= span.http.status_code }", {"GET /api"}),
    # spansets combined per trace
    ('{ name = "SELECT" } && { kind = server }', {"SELECT", "GET /api"}),
    ('{ name = "SELECT" && kind = server }', set()),
    ('{ name = "SELECT" } && { name = "consume" }', set()),
    ('{ name = "SELECT" } || { name = "consume" }', {"SELECT", "consume"}),
    ('{ name = "SELECT" } || { name = "nothing" }', {"SELECT"}),
    ('({ name = "SELECT" } && { name = "consume" }) || { kind = server }', {"GET /api", "POST /orders"}),
    ("{ status = error } && { kind = server }", {"GET /api", "consume", "POST /orders"}),
    ('{ status = error } && { kind = server } && { name = "SELECT" }', {"GET /api", "SELECT"}),
    ('({ status = ok } || { name = "consume" }) && { kind = server }', ALL),
    # hints are accepted and ignored
    ("{ kind = server } with (most_recent=true)", {"GET /api", "POST /orders"}),
]


@pytest.mark.parametrize(("query", "expected"), CASES)
def test_matches(con: duckdb.DuckDBPyConnection, query: str, expected: set[str]) -> None:
    assert match(con, query) == expected


TRACE_CASES = [
    ('{ rootServiceName = "frontend" }', {"GET /api", "SELECT"}),
    ('{ trace:rootService = "orders" && kind = consumer }', {"consume"}),
    ('{ trace:rootName = "POST /orders" }', {"POST /orders", "consume"}),
    ('{ rootName =~ "GET.*" }', {"GET /api", "SELECT"}),
    ("{ traceDuration > 1s }", {"POST /orders", "consume"}),
    ("{ trace:duration < 1s }", {"GET /api", "SELECT"}),
    ('{ rootServiceName = "frontend" } || { traceDuration > 1s }', ALL),
]


@pytest.mark.parametrize(("query", "expected"), TRACE_CASES)
def test_trace_level_intrinsics_derived(
    con: duckdb.DuckDBPyConnection, query: str, expected: set[str]
) -> None:
    assert match(con, query, derive_trace_columns=True) == expected


def test_trace_level_columns_provided_by_caller(con: duckdb.DuckDBPyConnection) -> None:
    p = plan_query('{ trace:rootService = "orders" } && { status = error }')
    assert p.trace_columns == {"trace_root_service"}
    rel = "(SELECT *, CASE WHEN name IN ('POST /orders', 'consume') THEN 'orders' ELSE 'frontend' END"
    rel += " AS trace_root_service FROM spans)"
    sql, params = to_sql(p, rel)
    got = {NAMES[r[0]] for r in con.execute(f"SELECT span_id FROM ({sql})", params).fetchall()}
    assert got == {"POST /orders", "consume"}


def test_plan_shape_and_parameters() -> None:
    p = plan_query('{ resource.service.name = "frontend" && span.http.method = "GET" }')
    assert p.exact and p.combine == "and" and len(p.sides) == 1
    assert "frontend" not in p.where_sql and "GET" not in p.where_sql
    assert p.params == ["frontend", "http.method", "GET"]
    assert p.where_sql.count("?") == len(p.params)

    p = plan_query('{ .a = 1 } || { .b = "x" } || { status = error }')
    assert p.combine == "or" and not p.exact and len(p.leaves) == 3
    assert p.tree == ("||", ("||", 0, 1), 2)
    assert p.where_sql.count("?") == len(p.params)

    assert plan_query("{ .a } && ({ .b } || { .c })").combine == "mixed"
    assert plan_query("{ }").where_sql == "TRUE"
    assert plan_query("{ }").columns == frozenset()
    assert plan_query('{ span.a = "x" && kind = server }').columns == {"attrs_str", "kind"}
    assert plan_query("{ .a != nil }").columns == {
        f"{p}attrs_{t}" for p in ("", "res_") for t in ("str", "int", "dbl", "bool", "other")
    }


def test_where_sql_is_a_usable_prefilter(con: duckdb.DuckDBPyConnection) -> None:
    p = plan_query('{ name = "SELECT" } && { name = "consume" }')
    rows = con.execute(f"SELECT name FROM spans WHERE {p.where_sql}", p.params).fetchall()
    assert {r[0] for r in rows} == {"SELECT", "consume"}  # superset; to_sql applies the && per trace


def test_quotes_and_injection_are_parameters(con: duckdb.DuckDBPyConnection) -> None:
    assert match(con, """{ name = "x' OR 1=1 --" }""") == set()
    assert match(con, '{ span."a\'b" = "v" }') == set()


@pytest.mark.parametrize(
    ("query", "construct"),
    [
        ("{ .a } >> { .b }", ">>"),
        ("{ .a } ~ { .b }", "~"),
        ("{ } | count() > 1", "scalar filters"),
        ("{ } | select(.a)", "select()"),
        ("{ } | by(.a)", "by()"),
        ("{ } | rate()", "metrics functions"),
        ("{ .a } | { .b }", "pipelines"),
        ("{ span:childCount = 0 }", "span:childCount"),
        ('{ event.foo = "bar" }', "event attributes"),
        ('{ event:name = "x" }', "event:name"),
        ("{ .a = .b }", "two fields"),
        ("{ .a + 1 = 2 }", "arithmetic"),
        ("{ parent.a = 1 }", "parent"),
    ],
)
def test_unsupported(query: str, construct: str) -> None:
    with pytest.raises(TraceQLUnsupportedError) as info:
        plan_query(query)
    assert construct in str(info.value)


@pytest.mark.parametrize(
    "query", ['{ 1 = "foo" }', "{ status > ok }", '{ .a =~ "[" }', "{ span:status = nil }"]
)
def test_plan_validates(query: str) -> None:
    with pytest.raises(TraceQLValidationError):
        plan_query(query)
