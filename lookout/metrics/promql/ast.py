"""Our PromQL AST: small frozen dataclasses, independent of the parser library.

``parse.py`` converts ``promql_parser``'s tree into these nodes, so the evaluator never touches the
library's objects and the parser can be replaced. Durations and times are integer milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lookout.metrics.model import Matcher


@dataclass(frozen=True, slots=True)
class At:
    """An ``@`` modifier: ``kind`` is ``"at"`` (with ``t_ms``), ``"start"`` or ``"end"``."""

    kind: str
    t_ms: int = 0


@dataclass(frozen=True, slots=True)
class NumberLit:
    val: float


@dataclass(frozen=True, slots=True)
class StringLit:
    val: str


@dataclass(frozen=True, slots=True)
class VectorSel:
    name: str | None
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0
    at: At | None = None


@dataclass(frozen=True, slots=True)
class MatrixSel:
    vs: VectorSel
    range_ms: int


@dataclass(frozen=True, slots=True)
class Subquery:
    expr: Expr
    range_ms: int
    step_ms: int  # 0 = the default resolution
    offset_ms: int = 0
    at: At | None = None


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    pos: int = field(default=0, compare=False)  # offset of the call in the query text
    arg_pos: tuple[int, ...] = field(default=(), compare=False)  # offsets of the arguments

    def arg_offset(self, i: int) -> int:
        return self.arg_pos[i] if i < len(self.arg_pos) else self.pos


@dataclass(frozen=True, slots=True)
class Agg:
    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False
    has_by: bool = False  # `by (...)` written (even empty)
    pos: int = field(default=0, compare=False)  # offset of the aggregation in the query text
    param_pos: int = field(default=0, compare=False)  # offset of the parameter, if any


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    lhs: Expr
    rhs: Expr
    return_bool: bool = False
    card: str = "one-to-one"  # one-to-one | many-to-one | one-to-many | many-to-many
    on: bool = False  # True: `on(...)`, False: `ignoring(...)` or none
    matching: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    fill_lhs: float | None = None
    fill_rhs: float | None = None


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    expr: Expr


@dataclass(frozen=True, slots=True)
class Paren:
    expr: Expr


Expr = NumberLit | StringLit | VectorSel | MatrixSel | Subquery | Call | Agg | Binary | Unary | Paren


@dataclass(slots=True)
class Parsed:
    """A parsed query: the tree and the source text (for error positions and annotations)."""

    expr: Expr
    text: str
    funcs: set[str] = field(default_factory=set)


def children(e: Expr) -> list[Expr]:
    if isinstance(e, MatrixSel):
        return [e.vs]
    if isinstance(e, Subquery | Paren | Unary):
        return [e.expr]
    if isinstance(e, Call):
        return list(e.args)
    if isinstance(e, Agg):
        return [e.expr] + ([e.param] if e.param is not None else [])
    if isinstance(e, Binary):
        return [e.lhs, e.rhs]
    return []


def walk(e: Expr):
    yield e
    for c in children(e):
        yield from walk(c)


def unparen(e: Expr) -> Expr:
    while isinstance(e, Paren):
        e = e.expr
    return e
