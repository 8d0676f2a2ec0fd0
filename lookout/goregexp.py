"""Go's ``regexp.Expand`` for Python matches: ``label_replace`` in PromQL and LogQL writes its
replacement templates in Go's syntax (``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``)."""

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
