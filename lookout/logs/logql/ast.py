"""LogQL syntax tree.

Plain dataclasses, one per construct, each printing itself back as canonical LogQL (``str(node)``
is what ``format_query`` returns). Log-side nodes (selector, stages) and sample-side nodes
(range and vector aggregations, binary operations) part at :class:`LogExpr` / :class:`SampleExpr`
as in Loki's ``syntax`` package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lookout.logs.model import LabelMatcher


def quote(s: str) -> str:
    """A Go-style double-quoted string literal."""
    return json.dumps(s, ensure_ascii=False)


def fmt_duration(ns: int) -> str:
    """Prometheus-style duration text (``1h30m``, ``500ms``)."""
    if ns == 0:
        return "0s"
    out = ""
    neg = ns < 0
    ns = abs(ns)
    for unit, size in (("y", 365 * 86400 * 10**9), ("w", 7 * 86400 * 10**9), ("d", 86400 * 10**9),
                       ("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1)):
        if ns >= size:
            out += f"{ns // size}{unit}"
            ns %= size
    return ("-" if neg else "") + out


def fmt_number(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


class Node:
    """Base of every syntax node."""


# ---------------------------------------------------------------- log side


class Stage(Node):
    """One pipeline stage."""


@dataclass
class LineFilter(Stage):
    """``|= "a" or ip("10.0.0.0/8")``: ``op`` is ``|= != |~ !~ |> !>``; ``values`` are ``(kind, text)``
    with ``kind`` ``"str"`` or ``"ip"``."""

    op: str
    values: list[tuple[str, str]]

    def __str__(self) -> str:
        parts = [f"ip({quote(v)})" if k == "ip" else quote(v) for k, v in self.values]
        return f"{self.op} " + " or ".join(parts)


@dataclass
class JsonParser(Stage):
    params: list[tuple[str, str]] = field(default_factory=list)  # (label, expression)

    def __str__(self) -> str:
        if not self.params:
            return "| json"
        return "| json " + ", ".join(f"{k}={quote(v)}" for k, v in self.params)


@dataclass
class LogfmtParser(Stage):
    params: list[tuple[str, str]] = field(default_factory=list)
    strict: bool = False
    keep_empty: bool = False

    def __str__(self) -> str:
        s = "| logfmt"
        if self.strict:
            s += " --strict"
        if self.keep_empty:
            s += " --keep-empty"
        if self.params:
            s += " " + ", ".join(f"{k}={quote(v)}" for k, v in self.params)
        return s


@dataclass
class RegexpParser(Stage):
    pattern: str
    names: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"| regexp {quote(self.pattern)}"


@dataclass
class PatternParser(Stage):
    pattern: str

    def __str__(self) -> str:
        return f"| pattern {quote(self.pattern)}"


@dataclass
class UnpackParser(Stage):
    def __str__(self) -> str:
        return "| unpack"


@dataclass
class LineFormat(Stage):
    template: str

    def __str__(self) -> str:
        return f"| line_format {quote(self.template)}"


@dataclass
class LabelFormat(Stage):
    """``items``: ``(dst, is_template, value)``; a rename has ``value`` = the source label."""

    items: list[tuple[str, bool, str]]

    def __str__(self) -> str:
        return "| label_format " + ", ".join(f"{d}={quote(v) if t else v}" for d, t, v in self.items)


@dataclass
class Decolorize(Stage):
    def __str__(self) -> str:
        return "| decolorize"


@dataclass
class DropKeep(Stage):
    """``drop``/``keep``: ``items`` are bare names (matcher None) or ``name op "value"`` matchers."""

    keep: bool
    items: list[tuple[str, LabelMatcher | None]]

    def __str__(self) -> str:
        parts = [n if m is None else f"{m.name}{m.op}{quote(m.value)}" for n, m in self.items]
        return ("| keep " if self.keep else "| drop ") + ", ".join(parts)


@dataclass
class Distinct(Stage):
    labels: list[str]

    def __str__(self) -> str:
        return "| distinct " + ", ".join(self.labels)


# label filter expressions ------------------------------------------------


class LabelFilterExpr(Node):
    """A predicate over one entry's labels."""


@dataclass
class LFBinary(LabelFilterExpr):
    op: str  # "and" | "or"
    left: LabelFilterExpr
    right: LabelFilterExpr
    paren: bool = False

    def __str__(self) -> str:
        s = f"{self.left} {self.op} {self.right}"
        return f"({s})" if self.paren else s


@dataclass
class LFString(LabelFilterExpr):
    name: str
    op: str  # = != =~ !~
    value: str

    def __str__(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"


@dataclass
class LFNumeric(LabelFilterExpr):
    """Numeric, duration or bytes comparison: ``kind`` is ``number``/``duration``/``bytes`` and
    ``value`` is the literal converted to float (seconds for durations)."""

    name: str
    op: str  # == != > >= < <=  (= is stored as ==)
    kind: str
    value: float
    text: str

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.text}"


@dataclass
class LFIp(LabelFilterExpr):
    name: str
    op: str  # = or !=
    pattern: str

    def __str__(self) -> str:
        return f"{self.name}{self.op}ip({quote(self.pattern)})"


@dataclass
class LabelFilter(Stage):
    expr: LabelFilterExpr

    def __str__(self) -> str:
        return f"| {self.expr}"


@dataclass
class Unwrap(Node):
    label: str
    conv: str = ""  # "" | "duration" | "duration_seconds" | "bytes"
    post_filters: list[LabelFilter] = field(default_factory=list)

    def __str__(self) -> str:
        s = f"| unwrap {self.conv}({self.label})" if self.conv else f"| unwrap {self.label}"
        for f in self.post_filters:
            s += f" {f}"
        return s


@dataclass
class LogExpr(Node):
    """A stream selector with its pipeline: a log query on its own, or inside a range."""

    matchers: list[LabelMatcher]
    stages: list[Stage] = field(default_factory=list)

    def selector(self) -> str:
        return "{" + ", ".join(f"{m.name}{m.op}{quote(m.value)}" for m in self.matchers) + "}"

    def __str__(self) -> str:
        return " ".join([self.selector()] + [str(s) for s in self.stages])


# ---------------------------------------------------------------- sample side


class SampleExpr(Node):
    """An expression that evaluates to numbers (vector, matrix or scalar)."""


@dataclass
class Grouping(Node):
    without: bool
    labels: list[str]

    def __str__(self) -> str:
        return ("without" if self.without else "by") + " (" + ", ".join(self.labels) + ")"


@dataclass
class LogRange(Node):
    log: LogExpr
    range_ns: int
    offset_ns: int = 0
    unwrap: Unwrap | None = None

    def __str__(self) -> str:
        s = str(self.log)
        if self.unwrap is not None:
            s += f" {self.unwrap}"
        s += f" [{fmt_duration(self.range_ns)}]"
        if self.offset_ns:
            s += f" offset {fmt_duration(self.offset_ns)}"
        return s


@dataclass
class RangeAgg(SampleExpr):
    op: str
    range: LogRange
    param: float | None = None
    grouping: Grouping | None = None

    def __str__(self) -> str:
        p = f"{fmt_number(self.param)}, " if self.param is not None else ""
        s = f"{self.op}({p}{self.range})"
        return f"{s} {self.grouping}" if self.grouping else s


@dataclass
class VectorAgg(SampleExpr):
    op: str
    expr: SampleExpr
    grouping: Grouping | None = None
    param: float | None = None

    def __str__(self) -> str:
        p = f"{fmt_number(self.param)}, " if self.param is not None else ""
        g = f" {self.grouping}" if self.grouping else ""
        return f"{self.op}{g} ({p}{self.expr})"


@dataclass
class VectorMatching(Node):
    on: bool = False
    labels: list[str] = field(default_factory=list)
    card: str = "one-to-one"  # one-to-one | many-to-one | one-to-many | many-to-many
    include: list[str] = field(default_factory=list)
    explicit: bool = False  # on()/ignoring() written in the query

    def __str__(self) -> str:
        s = ""
        if self.explicit:
            s += ("on" if self.on else "ignoring") + " (" + ", ".join(self.labels) + ")"
        if self.card == "many-to-one":
            s += " group_left (" + ", ".join(self.include) + ")"
        elif self.card == "one-to-many":
            s += " group_right (" + ", ".join(self.include) + ")"
        return s.strip()


@dataclass
class BinOp(SampleExpr):
    op: str
    lhs: SampleExpr
    rhs: SampleExpr
    bool_mod: bool = False
    matching: VectorMatching = field(default_factory=VectorMatching)

    def __str__(self) -> str:
        mods = ""
        if self.bool_mod:
            mods += " bool"
        m = str(self.matching)
        if m:
            mods += " " + m
        return f"{self.lhs} {self.op}{mods} {self.rhs}"


@dataclass
class Literal(SampleExpr):
    value: float

    def __str__(self) -> str:
        return fmt_number(self.value)


@dataclass
class VectorLit(SampleExpr):
    value: float

    def __str__(self) -> str:
        return f"vector({fmt_number(self.value)})"


@dataclass
class LabelReplace(SampleExpr):
    expr: SampleExpr
    dst: str
    replacement: str
    src: str
    regex: str

    def __str__(self) -> str:
        args = ", ".join(quote(x) for x in (self.dst, self.replacement, self.src, self.regex))
        return f"label_replace({self.expr}, {args})"


@dataclass
class Paren(SampleExpr):
    expr: SampleExpr

    def __str__(self) -> str:
        return f"({self.expr})"


Expr = LogExpr | SampleExpr

RANGE_OPS = frozenset({
    "rate", "rate_counter", "count_over_time", "bytes_rate", "bytes_over_time", "absent_over_time",
    "sum_over_time", "avg_over_time", "min_over_time", "max_over_time", "stddev_over_time", "stdvar_over_time",
    "quantile_over_time", "first_over_time", "last_over_time",
})
VECTOR_OPS = frozenset({"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "sort",
                        "sort_desc", "approx_topk"})
