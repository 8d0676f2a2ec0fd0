"""Matcher syntax as amtool and alertmanager.yml accept it (Alertmanager's UTF-8 matcher grammar)."""

from __future__ import annotations

import pytest

from lookout.alerting.matchers import Matcher, MatcherError, MatchType, parse_matcher, parse_matchers


@pytest.mark.parametrize(
    "text, expected",
    [
        ('a="b"', [("a", "=", "b")]),
        ('a!="b"', [("a", "!=", "b")]),
        ('a=~"x|y"', [("a", "=~", "x|y")]),
        ('a!~"x.*"', [("a", "!~", "x.*")]),
        ('{a="b", c=~"d"}', [("a", "=", "b"), ("c", "=~", "d")]),
        ('{a="b",}', [("a", "=", "b")]),
        ("alertname=Foo", [("alertname", "=", "Foo")]),
        ("  env = prod , team!=ops ", [("env", "=", "prod"), ("team", "!=", "ops")]),
        ('"service name"="a b"', [("service name", "=", "a b")]),
        ('msg="say \\"hi\\"\\n"', [("msg", "=", 'say "hi"\n')]),
        ("ünïcødé=🔥", [("ünïcødé", "=", "🔥")]),
        ("a=", [("a", "=", "")]),
        ('a=""', [("a", "=", "")]),
        ("{}", []),
        ("", []),
    ],
)
def test_parse(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert [(m.name, m.type.value, m.value) for m in parse_matchers(text)] == expected


@pytest.mark.parametrize("text", ['a="b', "{a=b", "a=b}", "a!b", "a~b", "=b", "a=b c=d", 'a=~"("', "a b"])
def test_parse_errors(text: str) -> None:
    with pytest.raises(MatcherError):
        parse_matchers(text)


def test_regex_is_fully_anchored() -> None:
    m = parse_matcher('job=~"api"')
    assert m.matches("api")
    assert not m.matches("api-2")
    assert not m.matches("my-api")
    assert parse_matcher('job=~"api|web"').matches("web")
    n = parse_matcher('job!~"api.*"')
    assert not n.matches("api-2") and n.matches("web")


def test_missing_label_is_empty() -> None:
    assert parse_matcher('x=""').matches_labels({"y": "1"})
    assert parse_matcher('x!="a"').matches_labels({})
    assert not parse_matcher("x=a").matches_labels({})


def test_str_round_trips() -> None:
    for text in ['a="b"', 'a=~"x|y"', '"service name"!="q\\"uote"', 'ü!~"ß+"']:
        m = parse_matcher(text)
        assert parse_matcher(str(m)) == m


def test_api_objects() -> None:
    m = Matcher.from_api({"name": "a", "value": "b.*", "isRegex": True, "isEqual": False})
    assert m.type is MatchType.NRE
    assert m.to_api() == {"name": "a", "value": "b.*", "isRegex": True, "isEqual": False}
    assert Matcher.from_api({"name": "a", "value": "b", "isRegex": False}).type is MatchType.EQ
    with pytest.raises(MatcherError):
        Matcher.from_api({"name": "a"})
