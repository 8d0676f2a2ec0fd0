"""Loki ``pattern`` expressions (``<ip> - <_> "<method> <uri>"``) compiled to RE2 regexes.

The parser stage follows Loki's matcher: a leading literal must sit at the line start, each
capture runs to the first occurrence of the next literal, and when a literal is missing the
current capture takes the rest of the line and the later captures stay unset. That is expressed
as nested alternatives so that one ``pc.extract_regex`` call does every line; the ``m*`` groups
(the literal itself, never empty) tell which branch matched.
"""

from __future__ import annotations

import re

from .errors import ParseError

_TOKEN = re.compile(r"<([a-zA-Z_][a-zA-Z0-9_]*)>")
_RE2_SPECIAL = set("\\.+*?()|[]{}^$")


def re2_escape(s: str) -> str:
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in s)


def parse_pattern(text: str, *, line_filter: bool = False) -> tuple[list[tuple[str, str]], list[str | None]]:
    """Split a pattern into ``("lit", text)`` / ``("cap", name)`` elements; returns them and the capture
    names (``"_"`` for unnamed). Consecutive captures are refused, as in Loki."""
    elems: list[tuple[str, str]] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        if m.start() > pos:
            elems.append(("lit", text[pos:m.start()]))
        if elems and elems[-1][0] == "cap":
            raise ParseError(f"found consecutive capture '{m.group(0)}': invalid pattern")
        elems.append(("cap", m.group(1)))
        pos = m.end()
    if pos < len(text):
        elems.append(("lit", text[pos:]))
    if not elems:
        raise ParseError("invalid pattern")
    caps = [v for k, v in elems if k == "cap"]
    names = [c for c in caps if c != "_"]
    if len(set(names)) != len(names):
        raise ParseError("duplicate capture name: invalid pattern")
    return elems, list(caps)


def filter_regex(text: str) -> str:
    """The regex a ``|>`` line filter pattern stands for: literals in order, each ``<_>`` non-empty;
    a trailing literal must end the line."""
    elems, _ = parse_pattern(text, line_filter=True)
    out = "(?s)^"
    for i, (kind, val) in enumerate(elems):
        if kind == "lit":
            out += re2_escape(val)
        else:
            out += ".+" if i == len(elems) - 1 else ".+?"
    if elems[-1][0] == "lit":
        out += "$"
    return out


def extract_regex(text: str) -> tuple[str, list[tuple[str, int]]]:
    """The extraction regex and, per named capture, ``(name, index)``; capture ``i`` reads groups
    ``c{i}`` (found with its following literal ``m{i}``) or ``r{i}`` (the rest of the line)."""
    elems, _ = parse_pattern(text)
    out = "(?s)^"
    if elems[0][0] == "lit":
        out += re2_escape(elems[0][1])
        elems = elems[1:]
    caps: list[tuple[str, int]] = []

    def build(i: int, rest: list[tuple[str, str]]) -> str:
        if not rest:
            return ""
        name = rest[0][1]
        caps.append((name, i))
        if len(rest) == 1:
            return f"(?P<c{i}>.*)"
        lit = re2_escape(rest[1][1])
        return f"(?:(?P<c{i}>.*?)(?P<m{i}>{lit}){build(i + 1, rest[2:])}|(?P<r{i}>.*))"

    out += build(0, elems)
    return out, [(n, i) for n, i in caps if n != "_"]
