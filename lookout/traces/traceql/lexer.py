"""TraceQL lexer: query text → tokens with 0-based source offsets.

Token kinds: ``STRING INTEGER FLOAT DURATION IDENT INTRINSIC ATTRIBUTE`` (value-carrying), the
punctuation ``{ } ( ) , |`` and the operators in ``OPERATORS``, and ``EOF``. Attributes are
lexed whole, as in Tempo: ``.a.b``, ``span.x``, ``resource."quoted name"``, ``parent.span.x``;
the name runs until whitespace or one of ``{}()=~!<>&|^,`` and may contain quoted segments in
which only ``\\"`` and ``\\\\`` are escapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import TraceQLParseError

# Longest first so that "!>>" wins over "!>" and "!".
OPERATORS = (
    "!>>", "!<<", "&>>", "&<<",
    "&&", "||", "!=", "=~", "!~", "<=", ">=", ">>", "<<", "!>", "!<", "&>", "&<", "&~",
    "=", "<", ">", "~", "!", "+", "-", "*", "/", "%", "^",
    "{", "}", "(", ")", ",", "|",
)  # fmt: skip

ATTRIBUTE_SCOPES = ("span", "resource", "event", "link", "instrumentation")
"""Scopes written ``scope.name``; ``parent.`` may precede ``span.``/``resource.``."""

_ATTR_TERMINATORS = frozenset("{}()=~!<>&|^,")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NANOS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
               "h": 3600 * 10**9}  # fmt: skip
INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "IDENT", "STRING", ..., or the operator/punctuation text itself
    value: object
    start: int
    end: int

    def describe(self) -> str:
        """How a syntax error names this token (Tempo style: ``unexpected IDENTIFIER``)."""
        if self.kind == "EOF":
            return "$end"
        if self.kind == "IDENT":
            return f"IDENTIFIER {self.value}"
        if self.kind in ("STRING", "INTEGER", "FLOAT", "DURATION", "ATTRIBUTE", "INTRINSIC"):
            return self.kind
        return repr(self.kind)


@dataclass(frozen=True, slots=True)
class AttributeToken:
    """The value of an ``ATTRIBUTE`` token."""

    scope: str | None  # None: unscoped ".x" (or "parent.x")
    name: str
    parent: bool


def is_attribute_rune(ch: str) -> bool:
    return not ch.isspace() and ch not in _ATTR_TERMINATORS


def parse_duration(text: str) -> int:
    """Go-style duration text (``1h30m``, ``1.5s``, ``10us``) → integer nanoseconds."""
    total = 0.0
    for number, unit in _DURATION_PART.findall(text):
        total += float(number) * _UNIT_NANOS[unit]
    return round(total)


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\", "'": "'", '"': '"', "`": "`"}  # fmt: skip


class Lexer:
    def __init__(self, query: str):
        self.query = query
        self.pos = 0

    def error(self, message: str, offset: int) -> TraceQLParseError:
        return TraceQLParseError.at(message, self.query, offset)

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        while True:
            tok = self._next()
            out.append(tok)
            if tok.kind == "EOF":
                return out

    def _next(self) -> Token:
        q = self.query
        n = len(q)
        while self.pos < n and q[self.pos].isspace():
            self.pos += 1
        start = self.pos
        if start >= n:
            return Token("EOF", None, n, n)
        ch = q[start]
        if ch == '"' or ch == "`":
            value, self.pos = self._string(start)
            return Token("STRING", value, start, self.pos)
        if ch.isdigit():
            return self._number(start)
        if ch == "." and start + 1 < n and (is_attribute_rune(q[start + 1]) or q[start + 1] == '"'):
            name, self.pos = self._attribute_name(start + 1)
            return Token("ATTRIBUTE", AttributeToken(None, name, False), start, self.pos)
        m = _IDENT.match(q, start)
        if m:
            return self._word(start, m.group())
        for op in OPERATORS:
            if q.startswith(op, start):
                self.pos = start + len(op)
                return Token(op, op, start, self.pos)
        raise self.error(f"syntax error: unexpected character {ch!r}", start)

    def _word(self, start: int, word: str) -> Token:
        q = self.query
        end = start + len(word)
        nxt = q[end] if end < len(q) else ""
        if nxt == "." and word in (*ATTRIBUTE_SCOPES, "parent"):
            return self._scoped_attribute(start, word, end + 1)
        if nxt == ":":
            m = _IDENT.match(q, end + 1)
            if m:
                self.pos = m.end()
                return Token("INTRINSIC", f"{word}:{m.group()}", start, self.pos)
        self.pos = end
        return Token("IDENT", word, start, end)

    def _scoped_attribute(self, start: int, word: str, pos: int) -> Token:
        q = self.query
        parent = word == "parent"
        scope: str | None = None if parent else word
        if parent:
            for inner in ("span", "resource"):
                prefix = inner + "."
                if q.startswith(prefix, pos):
                    scope, pos = inner, pos + len(prefix)
                    break
        if pos >= len(q) or not (is_attribute_rune(q[pos]) or q[pos] == '"'):
            raise self.error("syntax error: expected an attribute name", pos)
        name, self.pos = self._attribute_name(pos)
        return Token("ATTRIBUTE", AttributeToken(scope, name, parent), start, self.pos)

    def _attribute_name(self, pos: int) -> tuple[str, int]:
        q = self.query
        n = len(q)
        parts: list[str] = []
        while pos < n:
            ch = q[pos]
            if ch == '"':
                i = pos + 1
                buf: list[str] = []
                while True:
                    if i >= n:
                        raise self.error("syntax error: unterminated quoted attribute name", pos)
                    c = q[i]
                    if c == "\\" and i + 1 < n and q[i + 1] in '"\\':
                        buf.append(q[i + 1])
                        i += 2
                    elif c == '"':
                        i += 1
                        break
                    else:
                        buf.append(c)
                        i += 1
                parts.append("".join(buf))
                pos = i
            elif is_attribute_rune(ch):
                j = pos
                while j < n and is_attribute_rune(q[j]) and q[j] != '"':
                    j += 1
                parts.append(q[pos:j])
                pos = j
            else:
                break
        return "".join(parts), pos

    def _string(self, start: int) -> tuple[str, int]:
        q = self.query
        n = len(q)
        quote = q[start]
        i = start + 1
        if quote == "`":
            end = q.find("`", i)
            if end < 0:
                raise self.error("syntax error: unterminated string", start)
            return q[i:end], end + 1
        buf: list[str] = []
        while True:
            if i >= n or q[i] == "\n":
                raise self.error("syntax error: unterminated string", start)
            c = q[i]
            if c == '"':
                return "".join(buf), i + 1
            if c != "\\":
                buf.append(c)
                i += 1
                continue
            if i + 1 >= n:
                raise self.error("syntax error: unterminated string", start)
            e = q[i + 1]
            if e in _SIMPLE_ESCAPES:
                buf.append(_SIMPLE_ESCAPES[e])
                i += 2
            elif e in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[e]
                digits = q[i + 2 : i + 2 + width]
                if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                    raise self.error("syntax error: invalid escape in string", i)
                buf.append(chr(int(digits, 16)))
                i += 2 + width
            elif e in "01234567":
                digits = q[i + 1 : i + 4]
                if len(digits) != 3 or not all(d in "01234567" for d in digits):
                    raise self.error("syntax error: invalid escape in string", i)
                buf.append(chr(int(digits, 8)))
                i += 4
            else:
                raise self.error("syntax error: invalid escape in string", i)

    def _number(self, start: int) -> Token:
        q = self.query
        m = _DURATION.match(q, start)
        if m and not (m.end() < len(q) and (q[m.end()].isalnum() or q[m.end()] == "_")):
            self.pos = m.end()
            return Token("DURATION", parse_duration(m.group()), start, self.pos)
        m = _NUMBER.match(q, start)
        assert m is not None
        end = m.end()
        if end < len(q) and (q[end].isalpha() or q[end] == "_"):
            raise self.error("syntax error: invalid number or duration", start)
        self.pos = end
        text = m.group()
        if "." in text or "e" in text or "E" in text:
            return Token("FLOAT", float(text), start, end)
        value = int(text)
        if value > INT64_MAX:
            raise self.error(f"syntax error: integer out of range: {text}", start)
        return Token("INTEGER", value, start, end)


def tokenize(query: str) -> list[Token]:
    return Lexer(query).tokens()
