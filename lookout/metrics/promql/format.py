"""Text output: Prometheus float/label formatting, ``format_query`` and ``parse_query_json``."""

from __future__ import annotations

import math

import numpy as np


def format_float(f: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'f' or 'e', -1, 64)`` as Prometheus' JSON API uses it:
    shortest representation, exponent form only below 1e-6 or from 1e21 on."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = repr(f)
        if "e" not in s:  # repr chose fixed notation; force Go's exponent form
            s = np.format_float_scientific(f, unique=True, trim="-", exp_digits=2)
        mant, exp = s.split("e")
        if mant.endswith(".0"):
            mant = mant[:-2]
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").lstrip("0")
        return f"{mant}e{sign}{digits.rjust(2, '0')}"
    return np.format_float_positional(f, unique=True, trim="-")


def format_query(query: str) -> str:
    """What ``/api/v1/format_query`` returns: the parser's prettified form of the query."""
    import promql_parser as pp

    from lookout.metrics.promql.parse import parse

    parse(query)  # raises a positioned bad_data error
    return pp.parse(query).prettify()


def parse_query_json(query: str) -> dict:
    """What ``/api/v1/parse_query`` returns: Prometheus' JSON AST shape (best effort)."""
    from lookout.metrics.promql import ast as A
    from lookout.metrics.promql.parse import parse

    def matchers(ms):
        return [{"type": m.op, "name": m.name, "value": m.value} for m in ms]

    def at_fields(at, offset_ms):
        d = {"offset": offset_ms, "timestamp": None, "startOrEnd": None}
        if at is not None:
            if at.kind == "at":
                d["timestamp"] = at.t_ms
            else:
                d["startOrEnd"] = at.kind
        return d

    def conv(e):
        if isinstance(e, A.NumberLit):
            return {"type": "numberLiteral", "val": format_float(e.val)}
        if isinstance(e, A.StringLit):
            return {"type": "stringLiteral", "val": e.val}
        if isinstance(e, A.VectorSel):
            return {"type": "vectorSelector", "name": e.name or "", "matchers": matchers(e.matchers),
                    **at_fields(e.at, e.offset_ms)}
        if isinstance(e, A.MatrixSel):
            return {"type": "matrixSelector", "range": e.range_ms, "vectorSelector": conv(e.vs)}
        if isinstance(e, A.Subquery):
            return {"type": "subquery", "expr": conv(e.expr), "range": e.range_ms, "step": e.step_ms,
                    **at_fields(e.at, e.offset_ms)}
        if isinstance(e, A.Paren):
            return {"type": "parenExpr", "expr": conv(e.expr)}
        if isinstance(e, A.Unary):
            return {"type": "unaryExpr", "op": e.op, "expr": conv(e.expr)}
        if isinstance(e, A.Call):
            return {"type": "call", "func": {"name": e.func}, "args": [conv(a) for a in e.args]}
        if isinstance(e, A.Agg):
            return {"type": "aggregation", "op": e.op, "expr": conv(e.expr),
                    "param": conv(e.param) if e.param is not None else None,
                    "grouping": list(e.grouping), "without": e.without}
        if isinstance(e, A.Binary):
            matching = None
            if e.card != "one-to-one" or e.matching or e.on:
                matching = {"card": e.card, "labels": list(e.matching), "on": e.on, "include": list(e.include)}
            return {"type": "binaryExpr", "op": e.op, "lhs": conv(e.lhs), "rhs": conv(e.rhs),
                    "bool": e.return_bool, "matching": matching}
        return {"type": type(e).__name__}

    return conv(parse(query).expr)
