"""LogQL parser: each construct parses and prints back; errors carry Loki's wording and position."""

from __future__ import annotations

import pytest

from lookout.logs.logql import LogQLError, ParseError, ast, format_query, parse
from lookout.logs.logql.engine import LogQLEngine
from lookout.logs.model import MemoryLogQuerier

ROUND_TRIP = [
    '{app="a"}',
    '{app="a", env!="dev", name=~"mysql.+", x!~"y"}',
    '{app="a"} |= "error" != "timeout" |~ "a.b" !~ "(?i)debug"',
    '{app="a"} |= "error" or "fatal"',
    '{app="a"} |= ip("10.0.0.0/8") or "x"',
    '{app="a"} |> "<_> level=debug <_>"',
    '{app="a"} | json',
    '{app="a"} | json first="servers[0]", ua="request.headers[\\"User-Agent\\"]"',
    '{app="a"} | logfmt --strict --keep-empty host="host", fwd_ip="fwd"',
    '{app="a"} | regexp "(?P<method>\\\\w+) (?P<path>\\\\S+)"',
    '{app="a"} | pattern "<ip> - <_> <status>"',
    '{app="a"} | unpack',
    '{app="a"} | line_format "{{.a}} {{__line__}}"',
    '{app="a"} | label_format dst=src, x="{{.y}}"',
    '{app="a"} | decolorize',
    '{app="a"} | drop a, b="c"',
    '{app="a"} | keep a, b=~"c.*"',
    '{app="a"} | logfmt | status >= 400 and duration > 10s or size == 20KB',
    '{app="a"} | logfmt | (a="1" or b="2") and c!="3"',
    '{app="a"} | logfmt | addr=ip("192.168.0.0/16")',
    'count_over_time({app="a"}[5m])',
    'rate({app="a"} |= "x" [1m] offset 1h)',
    'sum by (host) (rate({job="mysql"} | json | duration > 10s [1m]))',
    'quantile_over_time(0.99, {app="a"} | json | unwrap latency | __error__="" [1m]) by (cluster)',
    'avg_over_time({app="a"} | logfmt | unwrap duration(latency) [5m]) without (pod)',
    'max_over_time({app="a"} | logfmt | unwrap bytes(size) [1m])',
    'topk(3, sum by (app) (count_over_time({app=~".+"}[1m])))',
    'label_replace(count_over_time({app="a"}[1m]), "dst", "$1", "app", "(.*)")',
    'vector(2)',
    'sum(count_over_time({app="a"}[1m])) / on (app) group_left (pod) sum(count_over_time({app="b"}[1m]))',
    'count_over_time({app="a"}[1m]) > bool 2',
    'count_over_time({app="a"}[1m]) or vector(0)',
]


@pytest.mark.parametrize("query", ROUND_TRIP)
def test_round_trip(query: str) -> None:
    printed = format_query(query)
    assert format_query(printed) == printed


def test_precedence_and_associativity() -> None:
    e = parse("2 ^ 3 ^ 2")
    assert isinstance(e, ast.BinOp) and isinstance(e.rhs, ast.BinOp)  # right associative
    e = parse("1 + 2 * 3")
    assert isinstance(e, ast.BinOp) and e.op == "+"
    e = parse('count_over_time({a="b"}[1m]) or count_over_time({a="c"}[1m]) and count_over_time({a="d"}[1m])')
    assert isinstance(e, ast.BinOp) and e.op == "or"
    assert isinstance(parse("1+1--1"), ast.BinOp)


def test_range_after_pipeline_or_parenthesised() -> None:
    a = parse('count_over_time(({app="a"} |= "x")[1m])')
    b = parse('count_over_time({app="a"} |= "x" [1m])')
    assert str(a) == str(b)


def test_units_in_label_filters() -> None:
    e = parse('{a="b"} | logfmt | took > 1m30s and size <= 1.5KiB and n == -2')
    stage = e.stages[1]
    assert isinstance(stage, ast.LabelFilter)
    lf = stage.expr
    assert isinstance(lf, ast.LFBinary)
    took = lf.left.left  # type: ignore[attr-defined]
    assert took.kind == "duration" and took.value == 90.0
    size = lf.left.right  # type: ignore[attr-defined]
    assert size.kind == "bytes" and size.value == 1536
    assert lf.right.value == -2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('{app="a"} | drop', "expecting IDENTIFIER"),
        ('{app="a"} |= ', "syntax error: unexpected $end, expecting STRING"),
        ('count_over_time({app="a"} | logfmt | addr == ip("1.2.3.4") [1m])', "syntax error: unexpected ip"),
        ('count_over_time({app="a"} | logfmt | code == "200" [1m])', "syntax error"),
        ('quantile_over_time(-0.1, {app="a"} | logfmt | unwrap v [1m])', "unexpected -"),
        ("0x1A", "unable to parse literal as a float"),
        ('-count_over_time({app="a"}[1m])', "expecting NUMBER"),
        ('vector(count_over_time({app="a"}[1m]))', "expecting NUMBER"),
        ('count_over_time({app="a"} |~ "(" [1m])', "error parsing regexp"),
        ('count_over_time({app="a"} |= ip("nope") [1m])', "ip: invalid pattern"),
        ('count_over_time({app="a"} |~ ip("1.2.3.4") [1m])', "ip: invalid operation"),
        ('count_over_time({app="a"} |> "<x> y" [1m])', "named captures are not allowed"),
        ('count_over_time({app="a"} | regexp "nocap" [1m])', "at least one named capture must be supplied"),
        ('count_over_time({app="a"} | pattern "none" [1m])', "at least one capture is required"),
        ('count_over_time({app="a"} | json bad="user[" [1m])', "cannot parse expression"),
        ('count_over_time({app="a"} | line_format "{{ nosuch }}" [1m])', "not defined"),
        ('count_over_time({app="a"} | label_format x="{{" [1m])', "unclosed action"),
        ("1 and 2", "unexpected literal for left leg of logical/set binary operation"),
        ('topk(1.5, count_over_time({app="a"}[1m]))', "invalid parameter"),
        ('topk(count_over_time({app="a"}[1m]))', "parameter required"),
    ],
)
def test_parse_errors(query: str, message: str) -> None:
    with pytest.raises(ParseError) as ei:
        parse(query)
    assert message in str(ei.value)
    assert ei.value.status == 400


def test_error_position() -> None:
    with pytest.raises(ParseError) as ei:
        parse('{app="a"} | logfmt | addr == ip("1.2.3.4")')
    assert str(ei.value).startswith("parse error at line 1, col 30: syntax error: unexpected ip")
    with pytest.raises(ParseError) as ei:
        parse('{app="a"}\n  | drop')
    assert "line 2, col 9" in str(ei.value)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('count_over_time({app="a"} | logfmt | unwrap v [1m])', "invalid aggregation count_over_time with unwrap"),
        ('sum_over_time({app="a"}[1m])', "invalid aggregation sum_over_time without unwrap"),
        ('rate({app="a"}[1m]) by (app)', "grouping not allowed for rate aggregation"),
        ('count_over_time({app=~".*"}[1m])', "at least one regexp or equality matcher"),
    ],
)
def test_validation_errors(query: str, message: str) -> None:
    with pytest.raises(LogQLError) as ei:
        LogQLEngine().query_instant(MemoryLogQuerier(), query, 10**18)
    assert message in str(ei.value)
    assert ei.value.status == 400
