"""Go's string behaviour where the query languages expose it: ``strconv.Quote`` for the string
literals PromQL and TraceQL print back, ``strconv.Unquote`` for the double-quoted literals of
Alertmanager matchers and Go templates, and ``regexp.Expand`` for ``label_replace`` templates
(``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``) in PromQL and LogQL."""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z0-9_]+")


def expand(template: str, match: re.Match[str]) -> str:
    """``template`` with group references replaced from ``match``; unknown groups expand to ""."""
    out: list[str] = []
    i = 0
    while i < len(template):
        c = template[i]
        if c != "$" or i + 1 >= len(template):
            out.append(c)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            j = template.find("}", i + 2)
            if j < 0:
                out.append(c)
                i += 1
                continue
            name = template[i + 2:j]
            i = j + 1
        else:
            mm = _NAME.match(template, i + 1)
            if not mm:
                out.append(c)
                i += 1
                continue
            name = mm.group(0)
            i = mm.end()
        try:
            group = match.group(int(name)) if name.isdigit() else match.group(name)
        except (IndexError, re.error):
            group = ""
        out.append(group or "")
    return "".join(out)


def quote(value: str) -> str:
    """Go's ``strconv.Quote`` for the characters that matter in label values and literals."""
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
            '"': '"', "'": "'"}
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}
_HEX = frozenset("0123456789abcdefABCDEF")


class UnquoteError(ValueError):
    """A bad escape in a Go string literal; ``str()`` names it, ``at_end`` is a lone final ``\\``."""

    def __init__(self, message: str, *, at_end: bool = False) -> None:
        super().__init__(message)
        self.at_end = at_end


def unquote(body: str) -> str:
    """The value of a Go interpreted string literal, given the text between its double quotes
    (``\\n``, ``\\x1b``, ``\\u00e9``, ``\\101``, ``\\"``); raises :class:`UnquoteError`."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise UnquoteError("invalid escape at end", at_end=True)
        e = body[i]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 1
        elif e in _HEX_WIDTH:
            digits = body[i + 1:i + 1 + _HEX_WIDTH[e]]
            if len(digits) != _HEX_WIDTH[e] or not _HEX.issuperset(digits):
                raise UnquoteError(f"invalid escape \\{e}{digits}")
            out.append(chr(int(digits, 16)))
            i += 1 + len(digits)
        elif e in "01234567":
            digits = body[i:i + 3]
            if len(digits) != 3 or not set(digits) <= set("01234567"):
                raise UnquoteError("invalid octal escape")
            out.append(chr(int(digits, 8)))
            i += 3
        else:
            raise UnquoteError(f"invalid escape \\{e}")
    return "".join(out)
