"""Prometheus rule files (and Loki-ruler LogQL rules): parse, validate, load by glob, dump.

The format is Prometheus' ``rulefmt`` so existing rule files load unchanged::

    groups:
      - name: api
        interval: 30s          # optional; default: the global evaluation interval
        query_offset: 1m       # optional
        limit: 0               # optional; max alerts/series per rule, 0 = no limit
        labels: {team: web}    # optional; Prometheus 3 group labels, added to every rule
        lang: logql            # optional Lookout extension: force the expression language
        rules:
          - alert: HighErrors
            expr: sum(rate(http_errors_total[5m])) by (job) > 1
            for: 5m
            keep_firing_for: 1m
            labels: {severity: page}
            annotations: {summary: "{{ $labels.job }} errors at {{ $value | humanize }}/s"}
          - record: job:http_errors:rate5m
            expr: sum(rate(http_errors_total[5m])) by (job)

Validation follows ``rulefmt`` (and is a bit stricter where rulefmt silently ignores mistakes:
unknown keys everywhere, a missing ``groups`` key). Every problem in a file is reported at once,
each naming file, line:column, group and rule — a rule file is edited by hand, and fixing one
error per reload is miserable.

An expression is tried as PromQL, then as LogQL (where it must be a metric query such as
``sum(count_over_time({app="api"} |= "error" [5m]))``: a log query yields no numbers to alert
on). Valid PromQL wins when both parse (``rate({app="x"}[5m])`` is both); a group's ``lang``
key (or the ``lang`` argument, which the Loki ruler API uses) settles such cases.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import promql_parser
import yaml

from lookout.alerting.templates import TemplateError, parse_alert_template
from lookout.storage.durations import format_duration, parse_duration

__all__ = ["Rule", "RuleFileError", "RuleGroup", "dump_groups", "load_rule_files", "parse_rule_file"]

_GROUP_KEYS = ("name", "interval", "query_offset", "limit", "labels", "lang", "rules")
_RULE_KEYS = ("record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations")
_LANGS = ("promql", "logql")
_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"


@dataclass
class Rule:
    """One alerting (``kind == "alert"``) or recording (``kind == "record"``) rule."""

    kind: str
    name: str
    expr: str
    lang: str = "promql"
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    line: int = 0  # 1-based line of the rule in its file (0 when not from a file)


@dataclass
class RuleGroup:
    """Rules evaluated together, in order, every ``interval_s`` (None: the global default)."""

    name: str
    interval_s: float | None = None
    limit: int = 0
    query_offset_s: float | None = None
    rules: list[Rule] = field(default_factory=list)
    source: str = ""  # file path, or "api:<namespace>" for rules set through the HTTP API
    labels: dict[str, str] = field(default_factory=dict)  # Prometheus 3 group labels
    lang: str | None = None  # Lookout extension: the language forced by the group's ``lang`` key

    def rule_labels(self, rule: Rule) -> dict[str, str]:
        """The labels a rule's results carry: group labels, overridden by the rule's own."""
        return {**self.labels, **rule.labels} if self.labels else dict(rule.labels)


class RuleFileError(ValueError):
    """Rule files that don't validate; ``problems`` lists every problem found, one per entry."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# ---------------------------------------------------------------- expressions


class _NotMetricQuery(ValueError):
    pass


def _promql_error(expr: str) -> str | None:
    try:
        promql_parser.parse(expr)
    except Exception as e:  # the parser raises ValueError; be defensive about its internals
        return str(e) or type(e).__name__
    return None


def _logql_error(expr: str) -> tuple[str | None, bool]:
    """(error, parsed): ``parsed`` is True when the text is LogQL but not a metric query."""
    from lookout.logs.logql import LogQLError, parse
    from lookout.logs.logql.ast import SampleExpr

    try:
        node = parse(expr)
    except LogQLError as e:
        return str(e), False
    if not isinstance(node, SampleExpr):
        return ("a LogQL rule needs a metric query (e.g. sum(count_over_time({app=\"x\"} |= \"error\" [5m]))), "
                "not a log query"), True
    return None, True


def check_expression(expr: str, lang: str | None = None) -> tuple[str, str | None]:
    """The language of ``expr`` and the parse error (None when valid). ``lang`` forces one;
    otherwise PromQL is tried first and its error is the one reported when neither parses,
    unless the text parsed as a LogQL log query (then that is the more useful complaint)."""
    if lang == "logql":
        return "logql", _logql_error(expr)[0]
    perr = _promql_error(expr)
    if lang == "promql" or perr is None:
        return "promql", perr
    lerr, parsed = _logql_error(expr)
    if lerr is None or parsed:
        return "logql", lerr
    return "promql", perr


# ---------------------------------------------------------------- YAML node helpers


def _pos(node: yaml.Node) -> str:
    return f"{node.start_mark.line + 1}:{node.start_mark.column + 1}"


class _Checker:
    """Collects problems for one file, each prefixed with ``file:line:col: <context>: ``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._problems: list[tuple[int, int, str]] = []

    def add(self, node: yaml.Node, msg: str, context: str = "") -> None:
        mark = node.start_mark
        text = f"{self.source}:{_pos(node)}: {context + ': ' if context else ''}{msg}"
        self._problems.append((mark.line, mark.column, text))

    @property
    def problems(self) -> list[str]:
        """In file order, so the list reads top to bottom like the file."""
        return [t for _, _, t in sorted(self._problems, key=lambda p: (p[0], p[1]))]

    def mapping(self, node: yaml.Node, allowed: Iterable[str], what: str,
                context: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The entries of a mapping node by key; unknown and repeated keys are problems."""
        if not isinstance(node, yaml.MappingNode):
            self.add(node, f"{what} must be a mapping", context)
            return {}
        allowed = tuple(allowed)
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
            if key in out:
                self.add(k, f'mapping key "{key}" already defined at line {out[key][0].start_mark.line + 1}', context)
                continue
            if key not in allowed:
                self.add(k, f'field "{key}" not found in {what} (valid fields: {", ".join(allowed)})', context)
            out[key] = (k, v)
        return out

    def string(self, node: yaml.Node, what: str, context: str) -> str | None:
        """A scalar's text (numbers and booleans as written, as yaml.v3 decodes into strings)."""
        if not isinstance(node, yaml.ScalarNode):
            self.add(node, f"{what} must be a string", context)
            return None
        if node.tag == _NULL_TAG:
            return ""
        return str(node.value)

    def duration(self, node: yaml.Node, what: str, context: str) -> float | None:
        text = self.string(node, what, context)
        if text is None or text == "":
            return None
        try:
            return parse_duration(text)
        except ValueError as e:
            self.add(node, f"invalid {what}: {e}", context)
            return None

    def string_map(self, node: yaml.Node, what: str, context: str, *, label_names: bool,
                   forbid_name: bool) -> tuple[dict[str, str], dict[str, yaml.Node]]:
        """A ``name: value`` mapping (labels or annotations) and each name's key node."""
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return {}, {}
        if not isinstance(node, yaml.MappingNode):
            self.add(node, f"{what} must be a mapping of names to strings", context)
            return {}, {}
        out: dict[str, str] = {}
        nodes: dict[str, yaml.Node] = {}
        singular = what.rstrip("s")
        for k, v in node.value:
            name = self.string(k, f"{singular} name", context)
            value = self.string(v, f"value of {singular} {k.value!r}", context)
            if name is None or value is None:
                continue
            if name in out:
                self.add(k, f'mapping key "{name}" already defined at line {nodes[name].start_mark.line + 1}', context)
                continue
            if label_names and (not _LABEL_NAME_RE.match(name) or (forbid_name and name == "__name__")):
                self.add(k, f"invalid {singular} name: {name}", context)
            out[name] = value
            nodes[name] = k
        return out, nodes


# ---------------------------------------------------------------- parsing


def parse_rule_file(text: str, source: str, *, lang: str | None = None) -> list[RuleGroup]:
    """Parse and validate one rule file. ``source`` names it in messages and in
    ``RuleGroup.source``; ``lang`` forces the expression language of every group that has no
    ``lang`` key (the Loki ruler API passes ``"logql"``). Raises :class:`RuleFileError` with
    every problem found."""
    ck = _Checker(source)
    try:
        docs = [d for d in yaml.compose_all(text, Loader=yaml.SafeLoader) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{mark.line + 1}:{mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise RuleFileError([f"{source}:{where}yaml: {problem}"]) from None
    if not docs:
        return []
    if len(docs) > 1:
        ck.add(docs[1], "a rule file must hold one YAML document")
    root = docs[0]
    top = ck.mapping(root, ("groups",), "rule file", "")
    groups: list[RuleGroup] = []
    if isinstance(root, yaml.MappingNode) and "groups" not in top:
        ck.add(root, "field 'groups' is required")
    if "groups" in top:
        gnode = top["groups"][1]
        if isinstance(gnode, yaml.SequenceNode):
            seen: dict[str, yaml.Node] = {}
            for gi, g in enumerate(gnode.value):
                group = _parse_group(ck, g, gi, source, lang, seen)
                if group is not None:
                    groups.append(group)
        elif not (isinstance(gnode, yaml.ScalarNode) and gnode.tag == _NULL_TAG):
            ck.add(gnode, "'groups' must be a list of rule groups")
    if ck.problems:
        raise RuleFileError(ck.problems)
    return groups


def _parse_group(ck: _Checker, node: yaml.Node, gi: int, source: str, default_lang: str | None,
                 seen: dict[str, yaml.Node]) -> RuleGroup | None:
    if not isinstance(node, yaml.MappingNode):
        ck.add(node, "a rule group must be a mapping", f"group {gi + 1}")
        return None
    name_entry = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}.get("name")
    name = ck.string(name_entry[1], "group name", f"group {gi + 1}") if name_entry else ""
    name = name or ""
    ctx = f'group "{name}"' if name else f"group {gi + 1}"
    fields = ck.mapping(node, _GROUP_KEYS, "rule group", ctx)
    if not name:
        ck.add(name_entry[1] if name_entry else node, "group name must not be empty", ctx)
    elif name in seen:
        ck.add(name_entry[1] if name_entry else node,
               f'groupname: "{name}" is repeated in the same file (first at line {seen[name].start_mark.line + 1})',
               ctx)
    else:
        seen[name] = node
    group = RuleGroup(name=name, source=source)
    if "interval" in fields:
        iv = ck.duration(fields["interval"][1], "interval", ctx)
        group.interval_s = iv or None
    if "query_offset" in fields:
        group.query_offset_s = ck.duration(fields["query_offset"][1], "query_offset", ctx)
    if "limit" in fields:
        lnode = fields["limit"][1]
        if isinstance(lnode, yaml.ScalarNode) and lnode.tag == _INT_TAG:
            group.limit = int(yaml.constructor.SafeConstructor().construct_yaml_int(lnode))
            if group.limit < 0:
                ck.add(lnode, "limit must not be negative", ctx)
        elif not (isinstance(lnode, yaml.ScalarNode) and lnode.tag == _NULL_TAG):
            ck.add(lnode, f"limit must be an integer, got {getattr(lnode, 'value', '')!r}", ctx)
    if "labels" in fields:
        group.labels, _ = ck.string_map(fields["labels"][1], "labels", ctx, label_names=True, forbid_name=True)
    lang = default_lang
    if "lang" in fields:
        lnode = fields["lang"][1]
        value = ck.string(lnode, "lang", ctx)
        if value not in _LANGS:
            ck.add(lnode, f"lang must be one of {', '.join(_LANGS)}, got {value!r}", ctx)
        else:
            lang = group.lang = value
    if "rules" in fields:
        rnode = fields["rules"][1]
        if isinstance(rnode, yaml.SequenceNode):
            for ri, r in enumerate(rnode.value):
                rule = _parse_rule(ck, r, ri, name, lang)
                if rule is not None:
                    group.rules.append(rule)
        elif not (isinstance(rnode, yaml.ScalarNode) and rnode.tag == _NULL_TAG):
            ck.add(rnode, "'rules' must be a list of rules", ctx)
    return group


def _parse_rule(ck: _Checker, node: yaml.Node, ri: int, group: str, lang: str | None) -> Rule | None:
    base = f'group "{group}", rule {ri + 1}'
    if not isinstance(node, yaml.MappingNode):
        ck.add(node, "a rule must be a mapping", base)
        return None
    raw = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    alert = ck.string(raw["alert"], "alert", base) if "alert" in raw else ""
    record = ck.string(raw["record"], "record", base) if "record" in raw else ""
    alert, record = alert or "", record or ""
    ctx = f'{base} (alert "{alert}")' if alert else (f'{base} (record "{record}")' if record else base)
    fields = ck.mapping(node, _RULE_KEYS, "rule", ctx)

    if alert and record:
        ck.add(fields["record"][1], "only one of 'record' and 'alert' must be set", ctx)
    elif not alert and not record:
        if "alert" in fields:
            ck.add(fields["alert"][1], "alert name must not be empty", ctx)
        elif "record" in fields:
            ck.add(fields["record"][1], "record name must not be empty", ctx)
        else:
            ck.add(node, "one of 'record' or 'alert' must be set", ctx)
    kind = "alert" if alert else "record"
    if record and not alert and not _METRIC_NAME_RE.match(record):
        ck.add(fields["record"][1], f"invalid recording rule name: {record}", ctx)

    expr = ""
    rule_lang = lang or "promql"
    if "expr" in fields:
        expr = ck.string(fields["expr"][1], "expr", ctx) or ""
    if not expr.strip():
        ck.add(fields["expr"][1] if "expr" in fields else node, "field 'expr' must be set in rule", ctx)
    else:
        rule_lang, err = check_expression(expr, lang)
        if err is not None:
            ck.add(fields["expr"][1], f"could not parse expression: {err}", ctx)

    for_s = keep_s = 0.0
    if "for" in fields:
        for_s = ck.duration(fields["for"][1], "duration for 'for'", ctx) or 0.0
    if "keep_firing_for" in fields:
        keep_s = ck.duration(fields["keep_firing_for"][1], "duration for 'keep_firing_for'", ctx) or 0.0
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    label_nodes: dict[str, yaml.Node] = {}
    ann_nodes: dict[str, yaml.Node] = {}
    if "labels" in fields:
        labels, label_nodes = ck.string_map(fields["labels"][1], "labels", ctx, label_names=True, forbid_name=True)
    if "annotations" in fields:
        annotations, ann_nodes = ck.string_map(fields["annotations"][1], "annotations", ctx, label_names=True,
                                               forbid_name=False)

    if kind == "record" and not alert:
        if annotations:
            ck.add(fields["annotations"][0], "invalid field 'annotations' in recording rule", ctx)
        if for_s:
            ck.add(fields["for"][0], "invalid field 'for' in recording rule", ctx)
        if keep_s:
            ck.add(fields["keep_firing_for"][0], "invalid field 'keep_firing_for' in recording rule", ctx)
    elif alert:
        # Alert labels and annotations are templates; they must parse (rulefmt's testTemplateParsing).
        for what, values, nodes in (("label", labels, label_nodes), ("annotation", annotations, ann_nodes)):
            for k, v in values.items():
                if "{{" not in v:
                    continue
                try:
                    parse_alert_template(v, f"__alert_{alert}")
                except TemplateError as e:
                    ck.add(nodes[k], f'{what} "{k}": {e}', ctx)

    return Rule(kind=kind, name=alert or record, expr=expr, lang=rule_lang, for_s=for_s, keep_firing_for_s=keep_s,
                labels=labels, annotations=annotations, line=node.start_mark.line + 1)


def load_rule_files(patterns: list[str]) -> list[RuleGroup]:
    """Every group of every file matching ``patterns`` (globs, as Prometheus' ``rule_files``),
    files in sorted order per pattern, each file once. A glob matching nothing is fine (as in
    Prometheus); a literal path that doesn't exist is a problem. Raises :class:`RuleFileError`
    with the problems of all files."""
    problems: list[str] = []
    groups: list[RuleGroup] = []
    seen: set[str] = set()
    for pattern in patterns:
        if glob.has_magic(pattern):
            paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        else:
            paths = [pattern]
        for path in paths:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                problems.append(f"{path}: {e.strerror if isinstance(e, OSError) and e.strerror else e}")
                continue
            try:
                groups.extend(parse_rule_file(text, path))
            except RuleFileError as e:
                problems.extend(e.problems)
    if problems:
        raise RuleFileError(problems)
    return groups


# ---------------------------------------------------------------- dumping


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings (long expressions, annotations) as ``|`` literals."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar(_STR_TAG, value, style=style)


_Dumper.add_representer(str, _str_representer)


def group_to_dict(g: RuleGroup) -> dict[str, Any]:
    """One group in rulefmt's field order, leaving out defaults (as Prometheus' ``omitempty``)."""
    out: dict[str, Any] = {"name": g.name}
    if g.interval_s:
        out["interval"] = format_duration(g.interval_s)
    if g.query_offset_s is not None:
        out["query_offset"] = format_duration(g.query_offset_s)
    if g.limit:
        out["limit"] = g.limit
    if g.labels:
        out["labels"] = dict(g.labels)
    if g.lang:
        out["lang"] = g.lang
    rules: list[dict[str, Any]] = []
    for r in g.rules:
        d: dict[str, Any] = {r.kind: r.name, "expr": r.expr}
        if r.for_s:
            d["for"] = format_duration(r.for_s)
        if r.keep_firing_for_s:
            d["keep_firing_for"] = format_duration(r.keep_firing_for_s)
        if r.labels:
            d["labels"] = dict(r.labels)
        if r.annotations:
            d["annotations"] = dict(r.annotations)
        rules.append(d)
    out["rules"] = rules
    return out


def dump_groups(groups: Iterable[RuleGroup]) -> str:
    """Groups as a rule file (``groups:`` …), which :func:`parse_rule_file` reads back."""
    doc = {"groups": [group_to_dict(g) for g in groups]}
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
