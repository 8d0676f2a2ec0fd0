"""Adapter from ``promql_parser`` (a Rust binding) to our AST in ``ast.py``.

The library type-checks the query for us (function signatures, aggregation parameters, binary
operand types). Two of its gaps are papered over here: its errors carry no position (we guess one,
see :func:`_error_position`), and it cannot return negative ``@`` timestamps (reading them
panics), so ``@`` values are read from the query text by a tiny lexer instead.
"""

from __future__ import annotations

import re

import promql_parser as pp

from lookout.metrics.model import Matcher
from lookout.metrics.promql import ast as A
from lookout.metrics.promql.errors import PromQLError, bad_data

_MATCH_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
_CARD = {
    "VectorMatchCardinality.OneToOne": "one-to-one",
    "VectorMatchCardinality.ManyToOne": "many-to-one",
    "VectorMatchCardinality.OneToMany": "one-to-many",
    "VectorMatchCardinality.ManyToMany": "many-to-many",
}
_AT_RE = re.compile(
    r"@\s*(start\s*\(\s*\)|end\s*\(\s*\)|[+-]?\s*(?:(?:\d+(?:ms|s|m|h|d|w|y))+(?![\w.])|0[xX][0-9a-fA-F]+"
    r"|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|nan))",
    re.IGNORECASE,
)


def _ms(td) -> int:
    """A ``datetime.timedelta`` to integer milliseconds, exactly."""
    return (td.days * 86_400_000_000 + td.seconds * 1_000_000 + td.microseconds) // 1000


_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}


def _duration_ms(s: str) -> int:
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", s))


def re2_to_python(rx: str) -> str:
    """Translate RE2 constructs Python's ``re`` rejects: a flag group such as ``(?i)`` in the
    middle of a pattern applies to the rest of its enclosing group, so it becomes ``(?i:...)``."""
    rx = rx.replace("\\z", "\\Z")
    if not re.search(r"\(\?[imsU-]+\)", rx[1:] if rx.startswith("(?") else rx):
        return rx
    out: list[str] = []
    closers: list[int] = []  # per open group: how many scoped flag groups to close with it
    opened = 0
    i, n = 0, len(rx)
    while i < n:
        c = rx[i]
        if c == "\\":
            out.append(rx[i:i + 2])
            i += 2
            continue
        if c == "[":
            j = i + 1
            if j < n and rx[j] == "^":
                j += 1
            if j < n and rx[j] == "]":
                j += 1
            while j < n and rx[j] != "]":
                j += 2 if rx[j] == "\\" else 1
            out.append(rx[i:j + 1])
            i = j + 1
            continue
        m = re.match(r"\(\?([imsU-]+)\)", rx[i:])
        if m:
            flags = m.group(1).replace("U", "")
            out.append(f"(?{flags}:" if flags and flags != "-" else "(?:")
            opened += 1
            i += m.end()
            continue
        if c == "(":
            closers.append(opened)
            opened = 0
            out.append(c)
            i += 1
            continue
        if c == ")":
            out.append(")" * opened)
            opened = closers.pop() if closers else 0
            out.append(c)
            i += 1
            continue
        if c == "|" and opened:
            out.append(")" * opened)
            opened = 0
        out.append(c)
        i += 1
    out.append(")" * opened)
    return "".join(out)


def _at_values(text: str) -> list[A.At]:
    """Every ``@`` modifier in source order, read from the text (outside strings and comments)."""
    out: list[A.At] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'`":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if (text[j] == "\\" and c != "`") else 1
            i = j + 1
            continue
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c == "@":
            m = _AT_RE.match(text, i)
            if m:
                tok = m.group(1).replace(" ", "").lower()
                if tok.startswith("start"):
                    out.append(A.At("start"))
                elif tok.startswith("end"):
                    out.append(A.At("end"))
                elif re.fullmatch(r"[+-]?(?:\d+(?:ms|s|m|h|d|w|y))+", tok):
                    sign = -1 if tok.startswith("-") else 1
                    out.append(A.At("at", sign * _duration_ms(tok.lstrip("+-"))))
                else:
                    v = float(int(tok, 16)) if "x" in tok else float(tok.replace("_", ""))
                    out.append(A.At("at", round(v * 1000)))
            else:
                out.append(A.At("at", 0))
        i += 1
    return out


_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:")


def _skip_quoted(text: str, i: int) -> int:
    """The index just after the string literal starting at ``text[i]``."""
    q, n = text[i], len(text)
    j = i + 1
    while j < n and text[j] != q:
        j += 2 if (text[j] == "\\" and q != "`") else 1
    return j + 1


def find_call(text: str, name: str, start: int) -> tuple[int, int] | None:
    """Offsets of the next ``name(`` at or after ``start`` (outside strings and comments): the
    name's start and the opening parenthesis (grouping clauses such as ``by (x)`` between the
    name and its parenthesis are skipped, as aggregations allow)."""
    i, n = start, len(text)
    while i < n:
        c = text[i]
        if c in "\"'`":
            i = _skip_quoted(text, i)
            continue
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if text.startswith(name, i) and (i == 0 or text[i - 1] not in _IDENT_CHARS) \
                and (i + len(name) >= n or text[i + len(name)] not in _IDENT_CHARS):
            j = i + len(name)
            while j < n and text[j].isspace():
                j += 1
            m = re.match(r"(?:by|without)\s*\([^)]*\)\s*", text[j:])
            if m:
                j += m.end()
            if j < n and text[j] == "(":
                return i, j
        i += 1
    return None


def arg_offsets(text: str, open_paren: int) -> list[int]:
    """Start offsets of the top-level, comma-separated arguments after ``text[open_paren]``."""
    out: list[int] = []
    i, n, depth = open_paren + 1, len(text), 0
    expect = True
    while i < n:
        c = text[i]
        if expect and not c.isspace():
            if c == ")" and depth == 0:
                break
            out.append(i)
            expect = False
        if c in "\"'`":
            i = _skip_quoted(text, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif c == "," and depth == 0:
            expect = True
        i += 1
    return out


class _Converter:
    def __init__(self, text: str) -> None:
        self.text = text
        self.ats = _at_values(text)
        self.at_i = 0
        self.cursor = 0  # calls and aggregations appear in the text in the tree's pre-order
        self.funcs: set[str] = set()

    def _locate(self, name: str) -> tuple[int, tuple[int, ...]]:
        found = find_call(self.text, name, self.cursor)
        if found is None:
            return 0, ()
        self.cursor = found[1] + 1
        return found[0], tuple(arg_offsets(self.text, found[1]))

    def _at(self, node) -> A.At | None:
        if node.at is None:
            return None
        if self.at_i < len(self.ats):
            at = self.ats[self.at_i]
        else:  # should not happen; fall back to the library's (non-negative) value
            kind = str(node.at.type).rsplit(".", 1)[-1].lower()
            at = A.At("at", round(float(str(node.at).split()[-1]) * 1000)) if kind == "at" else A.At(kind)
        self.at_i += 1
        return at

    def vs(self, node) -> A.VectorSel:
        matchers = tuple(
            Matcher(m.name, op, re2_to_python(m.value) if op in ("=~", "!~") else m.value)
            for m in node.matchers.matchers
            for op in (_MATCH_OPS[str(m.op)],)
            if m.name != INFO_PLACEHOLDER
        )
        if node.matchers.or_matchers:
            raise bad_data("1:1: parse error: `or` in label matchers is not supported")
        if node.name is not None and not any(m.name == "__name__" for m in matchers):
            matchers = (Matcher("__name__", "=", node.name),) + matchers
        offset = _ms(node.offset) if node.offset is not None else 0
        return A.VectorSel(node.name, matchers, offset, self._at(node))

    def conv(self, node) -> A.Expr:
        t = type(node).__name__
        if t == "NumberLiteral":
            return A.NumberLit(float(node.val))
        if t == "StringLiteral":
            return A.StringLit(node.val)
        if t == "VectorSelector":
            return self.vs(node)
        if t == "MatrixSelector":
            return A.MatrixSel(self.vs(node.vector_selector), _ms(node.range))
        if t == "ParenExpr":
            return A.Paren(self.conv(node.expr))
        if t == "UnaryExpr":
            return A.Unary("-", self.conv(node.expr))
        if t == "SubqueryExpr":
            inner = self.conv(node.expr)
            return A.Subquery(
                inner,
                _ms(node.range),
                _ms(node.step) if node.step is not None else 0,
                _ms(node.offset) if node.offset is not None else 0,
                self._at(node),
            )
        if t == "Call":
            name = node.func.name
            self.funcs.add(name)
            pos, args_at = self._locate(name)
            return A.Call(name, tuple(self.conv(a) for a in node.args), pos, args_at)
        if t == "AggregateExpr":
            op = str(node.op)
            pos, args_at = self._locate(op)
            param = self.conv(node.param) if node.param is not None else None
            inner = self.conv(node.expr)
            ppos = args_at[0] if args_at else pos
            mod = node.modifier
            if mod is None:
                return A.Agg(op, inner, param, pos=pos, param_pos=ppos)
            without = str(mod.type).endswith("Without")
            return A.Agg(op, inner, param, tuple(mod.labels), without, not without, pos=pos, param_pos=ppos)
        if t == "BinaryExpr":
            lhs = self.conv(node.lhs)
            rhs = self.conv(node.rhs)
            op = str(node.op).lower()
            mod = node.modifier
            if mod is None:
                card = "many-to-many" if op in ("and", "or", "unless") else "one-to-one"
                return A.Binary(op, lhs, rhs, card=card)
            on, labels = False, ()
            if mod.matching is not None:
                on = str(mod.matching.type).endswith("Include")
                labels = tuple(mod.matching.labels)
            fill_l = fill_r = None
            fv = getattr(mod, "fill_values", None)
            if fv is not None:
                fill_l, fill_r = fv.lhs, fv.rhs
            return A.Binary(
                op, lhs, rhs, bool(mod.return_bool), _CARD[str(mod.card)], on, labels,
                tuple(mod.group_labels or ()), fill_l, fill_r,
            )
        raise bad_data(f"unsupported expression node {t}")


def _error_position(text: str, msg: str) -> int:
    """A cheap guess at the 0-based offset of a parse error: the offending token named in the
    message if it occurs in the text, else the end of the longest parsable prefix."""
    m = re.search(r"'([^']+)'|\"([^\"]+)\"", msg)
    if m:
        tok = m.group(1) or m.group(2)
        pos = text.find(tok)
        if pos >= 0:
            return pos
    for cut in range(len(text) - 1, 0, -1):
        try:
            pp.parse(text[:cut])
        except BaseException:  # noqa: BLE001 - the binding may panic
            continue
        return cut
    return 0


INFO_PLACEHOLDER = "__lookout_info_selector__"


def _mark_info_selectors(text: str) -> str:
    """Give the label selector argument of every ``info()`` call a placeholder matcher.

    Prometheus accepts ``info(m, {data=~".*"})`` although that selector matches the empty value
    only (a plain selector must hold a non-empty matcher); the parser library does not know the
    exception, so the placeholder (dropped again by the converter) satisfies its check."""
    if "info" not in text:
        return text
    inserts: list[int] = []
    cursor = 0
    while (found := find_call(text, "info", cursor)) is not None:
        cursor = found[1] + 1
        args = arg_offsets(text, found[1])
        if len(args) > 1 and text[args[1]] == "{":
            inserts.append(args[1] + 1)
    for at in reversed(inserts):
        text = f'{text[:at]}{INFO_PLACEHOLDER}="1", {text[at:]}'
    return text


def parse(text: str) -> A.Parsed:
    """Parse a query into our AST, or raise a ``bad_data`` :class:`PromQLError` whose message
    reads like Prometheus' (``1:N: parse error: ...``)."""
    if not text.strip():
        raise bad_data("1:1: parse error: no expression found in input")
    try:
        node = pp.parse(_mark_info_selectors(text))
    except BaseException as exc:  # noqa: BLE001 - ValueError, or a pyo3 PanicException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        msg = str(exc).strip() or "invalid promql query"
        pos = _error_position(text, msg) if len(text) < 2000 else 0
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        raise bad_data(f"{line}:{col}: parse error: {msg}") from None
    conv = _Converter(text)
    try:
        expr = conv.conv(node)
    except PromQLError:
        raise
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise bad_data(f"1:1: parse error: {exc}") from None
    return A.Parsed(expr, text, conv.funcs)
