"""Rule files: rulefmt's validation (cases after Prometheus' model/rulefmt testdata), positions
in messages, PromQL/LogQL detection, globbing and the YAML round trip."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lookout.alerting.rulefile import (
    Rule,
    RuleFileError,
    RuleGroup,
    dump_groups,
    load_rule_files,
    parse_rule_file,
)

GOOD = textwrap.dedent("""\
    groups:
      - name: api
        interval: 30s
        query_offset: 1m
        limit: 10
        labels:
          team: web
        rules:
          - alert: HighErrors
            expr: sum(rate(http_errors_total[5m])) by (job) > 1
            for: 5m
            keep_firing_for: 2m
            labels:
              severity: page
            annotations:
              summary: "{{ $labels.job }} errors at {{ $value | humanize }}/s"
          - record: job:http_errors:rate5m
            expr: |
              sum(rate(http_errors_total[5m]))
                by (job)
      - name: logs
        rules:
          - alert: ErrorLogs
            expr: sum by (app) (count_over_time({app="api"} |= "error" [5m])) > 10
    """)


def problems(text: str, source: str = "rules/app.yml", **kw: str) -> list[str]:
    with pytest.raises(RuleFileError) as exc:
        parse_rule_file(text, source, **kw)
    assert str(exc.value) == "\n".join(exc.value.problems)
    return exc.value.problems


def one_rule(rule: str, group_extra: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(rule), " " * 6)
    return f"groups:\n  - name: g\n{group_extra}    rules:\n{body}"


def test_good_file() -> None:
    api, logs = parse_rule_file(GOOD, "rules/app.yml")
    assert (api.name, api.interval_s, api.query_offset_s, api.limit, api.labels, api.source) == (
        "api", 30.0, 60.0, 10, {"team": "web"}, "rules/app.yml")
    alert, record = api.rules
    assert alert == Rule(kind="alert", name="HighErrors", expr="sum(rate(http_errors_total[5m])) by (job) > 1",
                         lang="promql", for_s=300.0, keep_firing_for_s=120.0, labels={"severity": "page"},
                         annotations={"summary": "{{ $labels.job }} errors at {{ $value | humanize }}/s"}, line=9)
    assert (record.kind, record.name, record.lang, record.line) == ("record", "job:http_errors:rate5m", "promql", 17)
    assert record.expr.startswith("sum(rate(")
    assert api.rule_labels(alert) == {"team": "web", "severity": "page"}
    assert (logs.interval_s, logs.query_offset_s, logs.limit, logs.rules[0].lang) == (None, None, 0, "logql")


def test_empty_files() -> None:
    assert parse_rule_file("", "x.yml") == []
    assert parse_rule_file("# just a comment\n", "x.yml") == []
    assert parse_rule_file("groups: []\n", "x.yml") == []
    assert parse_rule_file("groups:\n  - name: g\n    rules: []\n", "x.yml")[0].rules == []


def test_message_format_names_file_position_group_and_rule() -> None:
    text = one_rule("""\
        - record: ok
          expr: up
        - alert: HighErrors
          expr: rate(x[5m]
        """)
    (msg,) = problems(text)
    assert msg.startswith('rules/app.yml:7:15: group "g", rule 2 (alert "HighErrors"): could not parse expression: ')
    assert "unclosed left parenthesis" in msg


# (rule yaml, expected message fragment) — after rulefmt's testdata/*.bad.yaml
BAD_RULES = [
    ("- record: a\n  alert: b\n  expr: up\n", "only one of 'record' and 'alert' must be set"),
    ("- expr: up\n", "one of 'record' or 'alert' must be set"),
    ("- alert: ''\n  expr: up\n", "alert name must not be empty"),
    ("- record: strawberry{flavor=\"sweet\"}\n  expr: up\n", 'invalid recording rule name: strawberry{flavor="sweet"}'),
    ("- record: 1abc\n  expr: up\n", "invalid recording rule name: 1abc"),
    ("- alert: A\n", "field 'expr' must be set in rule"),
    ("- alert: A\n  expr: ''\n", "field 'expr' must be set in rule"),
    ("- alert: A\n  expr: up ==\n", "could not parse expression"),
    ("- alert: A\n  expr: up\n  labels:\n    __name__: x\n", "invalid label name: __name__"),
    ("- alert: A\n  expr: up\n  labels:\n    bad-name: x\n", "invalid label name: bad-name"),
    ("- alert: A\n  expr: up\n  annotations:\n    bad-name: x\n", "invalid annotation name: bad-name"),
    ("- record: r\n  expr: up\n  annotations:\n    a: b\n", "invalid field 'annotations' in recording rule"),
    ("- record: r\n  expr: up\n  for: 5m\n", "invalid field 'for' in recording rule"),
    ("- record: r\n  expr: up\n  keep_firing_for: 5m\n", "invalid field 'keep_firing_for' in recording rule"),
    ("- alert: A\n  expr: up\n  for: 5 minutes\n", "invalid duration for 'for'"),
    ("- alert: A\n  expr: up\n  keep_firing_for: x\n", "invalid duration for 'keep_firing_for'"),
    ("- alert: A\n  expr: up\n  annotations:\n    s: '{{ $labels.x'\n", 'annotation "s": template: __alert_A:'),
    ("- alert: A\n  expr: up\n  labels:\n    s: '{{ nope }}'\n",
     'label "s": template: __alert_A:1:3: function "nope" not'),
    ("- alert: A\n  expr: up\n  annotations:\n    s: '{{ $undefined }}'\n", 'undefined variable "$undefined"'),
    ("- alert: A\n  expr: up\n  fore: 5m\n", 'field "fore" not found in rule'),
    ("- alert: A\n  expr: up\n  labels: [a, b]\n", "labels must be a mapping"),
    ("- alert: A\n  expr: up\n  labels:\n    a: {b: c}\n", "must be a string"),
    ("- alert: A\n  expr: up\n  expr: down\n", 'mapping key "expr" already defined at line 5'),
    ("- just a string\n", "a rule must be a mapping"),
    ("- alert: A\n  expr: '{app=\"x\"} |= \"error\"'\n", "needs a metric query"),
]


@pytest.mark.parametrize(("rule", "fragment"), BAD_RULES)
def test_bad_rules(rule: str, fragment: str) -> None:
    msgs = problems(one_rule(rule))
    assert any(fragment in m for m in msgs), msgs
    assert all(m.startswith("rules/app.yml:") and 'group "g", rule 1' in m for m in msgs), msgs


def test_recording_rules_do_not_template_labels() -> None:
    (g,) = parse_rule_file(one_rule("- record: r\n  expr: up\n  labels:\n    x: '{{ not a template'\n"), "f")
    assert g.rules[0].labels == {"x": "{{ not a template"}


def test_zero_for_on_recording_rule_is_accepted() -> None:
    """rulefmt only rejects a non-zero ``for``; files Prometheus accepts must load."""
    (g,) = parse_rule_file(one_rule("- record: r\n  expr: up\n  for: 0s\n"), "f")
    assert g.rules[0].for_s == 0.0


BAD_GROUPS = [
    ("groups:\n  - name: g\n    rules: []\n  - name: g\n    rules: []\n",
     '4:11: group "g": groupname: "g" is repeated'),
    ("groups:\n  - rules: []\n", "group 1: group name must not be empty"),
    ("groups:\n  - name: g\n    interval: soon\n    rules: []\n", "invalid interval"),
    ("groups:\n  - name: g\n    query_offset: -1m\n    rules: []\n", "invalid query_offset"),
    ("groups:\n  - name: g\n    limit: many\n    rules: []\n", "limit must be an integer"),
    ("groups:\n  - name: g\n    limit: -1\n    rules: []\n", "limit must not be negative"),
    ("groups:\n  - name: g\n    lang: sql\n    rules: []\n", "lang must be one of promql, logql"),
    ("groups:\n  - name: g\n    labels: {__name__: x}\n    rules: []\n", "invalid label name: __name__"),
    ("groups:\n  - name: g\n    evaluation_interval: 1m\n    rules: []\n", 'field "evaluation_interval" not found'),
    ("groups:\n  - name: g\n    rules: {}\n", "'rules' must be a list"),
    ("groups: {}\n", "'groups' must be a list"),
    ("group:\n  - name: g\n", 'field "group" not found in rule file'),
    ("rules: []\n", "field 'groups' is required"),
    ("- name: g\n", "rule file must be a mapping"),
    ("groups: []\n---\ngroups: []\n", "one YAML document"),
    ("groups:\n  - name: g\n   rules: []\n", "yaml:"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_GROUPS)
def test_bad_groups(text: str, fragment: str) -> None:
    msgs = problems(text)
    assert any(fragment in m for m in msgs), msgs


def test_every_problem_is_reported_in_file_order() -> None:
    text = textwrap.dedent("""\
        groups:
          - name: a
            rules:
              - alert: One
                expr: up ==
                bogus: 1
              - record: two words
                expr: up
          - name: a
            interval: nope
            rules:
              - alert: Three
                expr: up
                annotations: {x: "{{ if }}"}
        """)
    msgs = problems(text)
    assert [m.split(": ")[0] for m in msgs] == [
        "rules/app.yml:5:15", "rules/app.yml:6:9", "rules/app.yml:7:17", "rules/app.yml:9:11",
        "rules/app.yml:10:15", "rules/app.yml:14:23"]
    assert "missing value for if" in msgs[-1]


def test_lang_detection_and_forcing() -> None:
    both = 'sum(rate({app="api"}[5m]))'  # valid PromQL and valid LogQL
    (g,) = parse_rule_file(one_rule(f"- record: r\n  expr: '{both}'\n"), "f")
    assert g.rules[0].lang == "promql"
    (g,) = parse_rule_file(one_rule(f"- record: r\n  expr: '{both}'\n", "    lang: logql\n"), "f")
    assert (g.lang, g.rules[0].lang) == ("logql", "logql")
    (g,) = parse_rule_file(one_rule(f"- record: r\n  expr: '{both}'\n"), "api:ns", lang="logql")
    assert (g.lang, g.rules[0].lang, g.source) == (None, "logql", "api:ns")
    # Forcing promql on LogQL reports PromQL's error; forcing logql on PromQL reports LogQL's.
    logql = "- alert: A\n  expr: 'count_over_time({app=\"x\"} |= \"e\" [5m]) > 0'\n"
    (msg,) = problems(one_rule(logql, "    lang: promql\n"))
    assert "could not parse expression" in msg and "parse error at line" not in msg
    (msg,) = problems(one_rule("- alert: A\n  expr: 'up{job=\"x\"} offset 5m unless on() vector(1)'\n",
                               "    lang: logql\n"))
    assert "parse error at line" in msg
    # Neither language parses: PromQL's error is the one reported.
    (msg,) = problems(one_rule("- alert: A\n  expr: 'sum(('\n"))
    assert "parse error at line" not in msg


def test_load_rule_files_globs(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text("groups:\n  - name: b\n    rules:\n      - record: r\n        expr: up\n")
    (tmp_path / "a.yml").write_text("groups:\n  - name: a\n    rules: []\n")
    (tmp_path / "c.txt").write_text("not rules")
    groups = load_rule_files([str(tmp_path / "*.yml"), str(tmp_path / "a.yml"), str(tmp_path / "none-*.yml")])
    assert [(g.name, Path(g.source).name) for g in groups] == [("a", "a.yml"), ("b", "b.yml")]
    # Same group name in two files is fine (groups are per file, as in Prometheus).
    (tmp_path / "d.yml").write_text("groups:\n  - name: a\n    rules: []\n")
    assert len(load_rule_files([str(tmp_path / "*.yml")])) == 3


def test_load_rule_files_collects_problems_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("groups:\n  - name: a\n    rules:\n      - alert: A\n")
    (tmp_path / "b.yml").write_text("groups:\n  - name: b\n    bogus: 1\n")
    with pytest.raises(RuleFileError) as exc:
        load_rule_files([str(tmp_path / "*.yml"), str(tmp_path / "missing.yml")])
    ps = exc.value.problems
    assert len(ps) == 3
    assert ps[0].startswith(f"{tmp_path / 'a.yml'}:4:9: ") and "field 'expr' must be set" in ps[0]
    assert ps[1].startswith(f"{tmp_path / 'b.yml'}:3:5: ")
    assert ps[2].startswith(f"{tmp_path / 'missing.yml'}: ")


def test_dump_round_trip() -> None:
    groups = parse_rule_file(GOOD, "rules/app.yml")
    text = dump_groups(groups)
    assert text.startswith("groups:\n- name: api\n  interval: 30s\n  query_offset: 1m\n  limit: 10\n")
    assert "expr: |\n" in text  # multi-line expressions stay readable
    again = parse_rule_file(text, "rules/app.yml")
    strip = [[(r.kind, r.name, r.expr, r.lang, r.for_s, r.keep_firing_for_s, r.labels, r.annotations)
              for r in g.rules] for g in groups]
    assert strip == [[(r.kind, r.name, r.expr, r.lang, r.for_s, r.keep_firing_for_s, r.labels, r.annotations)
                      for r in g.rules] for g in again]
    assert [(g.name, g.interval_s, g.query_offset_s, g.limit, g.labels) for g in again] == [
        (g.name, g.interval_s, g.query_offset_s, g.limit, g.labels) for g in groups]


def test_dump_omits_defaults_and_keeps_lang() -> None:
    g = RuleGroup(name="n", rules=[Rule(kind="record", name="r", expr="up")], lang="logql")
    assert dump_groups([g]) == "groups:\n- name: n\n  lang: logql\n  rules:\n  - record: r\n    expr: up\n"
