"""LogQL tokenizer.

One pass over the query text into :class:`Token` objects that remember their line and column, so
the parser can report errors the way Loki does (``parse error at line 1, col 12: ...``). Keywords
stay identifiers here: LogQL lets most of them double as label names (``unwrap bytes(bytes)``), so
the parser decides by context.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ParseError

# Token kinds.
IDENT = "IDENTIFIER"
STRING = "STRING"
NUMBER = "NUMBER"
DURATION = "DURATION"
BYTES = "BYTES"
RANGE = "RANGE"
OP = "OP"
EOF = "EOF"

# Words Loki's lexer turns into their own tokens; errors name them by their text (``unexpected ip``).
KEYWORDS = frozenset(
    """by without bool on ignoring group_left group_right offset and or unless json logfmt regexp pattern
    unpack line_format label_format unwrap ip drop keep decolorize distinct vector label_replace
    duration duration_seconds bytes sum avg min max count stddev stdvar topk bottomk sort sort_desc
    approx_topk rate rate_counter count_over_time bytes_rate bytes_over_time absent_over_time
    sum_over_time avg_over_time min_over_time max_over_time stddev_over_time stdvar_over_time
    quantile_over_time first_over_time last_over_time""".split()
)

_OPERATORS = ("|=", "|~", "|>", "!=", "!~", "!>", "=~", "==", ">=", "<=", "|", "=", ">", "<", "+", "-", "*", "/",
              "%", "^", "(", ")", "{", "}", ",")

_NUMBER_RE = re.compile(
    r"0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
    r"|0[bB][01_]*|0[oO][0-7_]*"
    r"|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?"
)
_DURATION_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?(?:ns|us|µs|μs|ms|s|m|h|d|w|y))+")
_BYTES_RE = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:KiB|MiB|GiB|TiB|PiB|EiB|kB|KB|MB|GB|TB|PB|EB|B)")
_IDENT_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPE_RE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.S)
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str  # the literal source text (strings: already unquoted)
    line: int
    col: int
    pos: int

    def desc(self) -> str:
        """How Loki's grammar names this token in ``unexpected ...`` messages."""
        if self.kind == IDENT:
            return self.text if self.text in KEYWORDS else IDENT
        if self.kind == OP:
            return self.text
        if self.kind == EOF:
            return "$end"
        return self.kind

    def is_op(self, *ops: str) -> bool:
        return self.kind == OP and self.text in ops

    def is_word(self, *words: str) -> bool:
        return self.kind == IDENT and self.text in words


def unquote_go(body: str) -> str:
    """Undo Go string-literal escapes (``\\n``, ``\\x1b``, ``\\u00e9``, ``\\"``)."""

    def repl(m: re.Match[str]) -> str:
        e = m.group(1)
        if e in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[e]
        if e[0] in "xuU":
            return chr(int(e[1:], 16))
        if len(e) == 3 and e.isdigit():
            return chr(int(e, 8))
        raise ValueError(f"invalid escape \\{e}")

    return _ESCAPE_RE.sub(repl, body)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; raise :class:`ParseError` on a character that starts none."""
    toks: list[Token] = []
    i, n = 0, len(text)
    line, line_start = 1, 0
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            line_start = i
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "#":  # comment to end of line
            while i < n and text[i] != "\n":
                i += 1
            continue
        col = i - line_start + 1
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise ParseError("literal not terminated", line, col)
            try:
                val = unquote_go(text[i + 1:j])
            except ValueError as e:
                raise ParseError(f"invalid string literal: {e}", line, col) from None
            toks.append(Token(STRING, val, line, col, i))
            i = j + 1
            continue
        if c == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise ParseError("literal not terminated", line, col)
            toks.append(Token(STRING, text[i + 1:j], line, col, i))
            line += text.count("\n", i, j)
            i = j + 1
            continue
        if c == "[":
            j = text.find("]", i)
            if j < 0:
                raise ParseError("missing closing ']' in duration", line, col)
            toks.append(Token(RANGE, text[i + 1:j].strip(), line, col, i))
            i = j + 1
            continue
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            d = _DURATION_RE.match(text, i)
            b = _BYTES_RE.match(text, i)
            num = _NUMBER_RE.match(text, i)
            best = max((m for m in (d, b) if m), key=lambda m: m.end(), default=None)
            if best is not None and best.end() >= num.end():
                kind = DURATION if best is d and (b is None or d.end() >= b.end()) else BYTES
                toks.append(Token(kind, best.group(), line, col, i))
                i = best.end()
            else:
                toks.append(Token(NUMBER, num.group(), line, col, i))
                i = num.end()
            continue
        m = _IDENT_RE.match(text, i)
        if m:
            toks.append(Token(IDENT, m.group(), line, col, i))
            i = m.end()
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                toks.append(Token(OP, op, line, col, i))
                i += len(op)
                break
        else:
            raise ParseError(f"syntax error: unexpected {c!s}", line, col)
    toks.append(Token(EOF, "", line, i - line_start + 1, n))
    return toks


def parse_number(text: str) -> float:
    """Go ``strconv.ParseFloat`` over a NUMBER token: hex floats need a ``p`` exponent, and binary,
    octal and plain hex integers are refused."""
    t = text.replace("_", "")
    low = t.lower()
    if low.startswith("0x"):
        if "p" not in low:
            raise ValueError(text)
        return float.fromhex(t)
    if low.startswith(("0b", "0o")):
        raise ValueError(text)
    return float(t)
