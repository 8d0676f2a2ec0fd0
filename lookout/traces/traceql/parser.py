"""Hand-written recursive-descent (precedence-climbing) TraceQL parser.

Two expression levels, as in Tempo's grammar:

- *field expressions* inside ``{ }`` and as aggregate / ``by()`` arguments;
- *query expressions*: spanset filters, aggregates, metrics functions and numbers combined by
  spanset operators, comparisons and arithmetic, then chained with ``|`` into pipelines.

The query level is one operator-precedence parser whose results carry a *kind* (``spanset``,
``scalar``, ``number``, ``metrics`` …); each operator is checked against its operands' kinds as
it is reduced, which is how ``>`` becomes a structural operator between spansets and a
comparison between scalars, and how Tempo's syntax errors (``{ } > 10``, ``{ } | rate() + 5``,
``2 * 3``, ``{ true } | count()``) are reported at the offending token.
"""

from __future__ import annotations

from . import ast
from .errors import TraceQLParseError
from .lexer import AttributeToken, Token, tokenize

AGGREGATES = frozenset({"count", "avg", "max", "min", "sum"})
METRICS_NO_ARGS = frozenset({"rate", "count_over_time"})
METRICS_ATTR = frozenset(
    {"min_over_time", "max_over_time", "avg_over_time", "sum_over_time", "histogram_over_time"}
)
SECOND_STAGE = frozenset({"topk", "bottomk"})
STATIC_WORDS = {
    "true": ast.Static("bool", True),
    "false": ast.Static("bool", False),
    "nil": ast.Static("nil"),
    **{name: ast.Static("status", name) for name in ast.STATUS_NAMES},
    **{name: ast.Static("kind", name) for name in ast.KIND_NAMES},
}
_NUMBER_TOKENS = {"INTEGER": "int", "FLOAT": "float", "DURATION": "duration"}

SPANSET_KINDS = frozenset({"spanset", "scalar_filter", "group", "coalesce", "select"})


def parse(query: str) -> ast.Query:
    """Parse TraceQL text into a ``Query``; raises ``TraceQLParseError``. Does not validate."""
    return Parser(query).parse_query()


def kind(node: ast.Node) -> str:
    """What a query-level node produces; drives which operators and stages may follow."""
    match node:
        case ast.SpansetFilter() | ast.SpansetOperation():
            return "spanset"
        case ast.ScalarFilter(left=left):
            k = kind(left)
            return "scalar_pipeline_filter" if k == "scalar_pipeline" else "scalar_filter"
        case ast.GroupBy():
            return "group"
        case ast.Coalesce():
            return "coalesce"
        case ast.Select():
            return "select"
        case ast.Aggregate():
            return "scalar"
        case ast.Static():
            return "number"
        case ast.ScalarOp(left=left, right=right):
            kinds = {kind(left), kind(right)}
            if "scalar_pipeline" in kinds:
                return "scalar_pipeline"
            return "scalar" if "scalar" in kinds else "number"
        case ast.MetricsAggregate():
            return "metrics_fn"
        case ast.SecondStage():
            return "second_stage"
        case ast.MetricsCompare(expr=expr):
            return kind(expr)
        case ast.MetricsMath():
            return "metrics"
        case ast.Pipeline(stages=stages):
            last = kind(stages[-1])
            if last in SPANSET_KINDS:
                return "spanset"
            if last == "scalar":
                return "scalar_pipeline"
            return "metrics"
    raise AssertionError(f"no kind for {node!r}")


def _has_duration(node: ast.Node) -> bool:
    return any(isinstance(n, ast.Static) and n.type == "duration" for n in ast.walk(node))


class Parser:
    def __init__(self, query: str):
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0

    # -- token helpers -------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, n: int = 1) -> Token:
        return self.tokens[min(self.i + n, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> TraceQLParseError:
        tok = tok or self.tok
        return TraceQLParseError.at(message, self.query, tok.start, tok.end)

    def unexpected(self, tok: Token | None = None, expecting: str | None = None) -> TraceQLParseError:
        tok = tok or self.tok
        msg = f"syntax error: unexpected {tok.describe()}"
        if expecting:
            msg += f", expecting {expecting}"
        return self.error(msg, tok)

    def expect(self, kind: str) -> Token:
        if self.tok.kind != kind:
            raise self.unexpected(expecting=repr(kind))
        return self.advance()

    def is_word(self, word: str) -> bool:
        return self.tok.kind == "IDENT" and self.tok.value == word

    def span_from(self, start: int) -> ast.Span:
        return (start, self.tokens[self.i - 1].end if self.i else start)

    # -- root and pipelines --------------------------------------------------------------------

    def parse_query(self) -> ast.Query:
        start_tok = self.tok
        expr = self.parse_pipeline()
        k = kind(expr)
        if k not in ("spanset", "scalar_filter", "group", "select", "metrics", "scalar_pipeline_filter"):
            raise self.error(_ROOT_MESSAGES.get(k, "syntax error: not a query"), start_tok)
        hints: list[ast.Hint] = []
        if self.is_word("with"):
            hints = self.parse_hints()
        if self.tok.kind != "EOF":
            raise self.unexpected()
        return ast.Query(expr, tuple(hints), span=(0, len(self.query)))

    def parse_hints(self) -> list[ast.Hint]:
        self.advance()
        self.expect("(")
        hints: list[ast.Hint] = []
        while True:
            start = self.tok.start
            name = self.expect("IDENT").value
            self.expect("=")
            value = self.parse_field_primary()
            if not isinstance(value, ast.Static):
                raise self.error("syntax error: a hint value must be a literal")
            hints.append(ast.Hint(str(name), value, span=self.span_from(start)))
            if self.tok.kind == ",":
                self.advance()
                continue
            self.expect(")")
            return hints

    def parse_pipeline(self) -> ast.Node:
        start = self.tok.start
        first_tok = self.tok
        stages = [self.parse_qexpr(0)]
        state = kind(stages[0])
        if state == "coalesce":
            raise self.error("syntax error: a pipeline cannot start with coalesce()", first_tok)
        while self.tok.kind == "|":
            pipe = self.advance()
            stage_tok = self.tok
            stage = self.parse_qexpr(0)
            sk = kind(stage)
            if state in SPANSET_KINDS and sk in SPANSET_KINDS:
                state = "spanset"
            elif state in SPANSET_KINDS and sk == "scalar" and isinstance(stage, ast.Aggregate):
                state = "scalar_pipeline"
            elif state in SPANSET_KINDS and sk == "metrics_fn":
                state = "metrics"
            elif state in ("metrics", "metrics_fn") and sk == "second_stage":
                state = "metrics"
            else:
                raise self.error(
                    f"syntax error: unexpected {_KIND_NAMES.get(sk, sk)} after "
                    f"{_KIND_NAMES.get(state, state)} in pipeline",
                    stage_tok if stage_tok.kind != "EOF" else pipe,
                )
            stages.append(stage)
        if len(stages) == 1:
            return stages[0]
        return ast.Pipeline(tuple(stages), span=self.span_from(start))

    # -- query-level expressions ---------------------------------------------------------------

    def parse_qexpr(self, min_prec: int) -> ast.Node:
        start = self.tok.start
        left = self.parse_qprimary()
        while True:
            op_tok = self.tok
            prec = ast.PRECEDENCE.get(op_tok.kind)
            if prec is None or prec < min_prec:
                return left
            self.advance()
            right = self.parse_qexpr(prec if op_tok.kind in ast.RIGHT_ASSOCIATIVE else prec + 1)
            left = self.combine(op_tok, left, right, self.span_from(start))

    def combine(self, op_tok: Token, left: ast.Node, right: ast.Node, span: ast.Span) -> ast.Node:
        op = op_tok.kind
        kl, kr = kind(left), kind(right)
        if op in ast.SPANSET_OPERATORS and kl == "spanset" and kr == "spanset":
            return ast.SpansetOperation(op, left, right, span=span)
        scalarish = ("scalar", "number")
        metricish = ("metrics", "metrics_fn", "second_stage")
        if op in ast.COMPARISON_OPERATORS:
            if kl in scalarish and kr in scalarish and "scalar" in (kl, kr):
                return ast.ScalarFilter(op, left, right, span=span)
            if kl == "scalar_pipeline" and (
                kr == "scalar_pipeline" or (isinstance(right, ast.Static) and right.is_numeric)
            ):
                return ast.ScalarFilter(op, left, right, span=span)
            if kl in metricish and kr == "number":
                if not isinstance(right, ast.Static) and _has_duration(right):
                    raise self.error("syntax error: durations cannot be combined arithmetically here", op_tok)
                return ast.MetricsCompare(op, left, right, span=span)
        if op in ast.ARITHMETIC_OPERATORS:
            if kl in scalarish and kr in scalarish:
                return ast.ScalarOp(op, left, right, span=span)
            if kl == "scalar_pipeline" and kr == "scalar_pipeline":
                return ast.ScalarOp(op, left, right, span=span)
            if op in "+-*/" and {kl, kr} <= {"metrics", "number"} and "metrics" in (kl, kr):
                if _has_duration(left if kl == "number" else right):
                    raise self.error("syntax error: durations are not allowed in metrics arithmetic", op_tok)
                return ast.MetricsMath(op, left, right, span=span)
        raise self.error(
            f"syntax error: unexpected {op_tok.describe()} between "
            f"{_KIND_NAMES.get(kl, kl)} and {_KIND_NAMES.get(kr, kr)}",
            op_tok,
        )

    def parse_qprimary(self) -> ast.Node:
        tok = self.tok
        start = tok.start
        if tok.kind == "{":
            return self.parse_spanset_filter()
        if tok.kind == "(":
            self.advance()
            inner = self.parse_pipeline()
            self.expect(")")
            if kind(inner) in ("scalar_filter", "group", "coalesce", "select"):
                # A parenthesised single stage is a (wrapped) spanset pipeline.
                return ast.Pipeline((inner,), span=self.span_from(start))
            return inner
        if tok.kind in _NUMBER_TOKENS or (tok.kind == "-" and self.peek().kind in _NUMBER_TOKENS):
            return self.parse_number(start)
        if tok.kind == "IDENT":
            word = str(tok.value)
            if word in AGGREGATES:
                return self.parse_aggregate()
            if word == "by" and self.peek().kind == "(":
                self.advance()
                self.advance()
                expr = self.parse_field(0)
                self.expect(")")
                return ast.GroupBy(expr, span=self.span_from(start))
            if word == "coalesce" and self.peek().kind == "(":
                self.advance()
                self.advance()
                self.expect(")")
                return ast.Coalesce(span=self.span_from(start))
            if word == "select" and self.peek().kind == "(":
                self.advance()
                self.advance()
                attrs = [self.parse_attribute_arg()]
                while self.tok.kind == ",":
                    self.advance()
                    attrs.append(self.parse_attribute_arg())
                self.expect(")")
                return ast.Select(tuple(attrs), span=self.span_from(start))
            if (
                word in METRICS_NO_ARGS
                or word in METRICS_ATTR
                or word
                in (
                    "quantile_over_time",
                    "compare",
                )
            ):
                return self.parse_metrics_aggregate()
            if word in SECOND_STAGE and self.peek().kind == "(":
                self.advance()
                self.advance()
                k = self.expect("INTEGER").value
                self.expect(")")
                return ast.SecondStage(word, int(k), span=self.span_from(start))  # type: ignore[call-overload]
        raise self.unexpected()

    def parse_aggregate(self) -> ast.Aggregate:
        start = self.tok.start
        func = str(self.advance().value)
        self.expect("(")
        expr = None
        if func != "count":
            if self.tok.kind == ")":
                raise self.unexpected(expecting="a field expression")
            expr = self.parse_field(0)
        self.expect(")")
        return ast.Aggregate(func, expr, span=self.span_from(start))

    def parse_attribute_arg(self) -> ast.FieldExpr:
        tok = self.tok
        node = self.parse_field_primary()
        if not isinstance(node, ast.Attribute | ast.Intrinsic):
            raise self.error("syntax error: expected an attribute or intrinsic", tok)
        return node

    def parse_metrics_aggregate(self) -> ast.MetricsAggregate:
        start = self.tok.start
        func = str(self.advance().value)
        self.expect("(")
        attribute: ast.FieldExpr | None = None
        params: list[ast.Static] = []
        flt: ast.SpansetFilter | None = None
        if func in METRICS_ATTR:
            attribute = self.parse_attribute_arg()
        elif func == "quantile_over_time":
            attribute = self.parse_attribute_arg()
            self.expect(",")
            params.append(self.parse_number_param())
            while self.tok.kind == ",":
                self.advance()
                params.append(self.parse_number_param())
        elif func == "compare":
            flt = self.parse_spanset_filter()
            while self.tok.kind == ",":
                self.advance()
                tok = self.expect("INTEGER")
                params.append(ast.Static("int", tok.value, span=(tok.start, tok.end)))
        self.expect(")")
        by: list[ast.FieldExpr] = []
        if self.is_word("by"):
            self.advance()
            self.expect("(")
            by.append(self.parse_attribute_arg())
            while self.tok.kind == ",":
                self.advance()
                by.append(self.parse_attribute_arg())
            self.expect(")")
        return ast.MetricsAggregate(
            func, attribute, tuple(params), flt, tuple(by), span=self.span_from(start)
        )

    def parse_number_param(self) -> ast.Static:
        tok = self.tok
        if tok.kind in ("INTEGER", "FLOAT"):
            self.advance()
            return ast.Static(_NUMBER_TOKENS[tok.kind], tok.value, span=(tok.start, tok.end))
        # ".99": the lexer reads a leading dot as an unscoped attribute named "99".
        if tok.kind == "ATTRIBUTE":
            attr = tok.value
            assert isinstance(attr, AttributeToken)
            if attr.scope is None and not attr.parent and attr.name.isdigit():
                self.advance()
                return ast.Static("float", float("0." + attr.name), span=(tok.start, tok.end))
        raise self.unexpected(expecting="a number")

    def parse_spanset_filter(self) -> ast.SpansetFilter:
        start = self.expect("{").start
        if self.tok.kind == "}":
            self.advance()
            return ast.SpansetFilter(None, span=self.span_from(start))
        expr = self.parse_field(0)
        self.expect("}")
        return ast.SpansetFilter(expr, span=self.span_from(start))

    # -- field expressions ---------------------------------------------------------------------

    def parse_number(self, start: int) -> ast.Static:
        """A number, duration or negated one at the current token (the caller checked)."""
        negate = self.tok.kind == "-"
        if negate:
            self.advance()
        num = self.advance()
        value = -num.value if negate else num.value  # type: ignore[operator]
        return ast.Static(_NUMBER_TOKENS[num.kind], value, span=self.span_from(start))

    def parse_field(self, min_prec: int) -> ast.FieldExpr:
        start = self.tok.start
        left = self.parse_field_unary()
        while True:
            op_tok = self.tok
            op = op_tok.kind
            prec = ast.PRECEDENCE.get(op)
            if prec is None or prec < min_prec:
                return left
            if op not in _FIELD_BINARY:
                raise self.unexpected()
            self.advance()
            right = self.parse_field(prec if op in ast.RIGHT_ASSOCIATIVE else prec + 1)
            left = ast.BinaryOp(op, left, right, span=self.span_from(start))

    def parse_field_unary(self) -> ast.FieldExpr:
        tok = self.tok
        if tok.kind == "!":
            self.advance()
            operand = self.parse_field(ast.UNARY_PRECEDENCE["!"] + 1)
            return ast.UnaryOp("!", operand, span=self.span_from(tok.start))
        if tok.kind == "-":
            self.advance()
            num = self.tok
            if num.kind in _NUMBER_TOKENS and self.peek().kind != "^":
                self.advance()
                return ast.Static(
                    _NUMBER_TOKENS[num.kind],
                    -num.value,
                    span=self.span_from(tok.start),  # type: ignore[operator]
                )
            operand = self.parse_field(ast.UNARY_PRECEDENCE["-"] + 1)
            return ast.UnaryOp("-", operand, span=self.span_from(tok.start))
        return self.parse_field_primary()

    def parse_field_primary(self) -> ast.FieldExpr:
        tok = self.tok
        start = tok.start
        if tok.kind == "(":
            self.advance()
            expr = self.parse_field(0)
            self.expect(")")
            return expr
        if tok.kind == "STRING":
            self.advance()
            return ast.Static("string", tok.value, span=self.span_from(start))
        if tok.kind in _NUMBER_TOKENS or (tok.kind == "-" and self.peek().kind in _NUMBER_TOKENS):
            return self.parse_number(start)
        if tok.kind == "ATTRIBUTE":
            self.advance()
            attr = tok.value
            assert isinstance(attr, AttributeToken)
            return ast.Attribute(attr.scope, attr.name, attr.parent, span=self.span_from(start))
        if tok.kind == "INTRINSIC":
            if tok.value not in ast.INTRINSICS:
                raise self.error(f"syntax error: unknown intrinsic {tok.value}", tok)
            self.advance()
            return ast.Intrinsic(str(tok.value), span=self.span_from(start))
        if tok.kind == "IDENT":
            word = str(tok.value)
            if word in STATIC_WORDS:
                self.advance()
                static = STATIC_WORDS[word]
                return ast.Static(static.type, static.value, span=self.span_from(start))
            if word in ast.INTRINSICS:
                self.advance()
                return ast.Intrinsic(word, span=self.span_from(start))
        raise self.unexpected()


_FIELD_BINARY = frozenset(
    {"&&", "||", "=", "!=", "<", "<=", ">", ">=", "=~", "!~", "+", "-", "*", "/", "%", "^"}
)

_KIND_NAMES = {
    "spanset": "spanset",
    "scalar_filter": "scalar filter",
    "group": "by()",
    "coalesce": "coalesce()",
    "select": "select()",
    "scalar": "scalar expression",
    "number": "number",
    "scalar_pipeline": "scalar pipeline",
    "scalar_pipeline_filter": "scalar pipeline filter",
    "metrics_fn": "metrics function",
    "second_stage": "topk/bottomk",
    "metrics": "metrics query",
}

_ROOT_MESSAGES = {
    "scalar": "syntax error: a scalar expression must be compared (e.g. count() > 1)",
    "number": "syntax error: a constant is not a query",
    "scalar_pipeline": "syntax error: a scalar pipeline must be compared (e.g. | count() > 1)",
    "coalesce": "syntax error: a pipeline cannot start with coalesce()",
    "metrics_fn": "syntax error: a metrics function must follow a spanset pipeline",
    "second_stage": "syntax error: topk/bottomk must follow a metrics function",
}
