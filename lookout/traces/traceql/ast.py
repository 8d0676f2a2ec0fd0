"""TraceQL syntax tree: frozen, slotted dataclasses that know their source span.

``span`` is a 0-based ``(start, end)`` offset pair into the query text; it takes no part in
equality, so ``parse(str(node)) == node`` holds for every tree the parser builds. ``str(node)``
renders canonical TraceQL with the fewest parentheses that keep the tree's shape.

Kinds of node:

- field expressions (inside ``{ }``, aggregate and ``by()`` arguments): ``Static``,
  ``Attribute``, ``Intrinsic``, ``UnaryOp``, ``BinaryOp``;
- spanset pipeline elements: ``SpansetFilter``, ``SpansetOperation``, ``ScalarFilter``,
  ``GroupBy``, ``Coalesce``, ``Select``, ``Pipeline``;
- scalar expressions: ``Aggregate``, ``ScalarOp`` (and numeric ``Static``);
- metrics: ``MetricsAggregate`` (``rate()`` …), ``SecondStage`` (``topk``/``bottomk``),
  ``MetricsCompare`` (``… > 10``), ``MetricsMath`` (``(… | rate()) * 100``);
- the root: ``Query`` with optional ``Hint`` s (``with(sample=0.1)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields

from lookout.gocompat import quote

from .lexer import is_attribute_rune

Span = tuple[int, int]

# Binding strength of binary operators (higher binds tighter), shared by both expression levels.
PRECEDENCE = {
    "&&": 1, "||": 1,
    "=": 2, "!=": 2, "<": 2, "<=": 2, ">": 2, ">=": 2, "=~": 2, "!~": 2,
    ">>": 2, "<<": 2, "~": 2, "!>": 2, "!<": 2, "!>>": 2, "!<<": 2,
    "&>": 2, "&<": 2, "&~": 2, "&>>": 2, "&<<": 2,
    "+": 3, "-": 3,
    "*": 5, "/": 5, "%": 5,
    "^": 6,
}  # fmt: skip
UNARY_PRECEDENCE = {"-": 3, "!": 4}
RIGHT_ASSOCIATIVE = frozenset({"^"})

SPANSET_OPERATORS = frozenset(
    {"&&", "||", ">", "<", ">>", "<<", "~", "!>", "!<", "!~", "!>>", "!<<",
     "&>", "&<", "&~", "&>>", "&<<"}
)  # fmt: skip
COMPARISON_OPERATORS = frozenset({"=", "!=", "<", "<=", ">", ">="})
ARITHMETIC_OPERATORS = frozenset({"+", "-", "*", "/", "%", "^"})


@dataclass(frozen=True, slots=True)
class Node:
    span: Span = field(default=(0, 0), compare=False, kw_only=True, repr=False)

    def children(self) -> tuple[Node, ...]:
        out: list[Node] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Node):
                out.append(value)
            elif isinstance(value, tuple):
                out.extend(v for v in value if isinstance(v, Node))
        return tuple(out)


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, pre-order."""
    yield node
    for child in node.children():
        yield from walk(child)


# ---------------------------------------------------------------------------------------------
# Field expressions


@dataclass(frozen=True, slots=True)
class FieldExpr(Node):
    pass


STATUS_NAMES = ("unset", "ok", "error")  # OTLP status code = index
KIND_NAMES = ("unspecified", "internal", "server", "client", "producer", "consumer")  # = OTLP kind

_DURATION_UNITS = (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6),
                   ("us", 10**3), ("ns", 1))  # fmt: skip


def format_duration(nanos: int) -> str:
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    for unit, size in _DURATION_UNITS:
        if nanos % size == 0:
            return f"{sign}{nanos // size}{unit}"
    raise AssertionError("unreachable")


def format_attribute_name(name: str) -> str:
    if name and all(is_attribute_rune(ch) and ch not in '"\\' for ch in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Static(FieldExpr):
    """A literal. ``type`` is one of ``string int float duration bool nil status kind``;
    durations are integer nanoseconds, statuses and kinds their lower-case names."""

    type: str
    value: object = None

    @property
    def is_numeric(self) -> bool:
        return self.type in ("int", "float", "duration")

    def __str__(self) -> str:
        t, v = self.type, self.value
        if t == "string":
            assert isinstance(v, str)
            return quote(v)
        if t == "duration":
            assert isinstance(v, int)
            return format_duration(v)
        if t == "bool":
            return "true" if v else "false"
        if t == "nil":
            return "nil"
        if t == "float":
            return repr(float(v))  # type: ignore[arg-type]
        return str(v)


@dataclass(frozen=True, slots=True)
class Attribute(FieldExpr):
    """``span.x`` / ``resource.x`` / ``event.x`` / ``link.x`` / ``instrumentation.x`` or the
    unscoped ``.x`` (``scope=None``); ``parent`` marks ``parent.`` forms (unsupported)."""

    scope: str | None
    name: str
    parent: bool = False

    def __str__(self) -> str:
        prefix = ".".join(p for p in ("parent" if self.parent else None, self.scope) if p)
        return f"{prefix}.{format_attribute_name(self.name)}"


# Intrinsic spelling → canonical intrinsic (legacy unscoped forms map onto the scoped ones).
INTRINSICS = {
    "name": "span:name",
    "status": "span:status",
    "statusMessage": "span:statusMessage",
    "kind": "span:kind",
    "duration": "span:duration",
    "childCount": "span:childCount",
    "traceDuration": "trace:duration",
    "rootName": "trace:rootName",
    "rootServiceName": "trace:rootService",
    "parent": "parent",
    "nestedSetLeft": "span:nestedSetLeft",
    "nestedSetRight": "span:nestedSetRight",
    "nestedSetParent": "span:nestedSetParent",
    "span:name": "span:name",
    "span:status": "span:status",
    "span:statusMessage": "span:statusMessage",
    "span:kind": "span:kind",
    "span:duration": "span:duration",
    "span:id": "span:id",
    "span:parentID": "span:parentID",
    "span:childCount": "span:childCount",
    "trace:duration": "trace:duration",
    "trace:rootName": "trace:rootName",
    "trace:rootService": "trace:rootService",
    "trace:id": "trace:id",
    "event:name": "event:name",
    "event:timeSinceStart": "event:timeSinceStart",
    "link:traceID": "link:traceID",
    "link:spanID": "link:spanID",
    "instrumentation:name": "instrumentation:name",
    "instrumentation:version": "instrumentation:version",
}

# Canonical intrinsic → its value type (for validation).
INTRINSIC_TYPES = {
    "span:name": "string",
    "span:status": "status",
    "span:statusMessage": "string",
    "span:kind": "kind",
    "span:duration": "duration",
    "span:childCount": "int",
    "span:id": "string",
    "span:parentID": "string",
    "span:nestedSetLeft": "int",
    "span:nestedSetRight": "int",
    "span:nestedSetParent": "int",
    "trace:duration": "duration",
    "trace:rootName": "string",
    "trace:rootService": "string",
    "trace:id": "string",
    "event:name": "string",
    "event:timeSinceStart": "duration",
    "link:traceID": "string",
    "link:spanID": "string",
    "instrumentation:name": "string",
    "instrumentation:version": "string",
    "parent": "parent",
}


@dataclass(frozen=True, slots=True)
class Intrinsic(FieldExpr):
    """An intrinsic as written (``name``, ``span:name``, ``traceDuration`` …)."""

    name: str

    @property
    def canonical(self) -> str:
        return INTRINSICS[self.name]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class UnaryOp(FieldExpr):
    op: str  # "!" or "-"
    operand: FieldExpr

    def __str__(self) -> str:
        inner = str(self.operand)
        if isinstance(self.operand, BinaryOp | UnaryOp) or _is_negative_number(self.operand):
            inner = f"({inner})"
        return f"{self.op}{inner}"


@dataclass(frozen=True, slots=True)
class BinaryOp(FieldExpr):
    op: str
    left: FieldExpr
    right: FieldExpr

    def __str__(self) -> str:
        return _binary(self.op, self.left, self.right)


# ---------------------------------------------------------------------------------------------
# Spanset pipeline elements and scalars


@dataclass(frozen=True, slots=True)
class SpansetFilter(Node):
    """``{ expr }``; ``expr`` is None for ``{ }`` (every span)."""

    expr: FieldExpr | None = None

    def __str__(self) -> str:
        return "{ }" if self.expr is None else f"{{ {self.expr} }}"


@dataclass(frozen=True, slots=True)
class SpansetOperation(Node):
    """Two spansets of one trace combined: ``&& || > < >> << ~`` and the ``!``/``&`` forms."""

    op: str
    left: Node
    right: Node

    def __str__(self) -> str:
        return _binary(self.op, self.left, self.right)


@dataclass(frozen=True, slots=True)
class Aggregate(Node):
    """``count()``, ``avg(f)``, ``max(f)``, ``min(f)``, ``sum(f)``."""

    func: str
    expr: FieldExpr | None = None

    def __str__(self) -> str:
        return f"{self.func}({'' if self.expr is None else self.expr})"


@dataclass(frozen=True, slots=True)
class ScalarOp(Node):
    """Arithmetic between scalars (aggregates, numbers) or between wrapped scalar pipelines."""

    op: str
    left: Node
    right: Node

    def __str__(self) -> str:
        return _binary(self.op, self.left, self.right)


@dataclass(frozen=True, slots=True)
class ScalarFilter(Node):
    """A comparison of scalars: ``count() > 2``, ``({ .a } | count()) > ({ .b } | count())``."""

    op: str
    left: Node
    right: Node

    def __str__(self) -> str:
        return _binary(self.op, self.left, self.right)


@dataclass(frozen=True, slots=True)
class GroupBy(Node):
    expr: FieldExpr

    def __str__(self) -> str:
        return f"by({self.expr})"


@dataclass(frozen=True, slots=True)
class Coalesce(Node):
    def __str__(self) -> str:
        return "coalesce()"


@dataclass(frozen=True, slots=True)
class Select(Node):
    attributes: tuple[FieldExpr, ...]

    def __str__(self) -> str:
        return f"select({', '.join(map(str, self.attributes))})"


@dataclass(frozen=True, slots=True)
class Pipeline(Node):
    """Stages joined by ``|``; only built for two or more stages, or for a parenthesised
    single spanset stage such as ``(count() > 1)``."""

    stages: tuple[Node, ...]

    def __str__(self) -> str:
        return " | ".join(map(str, self.stages))


# ---------------------------------------------------------------------------------------------
# Metrics


@dataclass(frozen=True, slots=True)
class MetricsAggregate(Node):
    """``rate()``, ``count_over_time()``, ``{min,max,avg,sum,histogram}_over_time(attr)``,
    ``quantile_over_time(attr, q…)``, ``compare({…}, n…)``, each with an optional ``by (…)``."""

    func: str
    attribute: FieldExpr | None = None
    params: tuple[Static, ...] = ()
    filter: SpansetFilter | None = None
    by: tuple[FieldExpr, ...] = ()

    def __str__(self) -> str:
        args: list[str] = []
        if self.filter is not None:
            args.append(str(self.filter))
        if self.attribute is not None:
            args.append(str(self.attribute))
        args.extend(map(str, self.params))
        out = f"{self.func}({', '.join(args)})"
        if self.by:
            out += f" by ({', '.join(map(str, self.by))})"
        return out


@dataclass(frozen=True, slots=True)
class SecondStage(Node):
    """``topk(k)`` / ``bottomk(k)`` after a metrics function."""

    func: str
    k: int

    def __str__(self) -> str:
        return f"{self.func}({self.k})"


@dataclass(frozen=True, slots=True)
class MetricsCompare(Node):
    """Keep the data points of ``expr`` that compare true with a constant."""

    op: str
    expr: Node
    value: Node  # a numeric Static or ScalarOp over numeric statics

    def __str__(self) -> str:
        return _binary(self.op, self.expr, self.value)


@dataclass(frozen=True, slots=True)
class MetricsMath(Node):
    """``+ - * /`` between parenthesised metrics queries and/or numeric constants."""

    op: str
    left: Node
    right: Node

    def __str__(self) -> str:
        return _binary(self.op, self.left, self.right)


# ---------------------------------------------------------------------------------------------
# Root


@dataclass(frozen=True, slots=True)
class Hint(Node):
    name: str
    value: Static

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


@dataclass(frozen=True, slots=True)
class Query(Node):
    expr: Node
    hints: tuple[Hint, ...] = ()

    def __str__(self) -> str:
        out = str(self.expr)
        if self.hints:
            out += f" with({', '.join(map(str, self.hints))})"
        return out


# ---------------------------------------------------------------------------------------------
# Rendering helpers

_BINARY_TYPES = (BinaryOp, SpansetOperation, ScalarOp, ScalarFilter, MetricsCompare, MetricsMath)


def _is_negative_number(node: Node) -> bool:
    return (
        isinstance(node, Static)
        and node.type in ("int", "float", "duration")
        and isinstance(node.value, int | float)
        and node.value < 0
    )


def _precedence(node: Node) -> int:
    if isinstance(node, _BINARY_TYPES):
        return PRECEDENCE[node.op]  # type: ignore[attr-defined]
    if isinstance(node, UnaryOp):
        return UNARY_PRECEDENCE[node.op]
    return 100


def _operand(node: Node, needs_parens: bool) -> str:
    if isinstance(node, Pipeline):
        return f"({node})"
    return f"({node})" if needs_parens else str(node)


def _binary(op: str, left: Node, right: Node) -> str:
    p = PRECEDENCE[op]
    if op in RIGHT_ASSOCIATIVE:
        left_parens = _precedence(left) <= p or _is_negative_number(left)
        right_parens = isinstance(right, _BINARY_TYPES) and _precedence(right) < p
    else:
        left_parens = _precedence(left) < p
        right_parens = isinstance(right, _BINARY_TYPES) and _precedence(right) <= p
    return f"{_operand(left, left_parens)} {op} {_operand(right, right_parens)}"
