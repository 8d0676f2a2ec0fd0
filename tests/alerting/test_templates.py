"""Alert templates: table tests ported from Prometheus' template/template_test.go, plus the Go
text/template behaviour alert rules rely on (trim markers, control flow, variables, printf)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from lookout.alerting.templates import (
    Sample,
    TemplateData,
    TemplateError,
    TemplateFuncs,
    expand,
    format_value,
    humanize,
    humanize_duration,
    humanize_percentage,
    parse_template,
)

EXT_URL = "http://testhost:9090/path/prefix"
MAX_INT64 = 2**63 - 1
MAX_UINT64 = 2**64 - 1


def run(text: str, data: Any = None, query_result: list[Sample] | None = None) -> str:
    """Prometheus' test harness: template named "test", external URL as in the Go tests."""
    funcs = TemplateFuncs(query_fn=lambda q: list(query_result or []), external_url=EXT_URL)
    return parse_template(text, "test").render(data, funcs)


def metric(value: float, **labels: str) -> Sample:
    return Sample({"__name__": "metric", **labels}, value)


# (text, input, query result, expected output) — from TestTemplateExpansion
PROMETHEUS_CASES: list[tuple[str, Any, list[Sample] | None, str]] = [
    ("plain text", None, None, "plain text"),
    ("{{ 1 }}", None, None, "1"),
    ('{{ "<b>" }}', None, None, "<b>"),
    ('{{define "x"}}{{.arg0}} {{.arg1}}{{end}}{{template "x" (args 1 "2")}}', None, None, "1 2"),
    ('{{ query "1.5" | first | value }}', None, [Sample({}, 1.5)], "1.5"),
    ("{{ query \"metric{instance='a'}\" | first | value }}", None, [metric(11, instance="a")], "11"),
    ("{{ query \"metric{instance='a'}\" | first | label \"instance\" }}", None, [metric(11, instance="a")], "a"),
    ("{{ query \"metric{__value__='a'}\" | first | strvalue }}", None, [metric(11, __value__="a")], "a"),
    ("{{ query \"metric{instance='a'}\" | first | label \"foo\" }}", None, [metric(11, instance="a")], ""),
    ('{{ $x := query "metric" | first }}{{ $x.Labels.foo }}', None, [metric(11, instance="a")], ""),
    ('{{ range query "metric" | sortByLabel "instance" }}{{.Labels.instance}}:{{.Value}}: {{end}}', None,
     [metric(21, instance="b"), metric(11, instance="a")], "a:11: b:21: "),
    ('{{ "foo.example.com" | stripPort }}', None, None, "foo.example.com"),
    ('{{ "foo.example.com:12345" | stripPort }}', None, None, "foo.example.com"),
    ('{{ "192.0.2.1" | stripPort }}', None, None, "192.0.2.1"),
    ('{{ "192.0.2.1:12345" | stripPort }}', None, None, "192.0.2.1"),
    ('{{ "2001:0DB8::1" | stripPort }}', None, None, "2001:0DB8::1"),
    ('{{ "[2001:0DB8::1]:12345" | stripPort }}', None, None, "2001:0DB8::1"),
    ('{{ "[2001:0DB8::1]::12345" | stripPort }}', None, None, "[2001:0DB8::1]::12345"),
    ("{{ .Foo }}", None, None, "<no value>"),
    ('{{ reReplaceAll "(a)b" "x$1" "ab" }}', None, None, "xa"),
    ("{{ range . }}{{ humanize . }}:{{ end }}", [0.0, 1.0, 1234567.0, 0.12], None, "0:1:1.235M:120m:"),
    ("{{ range . }}{{ humanize . }}:{{ end }}", ["0.0", "1.0", "1234567.0", ".12"], None, "0:1:1.235M:120m:"),
    ("{{ range . }}{{ humanize . }}:{{ end }}", [0, -1, 1, 1234567, MAX_INT64], None, "0:-1:1:1.235M:9.223E:"),
    ("{{ range . }}{{ humanize . }}:{{ end }}", [0, 1, 1234567, MAX_UINT64], None, "0:1:1.235M:18.45E:"),
    ("{{ range . }}{{ humanize1024 . }}:{{ end }}", [0.0, 1.0, 1048576.0, 0.12], None, "0:1:1Mi:0.12:"),
    ("{{ range . }}{{ humanize1024 . }}:{{ end }}", ["0.0", "1.0", "1048576.0", ".12"], None, "0:1:1Mi:0.12:"),
    ("{{ range . }}{{ humanize1024 . }}:{{ end }}", [0, -1, 1, 1234567, MAX_INT64], None, "0:-1:1:1.177Mi:8Ei:"),
    ("{{ range . }}{{ humanize1024 . }}:{{ end }}", [0, 1, 1234567, MAX_UINT64], None, "0:1:1.177Mi:16Ei:"),
    ("{{ range . }}{{ humanizeDuration . }}:{{ end }}",
     [0.0, 1.0, 60.0, 3600.0, 86400.0, 86400.0 + 3600, -(86400 * 2 + 3600 * 3 + 60 * 4 + 5.0), 899.99], None,
     "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:"),
    ("{{ range . }}{{ humanizeDuration . }}:{{ end }}", ["0", "1", "60", "3600", "86400"], None,
     "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:"),
    ("{{ range . }}{{ humanizeDuration . }}:{{ end }}", [0.1, 0.0001, 0.12345, 60.1, 60.5, 1.2345, 12.345], None,
     "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"),
    ("{{ range . }}{{ humanizeDuration . }}:{{ end }}", [".1", ".0001", ".12345", "60.1", "60.5", "1.2345", "12.345"],
     None, "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"),
    ("{{ range . }}{{ humanizeDuration . }}:{{ end }}", [0, -1, 1, 1234567], None, "0s:-1s:1s:14d 6h 56m 7s:"),
    ("{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}",
     [math.inf, -math.inf, math.nan], None, "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:"),
    ("{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}",
     ["+Inf", "-Inf", "NaN"], None, "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:"),
    ("{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:"
     "{{ 1.23456 | humanizePercentage }}", None, None, "-22.22%:0%:12.35%:123.5%"),
    ("{{ range . }}{{ humanizePercentage . }}:{{ end }}", [0, -1, 1, 1234567, MAX_INT64], None,
     "0%:-100%:100%:1.235e+08%:9.223e+20%:"),
    ("{{ range . }}{{ humanizePercentage . }}:{{ end }}", [0, 1, 1234567, MAX_UINT64], None,
     "0%:100%:1.235e+08%:1.845e+21%:"),
    ('{{ "-0.22222" | humanizePercentage }}:{{ "0.0" | humanizePercentage }}:{{ "0.1234567" | humanizePercentage }}:'
     '{{ "1.23456" | humanizePercentage }}', None, None, "-22.22%:0%:12.35%:123.5%"),
    ("{{ range . }}{{ humanizeTimestamp . }}:{{ end }}", [0, -1, 1, 1234567, 9223372036], None,
     "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:"
     "1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:"),
    ("{{ 1435065584.128 | humanizeTimestamp }}", None, None, "2015-06-23 13:19:44.128 +0000 UTC"),
    ('{{ "1435065584.128" | humanizeTimestamp }}', None, None, "2015-06-23 13:19:44.128 +0000 UTC"),
    ('{{ (1435065584.128 | toTime).Format "2006" }}', None, None, "2015"),
    ('{{ ("1435065584.128" | toTime).Format "2006" }}', None, None, "2015"),
    ('{{ "aa bb CC" | title }}', None, None, "Aa Bb CC"),
    ('{{ "aa bb CC" | toUpper }}', None, None, "AA BB CC"),
    ('{{ "aA bB CC" | toLower }}', None, None, "aa bb cc"),
    ('{{ match "a+" "aa" }} {{ match "a+" "b" }}', None, None, "true false"),
    ('{{ graphLink "up" }}', None, None, "/graph?g0.expr=up&g0.tab=0"),
    ('{{ tableLink "up" }}', None, None, "/graph?g0.expr=up&g0.tab=1"),
    ("{{ pathPrefix }}", None, None, "/path/prefix"),
    ("{{ externalURL }}", None, None, "http://testhost:9090/path/prefix"),
    ('{{ printf "%0.2f" (parseDuration "1h2m10ms") }}', None, None, "3720.01"),
    ('{{ "foo.example.com" | stripDomain }}', None, None, "foo"),
    ('{{ "foo.example.com:12345" | stripDomain }}', None, None, "foo:12345"),
    ('{{ "192.0.2.1" | stripDomain }}', None, None, "192.0.2.1"),
    ('{{ "192.0.2.1:12345" | stripDomain }}', None, None, "192.0.2.1:12345"),
    ('{{ "2001:0DB8::1" | stripDomain }}', None, None, "2001:0DB8::1"),
    ('{{ "[2001:0DB8::1]:12345" | stripDomain }}', None, None, "[2001:0DB8::1]:12345"),
    ('{{ "[2001:0DB8::1]::12345" | stripDomain }}', None, None, "[2001:0DB8::1]::12345"),
]


@pytest.mark.parametrize(("text", "data", "result", "want"), PROMETHEUS_CASES)
def test_prometheus_expansion(text: str, data: Any, result: list[Sample] | None, want: str) -> None:
    assert run(text, data, result) == want


# (text, input, query result, error) — the failing scenarios of TestTemplateExpansion
PROMETHEUS_ERRORS: list[tuple[str, Any, list[Sample] | None, str]] = [
    ("{{\u00a0}}", None, None, "unrecognized character in action: U+00A0"),
    ("{{", None, None, "unclosed action"),
    ('{{ query "missing" | first }}', None, [],
     'template: test:1:21: executing "test" at <first>: error calling first: '
     "first() called on vector with no elements"),
    ('{{ (query "missing").banana }}', None, [], "can't evaluate field banana in type template.queryResult"),
    ('{{ humanize "one" }}', None, None,
     'template: test:1:3: executing "test" at <humanize "one">: error calling humanize: '
     'strconv.ParseFloat: parsing "one": invalid syntax'),
    ('{{ humanize1024 "one" }}', None, None,
     'template: test:1:3: executing "test" at <humanize1024 "one">: error calling humanize1024: '
     'strconv.ParseFloat: parsing "one": invalid syntax'),
    ('{{ humanizeDuration "one" }}', None, None,
     'template: test:1:3: executing "test" at <humanizeDuration "one">: error calling humanizeDuration: '
     'strconv.ParseFloat: parsing "one": invalid syntax'),
    ('{{ "one" | humanizePercentage }}', None, None,
     'template: test:1:11: executing "test" at <humanizePercentage>: error calling humanizePercentage: '
     'strconv.ParseFloat: parsing "one": invalid syntax'),
    ("{{ range . }}{{ humanizeTimestamp . }}:{{ end }}", [-(2**63), MAX_INT64], None,
     'template: test:1:16: executing "test" at <humanizeTimestamp .>: error calling humanizeTimestamp: '
     "-9.223372036854776e+18 cannot be represented as a nanoseconds timestamp since it overflows int64"),
    ("{{ range . }}{{ humanizeTimestamp . }}:{{ end }}", [MAX_UINT64], None,
     'template: test:1:16: executing "test" at <humanizeTimestamp .>: error calling humanizeTimestamp: '
     "1.8446744073709552e+19 cannot be represented as a nanoseconds timestamp since it overflows int64"),
]


@pytest.mark.parametrize(("text", "data", "result", "err"), PROMETHEUS_ERRORS)
def test_prometheus_errors(text: str, data: Any, result: list[Sample] | None, err: str) -> None:
    with pytest.raises(TemplateError) as exc:
        run(text, data, result)
    assert err in str(exc.value)


ALERT = TemplateData(labels={"instance": "web-1:9090", "job": "api", "severity": "page"}, value=1234567.0,
                     external_labels={"cluster": "eu1"}, external_url="https://lookout.example.com/lk")

ALERT_CASES = [
    ("{{ $labels.instance }} down", "web-1:9090 down"),
    ("{{ .Labels.job }}/{{ index $labels \"job\" }}", "api/api"),
    ("{{ $value }}", "1.234567e+06"),
    ("{{ .Value }}", "1.234567e+06"),
    ("{{ $value | humanize }}", "1.235M"),
    ("{{ $externalLabels.cluster }} {{ $externalURL }}", "eu1 https://lookout.example.com/lk"),
    ("{{ $labels.nope }}|", "|"),
    ("{{ printf \"%.2f\" $value }}", "1234567.00"),
    ("{{ if gt $value 1000.0 }}big{{ else }}small{{ end }}", "big"),
    ("{{ if eq $labels.severity \"page\" }}P{{ else if eq $labels.severity \"warn\" }}W{{ end }}", "P"),
    ("{{ with $labels.job }}job={{ . }}{{ end }}{{ with $labels.nope }}x{{ else }}none{{ end }}", "job=apinone"),
    ("a  {{- \" b \" -}}  c", "a b c"),
    ("x {{- /* a comment */ -}} y", "xy"),
    ("{{/* only a comment */}}z", "z"),
    ("{{ $labels.instance | stripPort | toUpper }}", "WEB-1"),
    ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2"),
    ("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}", "instance=web-1:9090;job=api;severity=page;"),
    ("{{ len $labels }} {{ len \"héllo\" }}", "3 6"),
    ("{{ and 1 0 }} {{ or 0 \"\" \"x\" }} {{ not true }}", "0 x false"),
    ("{{ print 1 2 \"a\" \"b\" 3 }}", "1 2ab3"),
    ("{{ println 1 \"a\" }}", "1 a\n"),
    ("{{ html \"<a href='x'>&\" }}", "&lt;a href=&#39;x&#39;&gt;&amp;"),
    ("{{ js \"it's <b>\" }}", "it\\'s \\u003Cb\\u003E"),
    ("{{ urlquery \"a b&c\" }}", "a+b%26c"),
    ("{{ lt \"a\" \"b\" }} {{ le 2 2 }} {{ ge 1.5 2.5 }} {{ ne 1 2 }}", "true true false true"),
    ("{{ range $i, $e := (args \"a\" \"b\") }}{{ $i }}{{ end }}", "arg0arg1"),
    ("{{ range 3 }}{{ . }}{{ end }}", "012"),
    ("{{ range $labels }}{{ if eq . \"api\" }}{{ break }}{{ end }}{{ . }},{{ end }}", "web-1:9090,"),
    ("{{ range $labels }}{{ if eq . \"api\" }}{{ continue }}{{ end }}{{ . }},{{ end }}", "web-1:9090,page,"),
    ("{{ range (args) }}x{{ else }}empty{{ end }}", "empty"),
    ("{{ reReplaceAll \"x*\" \"-\" \"abxd\" }}", "-a-b-d-"),
    ("{{ printf \"%s is %d%% %v %5.1f|%-3d|%03d %t %x\" \"cpu\" 42 true 3.14159 7 7 false 255 }}",
     "cpu is 42% true   3.1|7  |007 false ff"),
    ("{{ printf \"%d\" 1.5 }} {{ printf \"%s\" }} {{ printf \"x\" 1 }}",
     "%!d(float64=1.5) %!s(MISSING) x%!(EXTRA int=1)"),
    ("{{ 0x1F }} {{ 1e3 }} {{ 'a' }} {{ -2 }} {{ `raw\\n` }}", "31 1000 97 -2 raw\\n"),
    ('{{ "a\\tb\\u00e9" }}', "a\tbé"),
    ("{{ $labels.instance | reReplaceAll \"(.*):(.*)\" \"$2@$1\" }}", "9090@web-1"),
    ('{{ (toTime 1657155181).Format "2006-01-02T15:04:05Z07:00 Mon Jan _2 3PM" }}',
     "2022-07-07T00:53:01Z Thu Jul  7 12AM"),
    ("{{ block \"b\" . }}[{{ .Labels.job }}]{{ end }}", "[api]"),
]


@pytest.mark.parametrize(("text", "want"), ALERT_CASES)
def test_alert_expansion(text: str, want: str) -> None:
    assert expand(text, ALERT) == want


def test_expand_with_query() -> None:
    def query_fn(q: str) -> list[dict[str, Any]]:
        assert q == 'up{job="api"}'
        return [{"labels": {"instance": "b"}, "value": 0.0}, {"labels": {"instance": "a"}, "value": 1.0}]

    text = '{{ range query "up{job=\\"api\\"}" | sortByLabel "instance" }}{{ .Labels.instance }}={{ .Value }} {{ end }}'
    assert expand(text, ALERT, query_fn) == "a=1 b=0 "
    with pytest.raises(TemplateError, match="no query function"):
        expand('{{ query "up" }}', ALERT)


def test_expand_string_value_and_plain_text() -> None:
    assert expand("{{ $value }}", TemplateData({}, "NaN-ish")) == "NaN-ish"
    assert expand("plain", ALERT) == "plain"


PARSE_ERRORS = [
    ("{{ nope }}", "template: 1:3: function \"nope\" not defined"),
    ("{{ $x }}", "template: 1:3: undefined variable \"$x\""),
    ("{{ if true }}x", "unexpected EOF"),
    ("{{ end }}", "unexpected {{end}}"),
    ("{{ else }}", "unexpected {{else}}"),
    ("{{ }}", "missing value for command"),
    ("{{ if }}x{{ end }}", "missing value for if"),
    ("{{ | toUpper }}", 'unexpected "|" in command'),
    ("{{ \"a\" | 1 }}", "non executable command in pipeline stage 2"),
    ("{{ break }}", "{{break}} outside {{range}}"),
    ("{{ (1 }}", "unclosed left paren"),
    ("{{ 1) }}", "unexpected right paren"),
    ('{{ "abc }}', "unterminated quoted string"),
    ("{{ 3x }}", "bad number syntax"),
    ("{{/* x }}", "unclosed comment"),
    ("{{ range $a, $b, $c := . }}{{ end }}", "range can only initialize variables"),
    ("{{ if true }}{{ else }}{{ else }}{{ end }}", "expected end; found {{else}}"),
    ("line1\n{{ nope }}", "template: 2:3:"),
    ('{{ "a\\q" }}', 'invalid syntax in string "a\\q"'),
    ('{{ "a\\19x" }}', 'invalid syntax in string "a\\19x"'),  # a bad octal escape (was a ValueError)
    ('{{ "\\x4" }}', 'invalid syntax in string "\\x4"'),
]


@pytest.mark.parametrize(("text", "err"), PARSE_ERRORS)
def test_parse_errors(text: str, err: str) -> None:
    with pytest.raises(TemplateError) as exc:
        parse_template(text)
    assert err in str(exc.value)


def test_variables_scoped_to_blocks() -> None:
    with pytest.raises(TemplateError, match='undefined variable "\\$y"'):
        parse_template("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}")
    assert parse_template("{{ $y := 1 }}{{ if true }}{{ $y = 2 }}{{ end }}{{ $y }}").render(None) == "2"


def test_alert_variables_need_expand() -> None:
    """Plain parse_template has no $labels (as Go without Prometheus' prelude); expand binds them."""
    with pytest.raises(TemplateError):
        parse_template("{{ $labels.job }}")
    assert expand("{{ $labels.job }}", ALERT) == "api"


def test_execution_error_positions() -> None:
    with pytest.raises(TemplateError) as exc:
        expand("ok\n  {{ $labels.job | humanize }}", ALERT, name="__alert_X")
    assert str(exc.value) == (
        'template: __alert_X:2:19: executing "__alert_X" at <humanize>: error calling humanize: '
        'strconv.ParseFloat: parsing "api": invalid syntax')


def test_go_float_formatting() -> None:
    cases = {0.0: "0", 1.0: "1", 1.5: "1.5", 100000.0: "100000", 1e6: "1e+06", 1234567.0: "1.234567e+06",
             0.0001: "0.0001", 0.00001: "1e-05", 1e21: "1e+21", -2.5e-7: "-2.5e-07", 123456.7: "123456.7",
             math.inf: "+Inf", -math.inf: "-Inf", math.nan: "NaN", 0.1 + 0.2: "0.30000000000000004"}
    for v, want in cases.items():
        assert format_value(v) == want, v


def test_brief_examples() -> None:
    assert humanize(1234567) == "1.235M"
    assert humanize_duration(3661) == "1h 1m 1s"
    assert humanize_percentage(0.1234) == "12.34%"
    assert expand('{{ printf "%.2f" $value }}', TemplateData({}, 2.0 / 3)) == "0.67"
