"""A hand-written recursive-descent parser for OTTL boolean conditions.

OTTL conditions arrive in processor configs (filter, tail sampling, routing), so every mistake
must surface at config load with a position, never at run time on some batch: this module does
all the static work — syntax, converter names and arity, enum names, and which paths a context
kind has — and hands :mod:`evaluate` a small, already-checked AST.

Grammar (precedence low to high)::

    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := additive (("=="|"!="|"<"|"<="|">"|">=") additive)?
    additive   := term (("+"|"-") term)*
    term       := unary (("*"|"/") unary)*
    unary      := ("-"|"+") unary | primary
    primary    := literal | ENUM | Converter "(" args ")" | path | "(" or_expr ")"
    path       := ident ("." ident)* ("[" string "]")*

Types are checked as the tree is built: ``and``/``or``/``not`` take booleans (comparisons,
``true``/``false``, boolean converters), comparisons and math take values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class OttlError(ValueError):
    """A condition that cannot be compiled (or a path a context turned out not to have)."""


def position(text: str, offset: int) -> str:
    """``line:column`` (1-based) of ``offset`` — conditions are usually one line, but YAML block
    scalars can span several."""
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{col}"


def error(text: str, offset: int, message: str) -> OttlError:
    return OttlError(f"condition {position(text, offset)}: {message}")


# --------------------------------------------------------------------------------------------
# Symbol tables
# --------------------------------------------------------------------------------------------


def _enum_block(prefix: str, names: list[str]) -> dict[str, int]:
    return {f"{prefix}{name}": i for i, name in enumerate(names)}


_SPAN_ENUMS = {
    **_enum_block("SPAN_KIND_", ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]),
    **_enum_block("STATUS_CODE_", ["UNSET", "OK", "ERROR"]),
}
_SEVERITIES = ["UNSPECIFIED"] + [
    f"{level}{suffix}"
    for level in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
    for suffix in ("", "2", "3", "4")
]
_LOG_ENUMS = _enum_block("SEVERITY_NUMBER_", _SEVERITIES)
_METRIC_ENUMS = {
    **_enum_block("METRIC_DATA_TYPE_", ["NONE", "GAUGE", "SUM", "HISTOGRAM", "EXPONENTIAL_HISTOGRAM", "SUMMARY"]),
    **_enum_block("AGGREGATION_TEMPORALITY_", ["UNSPECIFIED", "DELTA", "CUMULATIVE"]),
}
ENUMS: dict[str, dict[str, int]] = {
    "span": _SPAN_ENUMS,
    "spanevent": _SPAN_ENUMS,
    "log": _LOG_ENUMS,
    "metric": _METRIC_ENUMS,
    "datapoint": _METRIC_ENUMS,
    "resource": {},
    "scope": {},
}
"""Enums per context, as in collector-contrib: each OTTL context registers only its own."""

ALL_ENUMS: dict[str, int] = {name: v for table in ENUMS.values() for name, v in table.items()}

MAP, SCALAR = "map", "scalar"

_RESOURCE = {("attributes",): MAP, ("dropped_attributes_count",): SCALAR, ("schema_url",): SCALAR}
_SCOPE = {("name",): SCALAR, ("version",): SCALAR, **_RESOURCE}
_SPAN = {
    **{(f,): SCALAR for f in ("trace_id", "span_id", "parent_span_id")},
    **{(f, "string"): SCALAR for f in ("trace_id", "span_id", "parent_span_id")},
    ("trace_state",): MAP,  # trace_state["vendor"] reads one W3C tracestate member
    ("name",): SCALAR,
    ("kind",): SCALAR,
    ("kind", "string"): SCALAR,
    ("kind", "deprecated_string"): SCALAR,
    ("start_time_unix_nano",): SCALAR,
    ("end_time_unix_nano",): SCALAR,
    ("attributes",): MAP,
    ("dropped_attributes_count",): SCALAR,
    ("dropped_events_count",): SCALAR,
    ("dropped_links_count",): SCALAR,
    ("status", "code"): SCALAR,
    ("status", "message"): SCALAR,
    ("flags",): SCALAR,
}
_SPANEVENT = {
    ("time_unix_nano",): SCALAR,
    ("name",): SCALAR,
    ("attributes",): MAP,
    ("dropped_attributes_count",): SCALAR,
    ("event_index",): SCALAR,
}
_LOG = {
    ("time_unix_nano",): SCALAR,
    ("observed_time_unix_nano",): SCALAR,
    ("severity_number",): SCALAR,
    ("severity_text",): SCALAR,
    ("body",): MAP,  # body["k"] when the body is a map
    ("body", "string"): SCALAR,
    ("attributes",): MAP,
    ("dropped_attributes_count",): SCALAR,
    ("flags",): SCALAR,
    ("event_name",): SCALAR,
    **{(f,): SCALAR for f in ("trace_id", "span_id")},
    **{(f, "string"): SCALAR for f in ("trace_id", "span_id")},
}
_METRIC = {
    ("name",): SCALAR,
    ("description",): SCALAR,
    ("unit",): SCALAR,
    ("type",): SCALAR,
    ("aggregation_temporality",): SCALAR,
    ("is_monotonic",): SCALAR,
    ("metadata",): MAP,
}
_DATAPOINT = {
    ("attributes",): MAP,
    **{(f,): SCALAR for f in ("start_time_unix_nano", "time_unix_nano", "value_double", "value_int", "flags",
                              "count", "sum", "min", "max", "scale", "zero_count")},
    ("positive", "offset"): SCALAR,
    ("negative", "offset"): SCALAR,
}


def _prefixed(prefix: str, table: dict[tuple[str, ...], str]) -> dict[tuple[str, ...], str]:
    return {(prefix, *k): v for k, v in table.items()}


_PARENTS = {**_prefixed("resource", _RESOURCE), **_prefixed("instrumentation_scope", _SCOPE)}
CONTEXT_PATHS: dict[str, dict[tuple[str, ...], str]] = {
    "span": {**_SPAN, **_PARENTS},
    "spanevent": {**_SPANEVENT, **_prefixed("span", _SPAN), **_PARENTS},
    "log": {**_LOG, **_PARENTS},
    "metric": {**_METRIC, **_PARENTS},
    "datapoint": {**_DATAPOINT, **_prefixed("metric", _METRIC), **_PARENTS},
    "resource": dict(_RESOURCE),
    "scope": {**_SCOPE, **_prefixed("resource", _RESOURCE)},
}
"""The field paths each context kind has, after its own prefix is stripped and ``scope.`` is
spelled ``instrumentation_scope.``; ``MAP`` fields take ``["key"]`` indexes."""

CONTEXTS = tuple(CONTEXT_PATHS)
_SELF_PREFIXES = {kind: {kind} for kind in CONTEXTS} | {"scope": {"scope", "instrumentation_scope"}}


@dataclass(frozen=True, slots=True)
class Signature:
    """A converter: its parameters (name, kind) and what it returns. Parameter kinds: ``value``
    (any expression), ``string`` (a string literal, as OTTL's Go ``string`` parameters are),
    ``bytes`` (a byte-slice literal), ``list`` (a list of expressions)."""

    params: tuple[tuple[str, str], ...]
    returns: str  # "bool", "int", "float", "string", "bytes"
    contexts: tuple[str, ...] = CONTEXTS


_ONE = (("target", "value"),)
FUNCTIONS: dict[str, Signature] = {
    "IsMatch": Signature((("target", "value"), ("pattern", "string")), "bool"),
    "IsString": Signature(_ONE, "bool"),
    "IsInt": Signature(_ONE, "bool"),
    "IsDouble": Signature(_ONE, "bool"),
    "IsBool": Signature(_ONE, "bool"),
    "IsMap": Signature(_ONE, "bool"),
    "IsList": Signature(_ONE, "bool"),
    "IsRootSpan": Signature((), "bool", ("span",)),
    "HasPrefix": Signature((("target", "value"), ("prefix", "string")), "bool"),
    "HasSuffix": Signature((("target", "value"), ("suffix", "string")), "bool"),
    "Len": Signature(_ONE, "int"),
    "Int": Signature(_ONE, "int"),
    "Double": Signature(_ONE, "float"),
    "String": Signature(_ONE, "string"),
    "ToLowerCase": Signature(_ONE, "string"),
    "ToUpperCase": Signature(_ONE, "string"),
    "Concat": Signature((("vals", "list"), ("delimiter", "string")), "string"),
    "SpanID": Signature((("bytes", "bytes"),), "bytes"),
    "TraceID": Signature((("bytes", "bytes"),), "bytes"),
}
"""The converters usable in conditions; any other name fails at compile time."""

# --------------------------------------------------------------------------------------------
# AST
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    """``type`` is one of "string", "int", "float", "bool", "nil", "bytes"."""

    pos: int
    type: str
    value: object


@dataclass(frozen=True, slots=True)
class Path:
    """A resolved path: ``fields`` after prefix stripping/aliasing, as the Context wants them."""

    pos: int
    fields: tuple[str, ...]
    keys: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class ListExpr:
    pos: int
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Call:
    pos: int
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Math:
    pos: int
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare:
    pos: int
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``and`` / ``or`` over two or more operands."""

    pos: int
    op: str
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    pos: int
    operand: Node


Node = Literal | Path | ListExpr | Call | Math | Compare | BoolOp | Not

# --------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "str", "int", "float", "bytes", "ident", "op", "eof"
    text: str
    pos: int
    value: object = field(default=None, compare=False)


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<bytes>0x[0-9A-Fa-f]*)
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)
  | (?P<int>\d+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|[<>()\[\],.+\-*/=])
  | (?P<str>")
    """,
    re.VERBOSE,
)
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f",
            "a": "\a", "v": "\v", "'": "'"}
KEYWORDS = {"and", "or", "not", "true", "false", "nil"}


def _read_string(text: str, start: int) -> tuple[str, int]:
    """A Go-style double-quoted string from ``start`` (the opening quote); returns the value and
    the offset after the closing quote. Unknown escapes are errors, as with Go's Unquote, so
    that ``"\\d"`` (meant for a regex) is caught instead of silently changing meaning."""
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= n:
                break
            e = text[i + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
                continue
            if e in "uU":
                width = 4 if e == "u" else 8
                digits = text[i + 2:i + 2 + width]
                if len(digits) != width or not all(ch in "0123456789abcdefABCDEF" for ch in digits):
                    raise error(text, i, f"invalid \\{e} escape in string")
                out.append(chr(int(digits, 16)))
                i += 2 + width
                continue
            if e == "x":
                digits = text[i + 2:i + 4]
                if len(digits) != 2 or not all(ch in "0123456789abcdefABCDEF" for ch in digits):
                    raise error(text, i, "invalid \\x escape in string")
                out.append(chr(int(digits, 16)))
                i += 4
                continue
            raise error(text, i, f'unknown escape "\\{e}" in string (write "\\\\{e}" for a backslash)')
        if c == "\n":
            break
        out.append(c)
        i += 1
    raise error(text, start, "unterminated string")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        m = _TOKEN_RE.match(text, i)
        if m is None:
            raise error(text, i, f'unexpected character "{text[i]}"')
        kind = m.lastgroup
        assert kind is not None
        if kind == "ws":
            i = m.end()
            continue
        if kind == "str":
            value, end = _read_string(text, i)
            tokens.append(Token("str", text[i:end], i, value))
            i = end
            continue
        raw = m.group()
        end = m.end()
        if end < n and kind in ("int", "float", "bytes") and (text[end].isalnum() or text[end] == "_"):
            raise error(text, i, f'malformed number "{raw}{text[end]}"')
        if kind == "int":
            tokens.append(Token("int", raw, i, int(raw)))
        elif kind == "float":
            tokens.append(Token("float", raw, i, float(raw)))
        elif kind == "bytes":
            digits = raw[2:]
            if not digits or len(digits) % 2:
                raise error(text, i, f'byte literal "{raw}" needs an even, non-zero number of hex digits')
            tokens.append(Token("bytes", raw, i, bytes.fromhex(digits)))
        else:
            tokens.append(Token(kind, raw, i))
        i = end
    tokens.append(Token("eof", "", n))
    return tokens


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------

COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
_INT64_MAX = 2**63 - 1


def is_boolean(node: Node) -> bool:
    """Whether ``node`` may stand where OTTL wants a Boolean (``and``/``or``/``not`` operands, the
    whole condition)."""
    if isinstance(node, Compare | BoolOp | Not):
        return True
    if isinstance(node, Literal):
        return node.type == "bool"
    if isinstance(node, Call):
        return FUNCTIONS[node.name].returns == "bool"
    return False


def value_type(node: Node) -> str:
    """The static type of a value node, "any" for paths (their type is per row)."""
    if isinstance(node, Literal):
        return node.type
    if isinstance(node, Call):
        return FUNCTIONS[node.name].returns
    if isinstance(node, Math):
        return "number"
    return "any"


class _Parser:
    def __init__(self, text: str, context: str) -> None:
        self.text = text
        self.context = context
        self.tokens = tokenize(text)
        self.i = 0

    # -- helpers ---------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def advance(self) -> Token:
        t = self.tokens[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def is_kw(self, word: str) -> bool:
        return self.tok.kind == "ident" and self.tok.text == word

    def fail(self, expected: str, tok: Token | None = None) -> OttlError:
        t = tok or self.tok
        if t.kind == "eof":
            got = "end of condition"
        else:
            got = t.text if t.kind == "str" else f'"{t.text}"'
        return error(self.text, t.pos, f"expected {expected}, got {got}")

    def expect_op(self, op: str, expected: str | None = None) -> Token:
        if not self.is_op(op):
            raise self.fail(expected or f'"{op}"')
        return self.advance()

    def require_boolean(self, node: Node) -> Node:
        if not is_boolean(node):
            raise error(self.text, node.pos, "expected a boolean expression (a comparison, true/false or a "
                        "boolean converter such as IsMatch)")
        return node

    def require_value(self, node: Node) -> Node:
        if isinstance(node, Compare | BoolOp | Not):
            raise error(self.text, node.pos, "a comparison or boolean expression cannot be used as a value")
        if isinstance(node, ListExpr):
            raise error(self.text, node.pos, "a list can only be a converter argument")
        return node

    # -- grammar ---------------------------------------------------------------------------

    def parse(self) -> Node:
        if self.tok.kind == "eof":
            raise self.fail("a condition")
        node = self.or_expr()
        if self.tok.kind != "eof":
            if self.is_op(*COMPARE_OPS):
                raise error(self.text, self.tok.pos, "comparisons cannot be chained; use \"and\"")
            raise self.fail('"and", "or" or end of condition')
        return self.require_boolean(node)

    def or_expr(self) -> Node:
        first = self.and_expr()
        if not self.is_kw("or"):
            return first
        operands = [self.require_boolean(first)]
        while self.is_kw("or"):
            self.advance()
            operands.append(self.require_boolean(self.and_expr()))
        return BoolOp(first.pos, "or", tuple(operands))

    def and_expr(self) -> Node:
        first = self.not_expr()
        if not self.is_kw("and"):
            return first
        operands = [self.require_boolean(first)]
        while self.is_kw("and"):
            self.advance()
            operands.append(self.require_boolean(self.not_expr()))
        return BoolOp(first.pos, "and", tuple(operands))

    def not_expr(self) -> Node:
        if self.is_kw("not"):
            t = self.advance()
            return Not(t.pos, self.require_boolean(self.not_expr()))
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        if not self.is_op(*COMPARE_OPS):
            return left
        op = self.advance()
        right = self.additive()
        return Compare(op.pos, op.text, self.require_value(left), self.require_value(right))

    def _math_operand(self, node: Node) -> Node:
        self.require_value(node)
        t = value_type(node)
        if t not in ("int", "float", "number", "any"):
            raise error(self.text, node.pos, f"math needs numbers, got a {t} value")
        return node

    def additive(self) -> Node:
        left = self.term()
        while self.is_op("+", "-"):
            op = self.advance()
            right = self.term()
            left = Math(op.pos, op.text, self._math_operand(left), self._math_operand(right))
        return left

    def term(self) -> Node:
        left = self.unary()
        while self.is_op("*", "/"):
            op = self.advance()
            right = self.unary()
            left = Math(op.pos, op.text, self._math_operand(left), self._math_operand(right))
        return left

    def unary(self) -> Node:
        if self.is_op("-", "+"):
            sign = self.advance()
            nxt = self.tok
            # A signed number literal stays a literal, so -9223372036854775808 fits in int64.
            if nxt.kind in ("int", "float"):
                self.advance()
                value = nxt.value if sign.text == "+" else -nxt.value  # type: ignore[operator]
                return self._number(sign.pos, nxt.kind, value)
            operand = self._math_operand(self.unary())
            if sign.text == "+":
                return operand
            return Math(sign.pos, "-", Literal(sign.pos, "int", 0), operand)
        return self.primary()

    def _number(self, pos: int, kind: str, value: object) -> Literal:
        if kind == "int":
            assert isinstance(value, int)
            if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
                raise error(self.text, pos, "integer literal out of int64 range")
            return Literal(pos, "int", value)
        return Literal(pos, "float", value)

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "str":
            self.advance()
            return Literal(t.pos, "string", t.value)
        if t.kind in ("int", "float"):
            self.advance()
            return self._number(t.pos, t.kind, t.value)
        if t.kind == "bytes":
            self.advance()
            return Literal(t.pos, "bytes", t.value)
        if self.is_op("("):
            self.advance()
            inner = self.or_expr()
            self.expect_op(")", '")"')
            return inner
        if t.kind == "ident":
            if t.text in ("true", "false"):
                self.advance()
                return Literal(t.pos, "bool", t.text == "true")
            if t.text == "nil":
                self.advance()
                return Literal(t.pos, "nil", None)
            if t.text in KEYWORDS:
                raise self.fail("a value")
            if t.text[0].isupper():
                if self.peek().kind == "op" and self.peek().text == "(":
                    return self.call()
                return self.enum()
            if self.peek().kind == "op" and self.peek().text == "(":
                raise error(self.text, t.pos, f'editor "{t.text}" cannot be used in a condition '
                            "(only converters, which start with an uppercase letter)")
            return self.path()
        raise self.fail("a value")

    def enum(self) -> Literal:
        t = self.advance()
        table = ENUMS[self.context]
        if t.text in table:
            return Literal(t.pos, "int", table[t.text])
        if t.text in ALL_ENUMS:
            raise error(self.text, t.pos, f'enum "{t.text}" is not available in the {self.context} context')
        raise error(self.text, t.pos, f'unknown enum "{t.text}"')

    def call(self) -> Call:
        name_tok = self.advance()
        name = name_tok.text
        sig = FUNCTIONS.get(name)
        if sig is None:
            raise error(self.text, name_tok.pos, f'unknown converter "{name}" (supported: {", ".join(FUNCTIONS)})')
        if self.context not in sig.contexts:
            raise error(self.text, name_tok.pos, f'{name}() is not available in the {self.context} context')
        self.expect_op("(")
        positional: list[Node] = []
        named: dict[str, Node] = {}
        while not self.is_op(")"):
            if positional or named:
                self.expect_op(",", '"," or ")"')
            if (self.tok.kind == "ident" and self.peek().kind == "op" and self.peek().text == "="
                    and self.tok.text not in KEYWORDS):
                arg_tok = self.advance()
                self.advance()
                if arg_tok.text in named:
                    raise error(self.text, arg_tok.pos, f'argument "{arg_tok.text}" given twice')
                named[arg_tok.text] = self.argument()
            else:
                if named:
                    raise error(self.text, self.tok.pos, "positional arguments must come before named ones")
                positional.append(self.argument())
        close = self.advance()
        params = sig.params
        if len(positional) > len(params):
            raise error(self.text, positional[len(params)].pos,
                        f"{name}() takes {len(params)} argument{'s' if len(params) != 1 else ''}, "
                        f"got {len(positional) + len(named)}")
        args: list[Node | None] = [*positional, *([None] * (len(params) - len(positional)))]
        names = [p[0] for p in params]
        for arg_name, node in named.items():
            if arg_name not in names:
                raise error(self.text, node.pos, f'{name}() has no argument "{arg_name}"')
            idx = names.index(arg_name)
            if args[idx] is not None:
                raise error(self.text, node.pos, f'argument "{arg_name}" given twice')
            args[idx] = node
        for (pname, pkind), node in zip(params, args, strict=True):
            if node is None:
                raise error(self.text, close.pos, f'{name}() is missing argument "{pname}"')
            self._check_arg(name, pname, pkind, node)
        return Call(name_tok.pos, name, tuple(a for a in args if a is not None))

    def _check_arg(self, func: str, pname: str, pkind: str, node: Node) -> None:
        if pkind == "string":
            if not (isinstance(node, Literal) and node.type == "string"):
                raise error(self.text, node.pos, f'{func}() argument "{pname}" must be a string literal')
            if func == "IsMatch":
                _check_regex(self.text, node)
        elif pkind == "bytes":
            if not (isinstance(node, Literal) and node.type == "bytes"):
                raise error(self.text, node.pos, f'{func}() argument "{pname}" must be a byte literal (0x...)')
            want = {"SpanID": 8, "TraceID": 16}[func]
            if len(node.value) != want:  # type: ignore[arg-type]
                raise error(self.text, node.pos, f"{func}() needs exactly {want} bytes")
        elif pkind == "list":
            if not isinstance(node, ListExpr):
                raise error(self.text, node.pos, f'{func}() argument "{pname}" must be a list [...]')
        else:
            self.require_value(node)

    def argument(self) -> Node:
        if self.is_op("["):
            start = self.advance()
            items: list[Node] = []
            while not self.is_op("]"):
                if items:
                    self.expect_op(",", '"," or "]"')
                items.append(self.require_value(self.or_expr()))
            self.advance()
            return ListExpr(start.pos, tuple(items))
        return self.or_expr()

    def path(self) -> Path:
        start = self.tok
        segments = [self.advance()]
        while self.is_op("."):
            self.advance()
            if self.tok.kind != "ident" or self.tok.text in KEYWORDS or self.tok.text[0].isupper():
                raise self.fail("a path segment after \".\"")
            segments.append(self.advance())
        keys: list[str] = []
        while self.is_op("["):
            self.advance()
            k = self.tok
            if k.kind == "str":
                keys.append(k.value)  # type: ignore[arg-type]
                self.advance()
            elif k.kind == "int":
                raise error(self.text, k.pos, "list indexes ([0]) are not supported in conditions")
            else:
                raise self.fail("a string key", k)
            self.expect_op("]", '"]"')
        end = self.tokens[self.i - 1]
        text = self.text[start.pos:end.pos + len(end.text)]
        fields = tuple(s.text for s in segments)
        return Path(start.pos, *self._resolve(start.pos, fields, tuple(keys), text), text)

    def _resolve(self, pos: int, fields: tuple[str, ...], keys: tuple[str, ...],
                 text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Strip this context's own prefix, spell ``scope`` as ``instrumentation_scope`` and check
        the path exists for the context kind."""
        if len(fields) > 1 and fields[0] in _SELF_PREFIXES[self.context]:
            fields = fields[1:]
        if fields[0] == "scope":
            fields = ("instrumentation_scope", *fields[1:])
        if self.context == "scope" and fields[0] == "instrumentation_scope" and len(fields) > 1:
            fields = fields[1:]
        table = CONTEXT_PATHS[self.context]
        kind = table.get(fields)
        if kind is None:
            if fields[0] not in {k[0] for k in table}:
                raise error(self.text, pos, f'path "{text}" is not valid in the {self.context} context '
                            f'(unknown field "{fields[0]}")')
            raise error(self.text, pos, f'path "{text}" is not valid in the {self.context} context')
        if keys and kind != MAP:
            raise error(self.text, pos, f'path "{text}": "{".".join(fields)}" is not a map and takes no ["key"]')
        return fields, keys


def _check_regex(text: str, node: Literal) -> None:
    """Compile the pattern with RE2 (through Arrow, which evaluates it) so a bad regex is a config
    error, not a failure on the first batch."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.match_substring_regex(pa.array([""], pa.string()), pattern=node.value)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise error(text, node.pos, f"invalid regular expression: {exc}") from None


def parse_condition(text: str, context: str) -> Node:
    """Parse and statically check one OTTL condition for a context kind."""
    if context not in CONTEXT_PATHS:
        raise OttlError(f'unknown OTTL context "{context}" (one of {", ".join(CONTEXTS)})')
    return _Parser(text, context).parse()
