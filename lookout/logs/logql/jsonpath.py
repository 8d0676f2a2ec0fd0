"""Loki's json-parser expressions (``user.id``, ``tags[0]``, ``request.headers["User-Agent"]``) turned into
DuckDB JSON paths."""

from __future__ import annotations

import json
import re

from .errors import ParseError

_PART = re.compile(r'\.?([a-zA-Z_][a-zA-Z0-9_\-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def parse_json_expr(expr: str) -> list[str | int]:
    """Path parts: strings are object keys, ints array indexes."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(expr):
        m = _PART.match(expr, pos)
        if not m or (m.group(0).startswith(".") and pos == 0):
            raise ParseError(f"cannot parse expression [{expr}]: syntax error")
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(json.loads('"' + m.group(3) + '"'))
        pos = m.end()
    if not parts or isinstance(parts[0], int):
        raise ParseError(f"cannot parse expression [{expr}]: syntax error")
    return parts


def duckdb_path(expr: str) -> str:
    """``$."user"."id"[0]`` for DuckDB's ``json_extract``."""
    out = "$"
    for p in parse_json_expr(expr):
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += "." + json.dumps(p)
    return out
