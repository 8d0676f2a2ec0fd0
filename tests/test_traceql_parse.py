"""TraceQL parser: tree shapes, literals, rendering and error positions."""

from __future__ import annotations

import pytest

from lookout.traces.traceql import TraceQLParseError, parse
from lookout.traces.traceql import ast as a


def filt(query: str) -> a.FieldExpr:
    expr = parse(query).expr
    assert isinstance(expr, a.SpansetFilter) and expr.expr is not None
    return expr.expr


def test_spanset_filter_and_spans() -> None:
    q = parse('{ span.http.method = "GET" }')
    assert q.expr == a.SpansetFilter(
        a.BinaryOp("=", a.Attribute("span", "http.method"), a.Static("string", "GET"))
    )
    assert q.expr.span == (0, 28)
    cmp = q.expr.expr
    assert isinstance(cmp, a.BinaryOp)
    assert cmp.span == (2, 26) and cmp.left.span == (2, 18) and cmp.right.span == (21, 26)
    assert parse("{}").expr == a.SpansetFilter(None)


@pytest.mark.parametrize(
    ("text", "static"),
    [
        ("100ms", a.Static("duration", 100_000_000)),
        ("1.5s", a.Static("duration", 1_500_000_000)),
        ("2m", a.Static("duration", 120_000_000_000)),
        ("10us", a.Static("duration", 10_000)),
        ("500ns", a.Static("duration", 500)),
        ("1h30m", a.Static("duration", 5_400_000_000_000)),
        ("-3s", a.Static("duration", -3_000_000_000)),
        ("42", a.Static("int", 42)),
        ("-7", a.Static("int", -7)),
        ("1.25", a.Static("float", 1.25)),
        ('"a\\"b\\n"', a.Static("string", 'a"b\n')),
        ("`raw\\n`", a.Static("string", "raw\\n")),
        ("true", a.Static("bool", True)),
        ("nil", a.Static("nil")),
        ("error", a.Static("status", "error")),
        ("consumer", a.Static("kind", "consumer")),
    ],
)
def test_literals(text: str, static: a.Static) -> None:
    expr = filt(f"{{ .x = {text} }}")
    assert isinstance(expr, a.BinaryOp) and expr.right == static


@pytest.mark.parametrize(
    ("text", "attr"),
    [
        (".a", a.Attribute(None, "a")),
        (".http.status_code", a.Attribute(None, "http.status_code")),
        ("span.x", a.Attribute("span", "x")),
        ("resource.service.name", a.Attribute("resource", "service.name")),
        ('span."foo bar"', a.Attribute("span", "foo bar")),
        ('."a\\"b"', a.Attribute(None, 'a"b')),
        ('span.attribute."x y"', a.Attribute("span", "attribute.x y")),
        ("parent.span.a", a.Attribute("span", "a", parent=True)),
        ("event.e", a.Attribute("event", "e")),
    ],
)
def test_attributes(text: str, attr: a.Attribute) -> None:
    expr = filt(f"{{ {text} = 1 }}")
    assert isinstance(expr, a.BinaryOp) and expr.left == attr
    assert parse(str(parse(f"{{ {text} = 1 }}"))) == parse(f"{{ {text} = 1 }}")


def test_intrinsics() -> None:
    for name in (
        "name",
        "span:name",
        "status",
        "span:status",
        "kind",
        "span:kind",
        "duration",
        "span:duration",
        "statusMessage",
        "span:statusMessage",
        "rootServiceName",
        "trace:rootService",
        "rootName",
        "trace:rootName",
        "traceDuration",
        "trace:duration",
    ):
        expr = filt(f"{{ {name} != nil }}")
        assert isinstance(expr, a.BinaryOp) and expr.left == a.Intrinsic(name)
    assert a.Intrinsic("traceDuration").canonical == "trace:duration"


def test_precedence() -> None:
    # && and || share one precedence level and associate left, as in Tempo's grammar.
    e = filt("{ .a || .b && .c }")
    assert isinstance(e, a.BinaryOp) and e.op == "&&" and isinstance(e.left, a.BinaryOp)
    e = filt("{ .a = 1 && .b > 2 + 3 * 4 }")
    assert str(e) == ".a = 1 && .b > 2 + 3 * 4"
    assert e.right.right == a.BinaryOp(  # type: ignore[attr-defined]
        "+", a.Static("int", 2), a.BinaryOp("*", a.Static("int", 3), a.Static("int", 4))
    )
    e = filt('{ !"foo" = "bar" }')  # ! binds tighter than =
    assert isinstance(e, a.BinaryOp) and isinstance(e.left, a.UnaryOp)
    e = filt("{ 2 ^ 3 ^ 2 = 1 }")  # ^ is right-associative
    assert str(e) == "2 ^ 3 ^ 2 = 1" and isinstance(e.left.right, a.BinaryOp)  # type: ignore[attr-defined]


def test_spanset_operators() -> None:
    for op in (
        "&&",
        "||",
        ">",
        "<",
        ">>",
        "<<",
        "~",
        "!>",
        "!<",
        "!~",
        "!>>",
        "!<<",
        "&>",
        "&<",
        "&~",
        "&>>",
        "&<<",
    ):
        q = parse(f"{{ .a }} {op} {{ .b }}")
        assert isinstance(q.expr, a.SpansetOperation) and q.expr.op == op
    q = parse("{ .a } && { .b } || { .c } >> { .d }")
    assert str(q) == "{ .a } && { .b } || { .c } >> { .d }"
    assert q.expr.op == "||"  # type: ignore[attr-defined]


def test_pipelines_and_metrics() -> None:
    q = parse("{ .a } | count() > 2 | by(resource.service.name) | select(span.x, name)")
    assert isinstance(q.expr, a.Pipeline) and len(q.expr.stages) == 4
    assert q.expr.stages[1] == a.ScalarFilter(">", a.Aggregate("count"), a.Static("int", 2))
    q = parse("{ status = error } | rate() by (resource.service.name) | topk(10) with(sample=0.1)")
    assert q.hints == (a.Hint("sample", a.Static("float", 0.1)),)
    assert q.expr.stages[1] == a.MetricsAggregate(  # type: ignore[attr-defined]
        "rate", by=(a.Attribute("resource", "service.name"),)
    )
    q = parse("{ } | quantile_over_time(span:duration, .99, .9, .5) by (span.http.target)")
    assert q.expr.stages[1].params == (  # type: ignore[attr-defined]
        a.Static("float", 0.99),
        a.Static("float", 0.9),
        a.Static("float", 0.5),
    )
    q = parse("({status=error} | rate()) / ({} | rate()) * 100")
    assert isinstance(q.expr, a.MetricsMath) and q.expr.op == "*"


@pytest.mark.parametrize(
    "query",
    [
        '{ resource.service.name = "frontend" && span:name = "POST /api/orders" }',
        "{ !(.a = 1 || .b) }",
        "{ -(.a + 1) = 2 }",
        "{ (-2) ^ 2 = 4 }",
        "{ span.http.request_content_length > 10 * 1024 * 1024 }",
        "max(duration) > 3s | { status = error || .http.status = 500 }",
        "({ .a } | count() > 1) && ({ .b } | count() > 1)",
        "{ } | compare({ status = error }, 10)",
        '{ .x = "tab\\there" }',
    ],
)
def test_round_trip(query: str) -> None:
    tree = parse(query)
    assert parse(str(tree)) == tree


@pytest.mark.parametrize(
    ("query", "line", "col", "needle"),
    [
        ("{ .a < }", 1, 8, "unexpected '}'"),
        ("{ attribute = 4 }", 1, 3, "unexpected IDENTIFIER attribute"),
        ("{ .a == 4 }", 1, 7, "unexpected '='"),
        ("{ .a = 3", 1, 9, "unexpected $end"),
        ('{ .a = 1 }\n  && { .b = "x" } | 3', 2, 21, ""),
        ("{ true } + { true }", 1, 10, "'+'"),
        ("{} | topk(10)", 1, 6, "topk"),
        ("{ span:rootName = 1 }", 1, 3, "span:rootName"),
        ('{ .a = "unterminated }', 1, 8, "unterminated"),
        ("{ .a = 99999999999999999999 }", 1, 8, "out of range"),
        ("{ span. }", 1, 8, "attribute name"),
        ("[ true ]", 1, 1, "unexpected character"),
    ],
)
def test_parse_errors(query: str, line: int, col: int, needle: str) -> None:
    with pytest.raises(TraceQLParseError) as info:
        parse(query)
    err = info.value
    assert (err.line, err.col) == (line, col), str(err)
    assert str(err).startswith(f"parse error at line {line}, col {col}: syntax error: ")
    assert needle in str(err)
