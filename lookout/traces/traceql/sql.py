"""Plan TraceQL span search as parameterised DuckDB SQL over the span table (``SPAN_SCHEMA``).

Supported: one spanset filter ``{ … }`` (``{ }`` is every span), or spanset filters combined at
the trace level with ``&&`` and ``||`` (nested freely). Inside the braces: ``&& || !`` and
parentheses over comparisons ``= != > < >= <= =~ !~`` between one field and a literal, bare
boolean attributes (``{ .flag }``) and literal-only expressions (folded here).

Semantics follow Tempo's engine:

- a comparison is never NULL: a missing attribute, or one of another type than the literal,
  makes *every* operator false (``{ .a != 1 }`` does not match spans without ``.a``), while
  ``!(.a = 1)`` does;
- an int or float (or duration, in nanoseconds) literal compares with ``attrs_int`` and
  ``attrs_dbl``; a string with ``attrs_str``; a bool with ``attrs_bool``;
- unscoped ``.x`` reads the span attribute ``x`` if the span has one of any type, else the
  resource attribute; ``resource.service.name`` reads the ``service_name`` column;
- ``= nil`` means absent, ``!= nil`` present; regexes are fully anchored (``regexp_full_match``,
  RE2 like Go's).

Trace-level intrinsics (``trace:rootService``/``rootServiceName``, ``trace:rootName``/
``rootName``, ``trace:duration``/``traceDuration``) read the columns ``trace_root_service``,
``trace_root_name`` and ``trace_duration_nano``, which the caller must add to the relation
(``SpansetPlan.trace_columns`` lists the ones a plan reads), or which ``to_sql(...,
derive_trace_columns=True)`` computes with window functions (correct only when the relation
holds whole traces).

Executing a plan::

    plan = plan_query('{ span.http.method = "GET" } && { status = error }')
    sql, params = to_sql(plan, "spans")            # "spans": a table, view or (subquery)
    matched = con.execute(sql, params).arrow()     # the matching span rows, SPAN_SCHEMA columns
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lookout.traces.schema import SPAN_SCHEMA

from . import ast
from .errors import TraceQLUnsupportedError
from .parser import parse
from .validate import validate

TRACE_COLUMNS = ("trace_root_service", "trace_root_name", "trace_duration_nano")
_KNOWN_COLUMNS = frozenset(SPAN_SCHEMA.names) | frozenset(TRACE_COLUMNS)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_TYPED_MAPS = ("attrs_str", "attrs_int", "attrs_dbl", "attrs_bool", "attrs_other")
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "!=": "!="}

# canonical intrinsic → (SQL expression, value kind)
_INTRINSIC_COLUMNS = {
    "span:name": ("name", "string"),
    "span:statusMessage": ("status_message", "string"),
    "span:duration": ("duration_nano", "duration"),
    "span:status": ("COALESCE(status_code, 0)", "status"),
    "span:kind": ("COALESCE(kind, 0)", "kind"),
    "span:id": ("lower(hex(span_id))", "hex"),
    "span:parentID": ("lower(hex(parent_span_id))", "hex"),
    "trace:id": ("lower(hex(trace_id))", "hex"),
    "trace:rootService": ("trace_root_service", "string"),
    "trace:rootName": ("trace_root_name", "string"),
    "trace:duration": ("trace_duration_nano", "duration"),
    "instrumentation:name": ("scope_name", "string"),
    "instrumentation:version": ("scope_version", "string"),
}

Combine = int | tuple[str, "Combine", "Combine"]
"""A leaf index, or ``("&&" | "||", left, right)`` combining spansets per trace."""


@dataclass(frozen=True, slots=True)
class Predicate:
    """A SQL boolean over one span row (never NULL) and its ``?`` parameters, in order."""

    where_sql: str
    params: tuple[object, ...] = ()

    def __repr__(self) -> str:
        return f"Predicate({self.where_sql!r}, {self.params!r})"


@dataclass(frozen=True, slots=True)
class SpansetPlan:
    """What a span search must compute.

    ``leaves`` (alias ``sides``) holds one predicate per spanset filter, in query order; ``tree``
    says how their per-trace results combine, and ``combine`` flattens it to ``"and"`` / ``"or"``
    when every operator is the same (``"mixed"`` otherwise: only ``to_sql`` handles that).

    Per trace, ``A && B`` is non-empty when both sides are, ``A || B`` when either is; the
    matched spans are the union of the sides' matched spans. ``to_sql`` renders exactly that.
    ``where_sql``/``params`` are a per-span filter, exact for a single leaf and otherwise a
    superset (any leaf) that storage may push down before the trace-level step. ``columns``
    lists the columns the predicates read: the relation must provide them (and ``trace_id``).
    """

    leaves: tuple[Predicate, ...]
    tree: Combine
    trace_columns: frozenset[str] = frozenset()
    hints: dict[str, object] = field(default_factory=dict)

    @property
    def sides(self) -> tuple[Predicate, ...]:
        return self.leaves

    @property
    def combine(self) -> str:
        """``"and"`` (also for a single filter), ``"or"``, or ``"mixed"`` for trees of both."""
        ops = _operators(self.tree)
        if len(ops) > 1:
            return "mixed"
        return "or" if ops == {"||"} else "and"

    @property
    def columns(self) -> frozenset[str]:
        """The span-table (and trace-level) columns the predicates read, besides ``trace_id``."""
        words = set(_WORD.findall(" ".join(leaf.where_sql for leaf in self.leaves)))
        return frozenset(words & _KNOWN_COLUMNS)

    @property
    def exact(self) -> bool:
        """True when ``where_sql`` alone selects exactly the matching spans."""
        return len(self.leaves) == 1

    @property
    def where_sql(self) -> str:
        if len(self.leaves) == 1:
            return self.leaves[0].where_sql
        return "(" + " OR ".join(leaf.where_sql for leaf in self.leaves) + ")"

    @property
    def params(self) -> list[object]:
        return [p for leaf in self.leaves for p in leaf.params]


def plan_query(query: str | ast.Query) -> SpansetPlan:
    """Parse (if given text), validate and plan; see ``plan``."""
    return plan(parse(query) if isinstance(query, str) else query)


def plan(query: ast.Query) -> SpansetPlan:
    """Plan a search query; raises ``TraceQLValidationError`` or ``TraceQLUnsupportedError``."""
    validate(query)
    compiler = _Compiler()
    combine = compiler.spanset(query.expr)
    hints = {h.name: h.value.value for h in query.hints}
    return SpansetPlan(tuple(compiler.leaves), combine, frozenset(compiler.trace_columns), hints)


def to_sql(
    plan: SpansetPlan,
    relation: str = "spans",
    *,
    columns: str = "*",
    derive_trace_columns: bool = False,
) -> tuple[str, list[object]]:
    """A complete ``SELECT`` of the matching span rows of ``relation`` and its parameters.

    ``relation`` is SQL the caller controls (a table or view name, ``read_parquet([...])`` or a
    parenthesised subquery); for ``&&``/``||`` plans it must hold whole traces, since matching
    is decided per ``trace_id`` with window functions. ``columns`` is the select list.
    """
    source = relation
    if derive_trace_columns and plan.trace_columns:
        source = _with_trace_columns(relation, plan.trace_columns)
    if len(plan.leaves) == 1:
        leaf = plan.leaves[0]
        return f"SELECT {columns} FROM {source} WHERE {leaf.where_sql}", list(leaf.params)
    n = len(plan.leaves)
    marks = ", ".join(f"{leaf.where_sql} AS __tql_m{i}" for i, leaf in enumerate(plan.leaves))
    any_mark = " OR ".join(f"__tql_m{i}" for i in range(n))
    windows = ", ".join(f"bool_or(__tql_m{i}) OVER __tql_w AS __tql_t{i}" for i in range(n))
    member, _ = _membership(plan.tree)
    helpers = ", ".join([f"__tql_m{i}" for i in range(n)] + [f"__tql_t{i}" for i in range(n)])
    select = f"* EXCLUDE ({helpers})" if columns.strip() == "*" else columns
    sql = (
        f"SELECT {select} FROM ("
        f"SELECT *, {windows} FROM (SELECT *, {marks} FROM {source}) "
        f"WHERE {any_mark} WINDOW __tql_w AS (PARTITION BY trace_id)"
        f") WHERE {member}"
    )
    return sql, plan.params


def _operators(node: Combine) -> set[str]:
    if isinstance(node, int):
        return set()
    return {node[0]} | _operators(node[1]) | _operators(node[2])


def _membership(node: Combine) -> tuple[str, str]:
    """(span is in the node's result, the node's result is non-empty for the trace)."""
    if isinstance(node, int):
        return f"__tql_m{node}", f"__tql_t{node}"
    op, left, right = node
    lm, lt = _membership(left)
    rm, rt = _membership(right)
    if op == "&&":
        nonempty = f"({lt} AND {rt})"
        return f"({nonempty} AND ({lm} OR {rm}))", nonempty
    return f"({lm} OR {rm})", f"({lt} OR {rt})"


def _with_trace_columns(relation: str, wanted: frozenset[str]) -> str:
    is_root = "(parent_span_id IS NULL OR octet_length(parent_span_id) = 0)"
    exprs = {
        "trace_duration_nano": "max(start_time_unix_nano + duration_nano) OVER __tql_tw"
        " - min(start_time_unix_nano) OVER __tql_tw",
        "trace_root_service": f"max(CASE WHEN {is_root} THEN service_name END) OVER __tql_tw",
        "trace_root_name": f"max(CASE WHEN {is_root} THEN name END) OVER __tql_tw",
    }
    cols = ", ".join(f"{exprs[c]} AS {c}" for c in TRACE_COLUMNS if c in wanted)
    return f"(SELECT *, {cols} FROM {relation} WINDOW __tql_tw AS (PARTITION BY trace_id))"


# ---------------------------------------------------------------------------------------------


def _unsupported(message: str, node: ast.Node) -> TraceQLUnsupportedError:
    return TraceQLUnsupportedError(message, node.span)


_KIND_OF_STAGE = {
    ast.ScalarFilter: "scalar filters ({})",
    ast.GroupBy: "by()",
    ast.Coalesce: "coalesce()",
    ast.Select: "select()",
    ast.Aggregate: "aggregates ({})",
    ast.MetricsAggregate: "metrics functions ({})",
    ast.MetricsCompare: "metrics filters ({})",
    ast.MetricsMath: "metrics arithmetic",
    ast.SecondStage: "topk/bottomk",
}


class _Compiler:
    def __init__(self) -> None:
        self.leaves: list[Predicate] = []
        self.trace_columns: set[str] = set()

    # -- spanset level -------------------------------------------------------------------------

    def spanset(self, node: ast.Node) -> Combine:
        match node:
            case ast.SpansetFilter(expr=expr):
                sql, params = ("TRUE", []) if expr is None else self.boolean(expr)
                self.leaves.append(Predicate(sql, tuple(params)))
                return len(self.leaves) - 1
            case ast.SpansetOperation(op=op, left=left, right=right) if op in ("&&", "||"):
                return (op, self.spanset(left), self.spanset(right))
            case ast.SpansetOperation(op=op):
                raise _unsupported(f"the structural spanset operator {op!r}", node)
            case ast.Pipeline(stages=(only,)):
                return self.spanset(only)
            case ast.Pipeline(stages=stages):
                for stage in stages[1:]:
                    if not isinstance(stage, ast.SpansetFilter | ast.SpansetOperation):
                        self.spanset(stage)  # raises, naming the stage
                raise _unsupported("pipelines of several spanset filters", node)
        for cls, what in _KIND_OF_STAGE.items():
            if isinstance(node, cls):
                raise _unsupported(what.format(node), node)
        raise _unsupported(f"{type(node).__name__} expressions", node)

    # -- span level: (sql, params) never NULL --------------------------------------------------

    def boolean(self, node: ast.FieldExpr) -> tuple[str, list[object]]:
        match node:
            case ast.Static(type="bool", value=value):
                return ("TRUE" if value else "FALSE"), []
            case ast.UnaryOp(op="!", operand=operand):
                sql, params = self.boolean(operand)
                return f"(NOT {sql})", params
            case ast.BinaryOp(op=op, left=left, right=right) if op in ("&&", "||"):
                ls, lp = self.boolean(left)
                rs, rp = self.boolean(right)
                return f"({ls} {'AND' if op == '&&' else 'OR'} {rs})", lp + rp
            case ast.Attribute():
                return self.attribute(node, "=", ast.Static("bool", True))
            case ast.BinaryOp(op=op, left=left, right=right):
                return self.comparison(node, op, left, right)
        raise _unsupported(f"non-boolean filter expression {node}", node)

    def comparison(
        self, node: ast.BinaryOp, op: str, left: ast.FieldExpr, right: ast.FieldExpr
    ) -> tuple[str, list[object]]:
        if isinstance(left, ast.Static) and isinstance(right, ast.Static):
            return ("TRUE" if _fold(op, left, right) else "FALSE"), []
        if isinstance(left, ast.Static) and op in _FLIP:
            left, right, op = right, left, _FLIP[op]
        if not isinstance(right, ast.Static):
            raise _unsupported(f"comparisons of two fields or arithmetic: {node}", node)
        if isinstance(left, ast.Attribute):
            return self.attribute(left, op, right)
        if isinstance(left, ast.Intrinsic):
            return self.intrinsic(left, op, right)
        raise _unsupported(f"arithmetic in filters: {node}", node)

    def intrinsic(self, field_: ast.Intrinsic, op: str, value: ast.Static) -> tuple[str, list[object]]:
        canonical = field_.canonical
        if canonical not in _INTRINSIC_COLUMNS:
            raise _unsupported(f"the intrinsic {field_.name}", field_)
        column, kind = _INTRINSIC_COLUMNS[canonical]
        if column in TRACE_COLUMNS:
            self.trace_columns.add(column)
        if value.type == "nil":
            return (f"({column} IS NOT NULL)" if op == "!=" else f"({column} IS NULL)"), []
        param: object
        if kind in ("string", "hex") and value.type == "string":
            param = str(value.value).lower() if kind == "hex" else value.value
        elif kind == "duration" and value.is_numeric:
            param = value.value
        elif kind == "status" and value.type == "status" and op in ("=", "!="):
            param = ast.STATUS_NAMES.index(str(value.value))
        elif kind == "kind" and value.type == "kind" and op in ("=", "!="):
            param = ast.KIND_NAMES.index(str(value.value))
        else:
            return "FALSE", []
        return _compare(column, op, param)

    def attribute(self, attr: ast.Attribute, op: str, value: ast.Static) -> tuple[str, list[object]]:
        if attr.parent or attr.scope not in (None, "span", "resource"):
            scope = "parent" if attr.parent else attr.scope
            raise _unsupported(f"{scope} attributes ({attr})", attr)
        key = attr.name
        if value.type == "nil":
            exists = {
                "span": lambda: _exists("", key),
                "resource": lambda: _exists("res_", key),
                None: lambda: _concat("(", _exists("", key), " OR ", _exists("res_", key), ")"),
            }[attr.scope]()
            if op == "=":
                return _concat("(NOT ", exists, ")")
            if op == "!=":
                return exists
            return "FALSE", []
        if attr.scope == "span":
            return self.typed("", key, op, value)
        if attr.scope == "resource":
            return self.typed("res_", key, op, value)
        span_side = self.typed("", key, op, value)
        res_side = self.typed("res_", key, op, value)
        return _concat("(CASE WHEN ", _exists("", key), " THEN ", span_side, " ELSE ", res_side, " END)")

    def typed(self, prefix: str, key: str, op: str, value: ast.Static) -> tuple[str, list[object]]:
        """``op value`` against the typed map(s) of the literal's type; FALSE if none has it."""
        t = value.type
        if t == "string":
            if prefix == "res_" and key == "service.name":
                return _compare("service_name", op, value.value)
            targets = ["attrs_str"]
        elif t in ("int", "float", "duration"):
            if op in ("=~", "!~"):
                return "FALSE", []
            targets = ["attrs_int", "attrs_dbl"]
        elif t == "bool":
            if op not in ("=", "!="):
                return "FALSE", []
            targets = ["attrs_bool"]
        else:  # status / kind literals never equal an attribute value
            return "FALSE", []
        parts: list[str] = []
        params: list[object] = []
        for m in targets:
            sql, p = _raw_compare(f"{prefix}{m}[?]", op, value.value)
            parts.append(sql)
            params += [key, *p]
        return f"COALESCE({', '.join(parts)}, FALSE)", params


def _raw_compare(column: str, op: str, param: object) -> tuple[str, list[object]]:
    """``column op ?`` (NULL when the column is NULL)."""
    if op == "=~":
        return f"regexp_full_match({column}, ?)", [param]
    if op == "!~":
        return f"(NOT regexp_full_match({column}, ?))", [param]
    return f"({column} {op} ?)", [param]


def _compare(column: str, op: str, param: object) -> tuple[str, list[object]]:
    sql, params = _raw_compare(column, op, param)
    return f"COALESCE({sql}, FALSE)", params


def _exists(prefix: str, key: str) -> tuple[str, list[object]]:
    parts = [f"map_contains({prefix}{m}, ?)" for m in _TYPED_MAPS]
    params: list[object] = [key] * len(_TYPED_MAPS)
    if prefix == "res_" and key == "service.name":
        parts.append("service_name IS NOT NULL")
    return "(" + " OR ".join(parts) + ")", params


def _concat(*pieces: str | tuple[str, list[object]]) -> tuple[str, list[object]]:
    sql: list[str] = []
    params: list[object] = []
    for piece in pieces:
        if isinstance(piece, str):
            sql.append(piece)
        else:
            sql.append(piece[0])
            params += piece[1]
    return "".join(sql), params


def _fold(op: str, left: ast.Static, right: ast.Static) -> bool:
    """Evaluate a comparison of two literals (Tempo: mismatched types compare false)."""
    lv, rv = left.value, right.value
    if left.type == "nil" or right.type == "nil":
        same = left.type == right.type
        return same if op == "=" else (not same if op == "!=" else False)
    if op in ("=~", "!~"):
        if left.type != "string" or right.type != "string":
            return False
        hit = re.fullmatch(str(rv), str(lv)) is not None
        return hit if op == "=~" else not hit
    if not (left.is_numeric and right.is_numeric) and left.type != right.type:
        return False
    if op in ("=", "!="):
        return (lv == rv) == (op == "=")
    if left.type in ("bool", "status", "kind"):
        return False
    return {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[op](lv, rv)
