"""Go's string behaviour where the query languages expose it: ``strconv.Quote`` for the string
literals PromQL and TraceQL print back, and ``regexp.Expand`` for ``label_replace`` templates
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
