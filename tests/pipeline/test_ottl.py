"""OTTL conditions: parsing (with positioned errors), the comparison rules, enums, converters,
nil and math — evaluated over a test-double Context whose items hold plain Python values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lookout.pipeline.ottl import Condition, OttlError, ValueKinds, compile_condition
from lookout.pipeline.values import PathError, Values


def _values(items: list[object]) -> Values:
    """Split Python values by OTLP type, as a real context does."""
    n = len(items)

    def typed(pred, typ):  # noqa: ANN001, ANN202
        return pa.array([v if pred(v) else None for v in items], typ)

    return Values(
        n,
        typed(lambda v: isinstance(v, str), pa.string()),
        typed(lambda v: isinstance(v, int) and not isinstance(v, bool), pa.int64()),
        typed(lambda v: isinstance(v, float), pa.float64()),
        typed(lambda v: isinstance(v, bool), pa.bool_()),
        np.array([v is not None for v in items], dtype=np.bool_),
    )


class FakeContext:
    """Items with fixed per-path values; ``paths`` maps (fields, keys) to one value per item."""

    def __init__(self, kind: str, n: int, paths: dict[tuple[tuple[str, ...], tuple[str, ...]], list[object]]):
        self.kind = kind
        self.n = n
        self.paths = paths
        self.calls: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    def __len__(self) -> int:
        return self.n

    def values(self, fields: tuple[str, ...], keys: tuple[str, ...] = ()) -> Values:
        self.calls.append((fields, keys))
        if (fields, keys) not in self.paths:
            raise PathError(f"no {fields} {keys}")
        return _values(self.paths[(fields, keys)])

    def value_kinds(self, fields: tuple[str, ...], keys: tuple[str, ...] = ()) -> ValueKinds:
        items = self.paths[(fields, keys)]
        return ValueKinds(
            np.array([isinstance(v, dict) for v in items]),
            np.array([isinstance(v, list) for v in items]),
            pa.array([v if isinstance(v, bytes) else None for v in items], pa.binary()),
        )


A = (("attributes",), ("a",))
B = (("attributes",), ("b",))


def _attrs(a: list[object], b: list[object] | None = None, kind: str = "log") -> FakeContext:
    paths = {A: a}
    if b is not None:
        paths[B] = b
    return FakeContext(kind, len(a), paths)


def _eval(text: str, ctx: FakeContext) -> list[bool]:
    mask = compile_condition(text, ctx.kind).evaluate(ctx)
    assert mask.dtype == np.bool_ and len(mask) == len(ctx)
    return mask.tolist()


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'name == "x"',
        'attributes["http.route"] == "/a" and not (kind == SPAN_KIND_SERVER or kind == 3)',
        'resource.attributes["service.name"] != nil',
        'attributes["a"]["b"] == 1',
        'span.attributes["k"] == "v"',
        "instrumentation_scope.name == \"s\" or scope.version == \"1\"",
        "status.code == STATUS_CODE_ERROR",
        'IsMatch(name, "^GET .*")',
        'IsMatch(target = name, pattern = "x")',
        "not IsRootSpan()",
        "end_time_unix_nano - start_time_unix_nano > 1000000",
        "(1 + 2) * 3 == 9",
        "-1 < 0",
        "0x0102 != nil",
        'trace_id.string == "00"',
        "true",
        "not not false",
        'Concat([name, "x"], "-") == "a-x"',
        "kind.string == \"Server\"",
        'trace_state["ot"] == "p:8"',
    ],
)
def test_parses_good_span_conditions(text: str) -> None:
    cond = compile_condition(text, "span")
    assert isinstance(cond, Condition)
    assert cond.text == text and cond.context == "span"


@pytest.mark.parametrize(
    ("text", "context", "message"),
    [
        ('name == ', "span", 'condition 1:9: expected a value, got end of condition'),
        ('name = "x"', "span", 'condition 1:6: expected "and", "or" or end of condition, got "="'),
        ('name == "x" "y"', "span", 'condition 1:13: expected "and", "or" or end of condition, got "y"'),
        ('name == "x', "span", "condition 1:9: unterminated string"),
        ('IsMatch(name, "x"', "span", 'condition 1:18: expected "," or ")", got end of condition'),
        ("(name == \"x\"", "span", 'condition 1:13: expected ")", got end of condition'),
        ('body == "x"', "span", 'condition 1:1: path "body" is not valid in the span context'),
        ('name == "x"', "datapoint", 'condition 1:1: path "name" is not valid in the datapoint context'),
        ('status.nope == 1', "span", 'condition 1:1: path "status.nope" is not valid in the span context'),
        ('name["k"] == 1', "span", 'condition 1:1: path "name["k"]": "name" is not a map'),
        ('attributes[0] == 1', "span", "condition 1:12: list indexes ([0]) are not supported"),
        ('Nope(name)', "span", 'condition 1:1: unknown converter "Nope"'),
        ('set(name, "x")', "span", 'condition 1:1: editor "set" cannot be used in a condition'),
        ('kind == SPAN_KIND_NOPE', "span", 'condition 1:9: unknown enum "SPAN_KIND_NOPE"'),
        ('severity_number == SPAN_KIND_SERVER', "log", 'condition 1:20: enum "SPAN_KIND_SERVER" is not available'),
        ('name', "span", "condition 1:1: expected a boolean expression"),
        ('name == "a" and 1', "span", "condition 1:17: expected a boolean expression"),
        ('1 == 1 == 1', "span", "condition 1:8: comparisons cannot be chained"),
        ('name + 1 == 2', "span", None),  # paths are typed per row: allowed
        ('"a" + 1 == 2', "span", "condition 1:1: math needs numbers, got a string value"),
        ('IsMatch(name)', "span", 'condition 1:13: IsMatch() is missing argument "pattern"'),
        ('IsMatch(name, "a", "b")', "span", "condition 1:20: IsMatch() takes 2 arguments, got 3"),
        ('IsMatch(name, name)', "span", 'condition 1:15: IsMatch() argument "pattern" must be a string literal'),
        ('IsMatch(name, "(")', "span", "condition 1:15: invalid regular expression"),
        ('IsRootSpan()', "log", "condition 1:1: IsRootSpan() is not available in the log context"),
        ('name == "\\d"', "span", 'condition 1:10: unknown escape "\\d"'),
        ("name == 0x123", "span", 'condition 1:9: byte literal "0x123" needs an even'),
        ("name == 99999999999999999999", "span", "condition 1:9: integer literal out of int64 range"),
        ("name == #", "span", 'condition 1:9: unexpected character "#"'),
        ('SpanID(0x01) == span_id', "span", "condition 1:8: SpanID() needs exactly 8 bytes"),
        ("", "span", "condition 1:1: expected a condition, got end of condition"),
        ('name == "a"\n  and nope == 1', "span", 'condition 2:7: path "nope" is not valid'),
    ],
)
def test_rejects_bad_conditions_with_position(text: str, context: str, message: str | None) -> None:
    if message is None:
        compile_condition(text, context)
        return
    with pytest.raises(OttlError) as info:
        compile_condition(text, context)
    assert str(info.value).startswith(message), str(info.value)


def test_unknown_context() -> None:
    with pytest.raises(OttlError, match="unknown OTTL context"):
        compile_condition("true", "trace")


def test_string_escapes() -> None:
    ctx = _attrs(['a"b\\c\n\u00e9', "x"])
    assert _eval('attributes["a"] == "a\\"b\\\\c\\n\\u00e9"', ctx) == [True, False]


def test_prefix_stripping_and_aliases_reach_context() -> None:
    ctx = FakeContext("span", 1, {
        (("attributes",), ("k",)): ["v"],
        (("instrumentation_scope", "name"), ()): ["s"],
        (("resource", "attributes"), ("r",)): [1],
        (("status", "code"), ()): [2],
    })
    assert _eval('span.attributes["k"] == "v" and scope.name == "s" and resource.attributes["r"] == 1 '
                 "and span.status.code == STATUS_CODE_ERROR", ctx) == [True]
    assert set(ctx.calls) >= {(("attributes",), ("k",)), (("instrumentation_scope", "name"), ())}


def test_parent_prefixes_per_context() -> None:
    compile_condition('span.name == "x" and span.attributes["a"] == 1', "spanevent")
    compile_condition('metric.name == "x" and metric.type == METRIC_DATA_TYPE_SUM', "datapoint")
    compile_condition('datapoint.value_int > 1 and metric.aggregation_temporality == AGGREGATION_TEMPORALITY_DELTA',
                      "datapoint")
    compile_condition('resource.attributes["a"] == 1 and attributes["b"] == 2', "resource")
    compile_condition('scope.name == "a" and name == "a" and resource.attributes["x"] == nil', "scope")
    compile_condition('log.body == "x" and body["k"] == 1 and severity_number >= SEVERITY_NUMBER_WARN', "log")
    with pytest.raises(OttlError, match="not valid in the span context"):
        compile_condition('span.span.name == "x"', "span")
    with pytest.raises(OttlError, match="not valid in the metric context"):
        compile_condition("value_int == 1", "metric")


# --------------------------------------------------------------------------------------------
# comparison rules
# --------------------------------------------------------------------------------------------

MIXED = ["x", 1, 1.0, True, None, "y", 2, 0.5, False]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('attributes["a"] == "x"', [True, False, False, False, False, False, False, False, False]),
        ('attributes["a"] != "x"', [False, True, True, True, True, True, True, True, True]),
        ('attributes["a"] == 1', [False, True, True, False, False, False, False, False, False]),
        ('attributes["a"] == 1.0', [False, True, True, False, False, False, False, False, False]),
        ('attributes["a"] > 0.75', [False, True, True, False, False, False, True, False, False]),
        ('attributes["a"] <= 1', [False, True, True, False, False, False, False, True, False]),
        ('attributes["a"] < "y"', [True, False, False, False, False, False, False, False, False]),
        ('attributes["a"] >= "x"', [True, False, False, False, False, True, False, False, False]),
        ('attributes["a"] == true', [False, False, False, True, False, False, False, False, False]),
        ('attributes["a"] != true', [True, True, True, False, True, True, True, True, True]),
        ('attributes["a"] > false', [False, False, False, True, False, False, False, False, False]),
        ('attributes["a"] == nil', [False, False, False, False, True, False, False, False, False]),
        ('attributes["a"] != nil', [True, True, True, True, False, True, True, True, True]),
        ('nil == attributes["a"]', [False, False, False, False, True, False, False, False, False]),
        ('attributes["a"] < nil', [False] * 9),
        ('attributes["a"] >= nil', [False, False, False, False, True, False, False, False, False]),
    ],
)
def test_comparison_rules_against_literals(text: str, expected: list[bool]) -> None:
    assert _eval(text, _attrs(MIXED)) == expected


def test_path_against_path() -> None:
    a = ["x", 1, 1, None, True, "a", None, 2.5]
    b = ["x", 1.0, "1", None, True, "b", 3, 2]
    ctx = _attrs(a, b)
    assert _eval('attributes["a"] == attributes["b"]', ctx) == [True, True, False, True, True, False, False, False]
    assert _eval('attributes["a"] != attributes["b"]', ctx) == [False, False, True, False, False, True, True, True]
    assert _eval('attributes["a"] < attributes["b"]', ctx) == [False, False, False, False, False, True, False, False]
    assert _eval('attributes["a"] >= attributes["b"]', ctx) == [True, True, False, True, True, False, False, True]


def test_literal_against_literal() -> None:
    ctx = _attrs([1, 2])
    assert _eval("1 == 1.0", ctx) == [True, True]
    assert _eval('"a" < "b" and "b" != 1 and nil == nil and not (nil != nil)', ctx) == [True, True]
    assert _eval("true and not false", ctx) == [True, True]
    assert _eval("0x01 == 0x01 and 0x01 < 0x02", ctx) == [True, True]


def test_large_ints_compare_exactly() -> None:
    ctx = _attrs([2**63 - 1, 2**63 - 2])
    assert _eval('attributes["a"] == 9223372036854775807', ctx) == [True, False]
    assert _eval('attributes["a"] == -9223372036854775808', ctx) == [False, False]


def test_and_or_not_precedence() -> None:
    ctx = _attrs([1, 2, 3, 4])
    assert _eval('attributes["a"] == 1 or attributes["a"] == 2 and attributes["a"] == 3', ctx) == [
        True, False, False, False]
    assert _eval('(attributes["a"] == 1 or attributes["a"] == 2) and attributes["a"] != 1', ctx) == [
        False, True, False, False]
    assert _eval('not attributes["a"] == 1 and not attributes["a"] > 3', ctx) == [False, True, True, False]
    assert _eval("not true or true", ctx) == [True] * 4


def test_short_circuit_skips_later_paths() -> None:
    ctx = _attrs([1, 2])
    assert _eval('false and attributes["missing"] == 1', ctx) == [False, False]
    with pytest.raises(OttlError, match='path "attributes\\["missing"\\]"'):
        _eval('true and attributes["missing"] == 1', ctx)


# --------------------------------------------------------------------------------------------
# enums, math
# --------------------------------------------------------------------------------------------


def test_enums() -> None:
    from lookout.pipeline.ottl.parser import ENUMS

    assert ENUMS["span"]["SPAN_KIND_CONSUMER"] == 5 and ENUMS["span"]["STATUS_CODE_ERROR"] == 2
    assert ENUMS["log"]["SEVERITY_NUMBER_TRACE2"] == 2 and ENUMS["log"]["SEVERITY_NUMBER_INFO"] == 9
    assert ENUMS["log"]["SEVERITY_NUMBER_FATAL4"] == 24
    assert ENUMS["metric"]["METRIC_DATA_TYPE_SUMMARY"] == 5
    assert ENUMS["datapoint"]["AGGREGATION_TEMPORALITY_CUMULATIVE"] == 2
    ctx = FakeContext("log", 4, {(("severity_number",), ()): [1, 9, 13, 17]})
    assert _eval("severity_number >= SEVERITY_NUMBER_WARN", ctx) == [False, False, True, True]
    assert _eval("severity_number == SEVERITY_NUMBER_INFO", ctx) == [False, True, False, False]
    mctx = FakeContext("metric", 2, {(("type",), ()): [1, 3]})
    assert _eval("type == METRIC_DATA_TYPE_HISTOGRAM", mctx) == [False, True]


def test_math() -> None:
    ctx = _attrs([10, 7, -7, 2.5, "s", None], [3, 2, 2, 0.5, 1, 1])
    assert _eval('attributes["a"] + attributes["b"] == 13', ctx) == [True, False, False, False, False, False]
    assert _eval('attributes["a"] / 2 == 3', ctx) == [False, True, False, False, False, False]
    assert _eval('attributes["a"] / 2 == -3', ctx) == [False, False, True, False, False, False]  # Go truncation
    assert _eval('attributes["a"] * attributes["b"] == 1.25', ctx) == [False, False, False, True, False, False]
    assert _eval('attributes["a"] - 1 * 2 == 8', ctx) == [True, False, False, False, False, False]
    assert _eval('(attributes["a"] - 1) * 2 == 18', ctx) == [True, False, False, False, False, False]
    assert _eval('-attributes["a"] == -10', ctx) == [True, False, False, False, False, False]
    # mixed int/float math is nil in OTTL, as is math on strings and division by zero
    assert _eval('attributes["a"] + 1.5 == nil', ctx) == [True, True, True, False, True, True]
    assert _eval('attributes["a"] / 0 == nil', ctx) == [True] * 6
    assert _eval("1.5 * 2.0 == 3", ctx) == [True] * 6


# --------------------------------------------------------------------------------------------
# converters
# --------------------------------------------------------------------------------------------


def test_type_predicates() -> None:
    items = ["s", 1, 1.5, True, None, {"k": 1}, [1], b"\x01"]
    ctx = _attrs(items)
    assert _eval('IsString(attributes["a"])', ctx) == [True] + [False] * 7
    assert _eval('IsInt(attributes["a"])', ctx) == [False, True] + [False] * 6
    assert _eval('IsDouble(attributes["a"])', ctx) == [False, False, True] + [False] * 5
    assert _eval('IsBool(attributes["a"])', ctx) == [False] * 3 + [True] + [False] * 4
    assert _eval('IsMap(attributes["a"])', ctx) == [False] * 5 + [True, False, False]
    assert _eval('IsList(attributes["a"])', ctx) == [False] * 6 + [True, False]
    assert _eval('attributes["a"] == 0x01', ctx) == [False] * 7 + [True]
    assert _eval('IsString("x") and not IsInt("x") and IsDouble(1.5)', ctx) == [True] * 8


def test_is_match_and_affixes() -> None:
    ctx = _attrs(["GET /api/users", "POST /api", "get", 500, 404, None, 1.5, True])
    assert _eval('IsMatch(attributes["a"], "^GET ")', ctx) == [True] + [False] * 7
    assert _eval('IsMatch(attributes["a"], "api")', ctx) == [True, True] + [False] * 6  # unanchored
    assert _eval('IsMatch(attributes["a"], "(?i)^get")', ctx) == [True, False, True] + [False] * 5
    assert _eval('IsMatch(attributes["a"], "^5\\\\d\\\\d$")', ctx) == [False, False, False, True] + [False] * 4
    assert _eval('IsMatch(attributes["a"], "^true$")', ctx) == [False] * 7 + [True]
    assert _eval('HasPrefix(attributes["a"], "POST")', ctx) == [False, True] + [False] * 6
    assert _eval('HasSuffix(attributes["a"], "users")', ctx) == [True] + [False] * 7
    assert _eval('HasPrefix(attributes["a"], "5")', ctx) == [False] * 8  # StringGetter: strings only


def test_string_converters() -> None:
    ctx = _attrs(["Héllo", 42, 1.5, False, None], ["a", "b", None, "d", "e"])
    assert _eval('Len(attributes["a"]) == 6', ctx) == [True, False, False, False, False]  # bytes, as Go's len
    assert _eval('ToLowerCase(attributes["a"]) == "héllo"', ctx) == [True, False, False, False, False]
    assert _eval('ToUpperCase(attributes["a"]) == "HÉLLO"', ctx) == [True, False, False, False, False]
    assert _eval('String(attributes["a"]) == "42"', ctx) == [False, True, False, False, False]
    assert _eval('String(attributes["a"]) == "false"', ctx) == [False, False, False, True, False]
    assert _eval('String(attributes["a"]) == nil', ctx) == [False, False, False, False, True]
    assert _eval('Concat([attributes["a"], attributes["b"], 7], "/") == "42/b/7"', ctx) == [
        False, True, False, False, False]
    assert _eval('Concat([attributes["a"], attributes["b"]], "") == "1.5<nil>"', ctx) == [
        False, False, True, False, False]
    assert _eval('Concat([], ",") == ""', ctx) == [True] * 5


def test_numeric_converters() -> None:
    ctx = _attrs([" 1", "12", "-3.7", 2.9, -2.9, True, None, "x", 7, "1e3"])
    assert _eval('Int(attributes["a"]) == 12', ctx) == [False, True] + [False] * 8
    assert _eval('Int(attributes["a"]) == 2', ctx) == [False] * 3 + [True] + [False] * 6
    assert _eval('Int(attributes["a"]) == -2', ctx) == [False] * 4 + [True] + [False] * 5
    assert _eval('Int(attributes["a"]) == 1', ctx) == [False] * 5 + [True] + [False] * 4
    assert _eval('Int(attributes["a"]) == nil', ctx) == [
        True, False, True, False, False, False, True, True, False, True]
    assert _eval('Double(attributes["a"]) == -3.7', ctx) == [False, False, True] + [False] * 7
    assert _eval('Double(attributes["a"]) == 1000', ctx) == [False] * 9 + [True]
    assert _eval('Double(attributes["a"]) == 7', ctx) == [False] * 8 + [True, False]
    assert _eval('IsDouble(Double(attributes["a"]))', ctx) == [False, True, True, True, True, True, False, False, True,
                                                                True]


def test_converter_as_boolean_value() -> None:
    ctx = _attrs(["abc", "x"])
    assert _eval('IsMatch(attributes["a"], "b") == true', ctx) == [True, False]
    assert _eval('IsMatch(attributes["a"], "b") != IsString(attributes["a"])', ctx) == [False, True]


def test_map_and_list_without_value_kinds() -> None:
    class Plain(FakeContext):
        value_kinds = None  # type: ignore[assignment]

    ctx = Plain("log", 2, {A: [{"k": 1}, None]})
    assert _eval('IsMap(attributes["a"])', ctx) == [False, False]  # no ValueKinds: maps are unknown
    assert _eval('attributes["a"] != nil', ctx) == [True, False]


def test_context_kind_must_match() -> None:
    cond = compile_condition("true", "span")
    with pytest.raises(OttlError, match="evaluated over a log context"):
        cond.evaluate(_attrs([1]))


def test_empty_context() -> None:
    assert compile_condition('attributes["a"] == 1', "log").evaluate(_attrs([])).tolist() == []


def test_path_error_names_position() -> None:
    ctx = _attrs([1])
    with pytest.raises(OttlError, match=r"condition 1:14: path \"attributes\[\"b\"\]\""):
        _eval('1 == 1 and   attributes["b"] == 1', ctx)
