"""Pipeline stages over a :class:`Batch`, one small class per LogQL stage (Loki's ``log`` package shape).

Every stage has ``process(batch, ctx) -> batch``; filters return a filtered batch, parsers add label
columns, formatters replace the line or labels. Line filters and label filters are pyarrow compute
expressions; json/unpack run in DuckDB (``json_tree``/``json_extract``); logfmt is one DuckDB
``regexp_extract_all``; regexp and pattern are one ``pc.extract_regex`` each. Only templates
(``line_format``/``label_format``) evaluate in Python, once per distinct input.
"""

from __future__ import annotations

import json
import re
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import ast
from .batch import ERROR, ERROR_DETAILS, Batch, nulls, sanitize_key, scatter, valid, where
from .ipfilter import match_column
from .jsonpath import duckdb_path
from .patterns import extract_regex, filter_regex
from .template import Template, TemplateError, compile_template
from .units import convert

_ANSI = r"\x1b\[[0-9;:]*[a-zA-Z]"
_LOGFMT_PAIR = r'([^\s="]+)(?:=("(?:[^"\\]|\\.)*"|[^\s"]*))?'
_LOGFMT_RE = r"(?:^|\s)" + _LOGFMT_PAIR
_JSON_OK = ("SELECT coalesce(CASE WHEN json_valid(line) THEN json_type(line::JSON) = 'OBJECT' ELSE false END, false) "
            "AS ok FROM lt ORDER BY r")
_LOGFMT_LINE = r'^\s*(?:' + _LOGFMT_PAIR + r'(?:\s+' + _LOGFMT_PAIR + r')*)?\s*$'


class Context:
    """What stages share during one query: a private DuckDB connection, opened on first use (opening one
    costs ~10 ms, and most queries never need it)."""

    def __init__(self) -> None:
        self._duck: duckdb.DuckDBPyConnection | None = None

    @property
    def duck(self) -> duckdb.DuckDBPyConnection:
        if self._duck is None:
            self._duck = duckdb.connect()
            self._duck.execute("SET enable_progress_bar = false")
        return self._duck

    def close(self) -> None:
        if self._duck is not None:
            self._duck.close()
            self._duck = None

    def sql(self, query: str, **tables: pa.Table) -> pa.Table:
        for name, t in tables.items():
            self.duck.register(name, t)
        try:
            return self.duck.sql(query).to_arrow_table()
        finally:
            for name in tables:
                self.duck.unregister(name)


def _np(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    return pc.fill_null(a, False).to_numpy(zero_copy_only=False)


def _col(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


# ---------------------------------------------------------------- line filters


def line_filter_mask(line: pa.Array, f: ast.LineFilter, ctx: Context) -> np.ndarray:
    """True where the line passes the filter (any operand for positive ops, none for negative)."""
    any_hit = np.zeros(len(line), dtype=bool)
    for kind, v in f.values:
        if kind == "ip":
            hit = match_column(line, v, ctx.duck)
        elif f.op in ("|=", "!="):
            hit = _np(pc.match_substring(line, v)) if v else np.ones(len(line), dtype=bool)
        elif f.op in ("|~", "!~"):
            hit = _np(pc.match_substring_regex(line, v))
        else:
            hit = _np(pc.match_substring_regex(line, filter_regex(v)))
        any_hit |= hit
    return any_hit if f.op in ("|=", "|~", "|>") else ~any_hit


# ---------------------------------------------------------------- parsers


def _unquote_logfmt(vals: pa.Array) -> pa.Array:
    quoted = pc.starts_with(vals, '"')
    inner = pc.replace_substring_regex(vals, r'^"(.*)"$', r"\1")
    inner = pc.replace_substring(inner, '\\"', '"')
    inner = pc.replace_substring(inner, "\\n", "\n")
    inner = pc.replace_substring(inner, "\\t", "\t")
    inner = pc.replace_substring(inner, "\\\\", "\\")
    return pc.if_else(quoted, inner, vals)


def parse_logfmt(b: Batch, st: ast.LogfmtParser, ctx: Context) -> Batch:
    n = len(b)
    # One regex pass over the lines finds the pairs; splitting each short pair is cheap.
    t = ctx.sql(
        f"SELECT regexp_extract_all(line, '{_LOGFMT_RE}', 0) AS p FROM lt ORDER BY r",
        lt=pa.table({"r": np.arange(n), "line": b.line}),
    )
    plists = _col(t["p"])
    parts = pc.extract_regex(pc.list_flatten(plists), r'(?s)^\s*(?P<k>[^\s="]+)(?:=(?P<v>.*))?$')
    keys = pc.struct_field(parts, "k")
    vals = _unquote_logfmt(pc.struct_field(parts, "v"))
    parents = pc.list_parent_indices(plists).to_numpy(zero_copy_only=False)
    b = b.copy()
    if st.strict:
        bad = ~_np(pc.match_substring_regex(b.line, _LOGFMT_LINE))
        b.set_error(bad, "LogfmtParserErr", "logfmt syntax error")
    if not st.keep_empty:
        keep = _np(pc.greater(pc.utf8_length(vals), 0))
        keys, vals, parents = keys.filter(pa.array(keep)), vals.filter(pa.array(keep)), parents[keep]
    if st.params:
        wanted = [(name, expr) for name, expr in st.params]
    else:
        # Several raw keys may sanitize to one label name: the first occurrence in the line wins.
        wanted = [(sanitize_key(k), k) for k in pc.unique(keys).to_pylist()]
    by_label: dict[str, list[str]] = {}
    for label, raw in wanted:
        by_label.setdefault(label, []).append(raw)
    for label, raws in by_label.items():
        if not label:
            continue
        m = _np(pc.is_in(keys, value_set=pa.array(raws, pa.string())))
        if not m.any():
            continue
        col = scatter(n, parents[m], vals.filter(pa.array(m)))
        b.add_parsed(label, col)
    return b


def _json_flat_name(fullkey: str) -> str | None:
    """``$.obj."a.b"`` → ``obj_a_b``; None for anything under an array."""
    parts = re.findall(r'\.(?:"((?:[^"\\]|\\.)*)"|([^."\[]+))|(\[)', fullkey[1:])
    names = []
    for quoted, plain, bracket in parts:
        if bracket:
            return None
        names.append(json.loads(f'"{quoted}"') if quoted else plain)
    if not names:
        return None
    return "_".join(sanitize_key(p, i == 0) for i, p in enumerate(names))


def parse_json(b: Batch, st: ast.JsonParser, ctx: Context) -> Batch:
    n = len(b)
    lt = pa.table({"r": np.arange(n), "line": b.line})
    ok_t = ctx.sql(
        _JSON_OK, lt=lt
    )
    ok = _np(ok_t["ok"])
    b = b.copy()
    b.set_error(~ok, "JSONParserErr", "Value looks like object, but can't find closing '}' symbol")
    if st.params:
        for label, expr in st.params:
            path = duckdb_path(expr).replace("'", "''")
            t = ctx.sql(
                f"SELECT CASE WHEN NOT ok THEN NULL WHEN json_type(j, '{path}') IS NULL THEN '' "
                f"WHEN json_type(j, '{path}') = 'VARCHAR' THEN json_extract_string(j, '{path}') "
                f"WHEN json_type(j, '{path}') = 'NULL' THEN '' "
                f"ELSE json_extract(j, '{path}')::VARCHAR END AS v "
                "FROM (SELECT r, ok, CASE WHEN ok THEN line::JSON END AS j FROM lt) ORDER BY r",
                lt=lt.append_column("ok", pa.array(ok)),
            )
            b.add_parsed(label, _col(t["v"]))
        return b
    t = ctx.sql(
        "SELECT s.r AS r, t.id AS id, t.fullkey AS k, "
        "CASE WHEN t.type = 'VARCHAR' THEN t.value->>'$' ELSE t.value::VARCHAR END AS v "
        "FROM (SELECT r, line FROM lt WHERE ok) s, json_tree(s.line) t "
        "WHERE t.type NOT IN ('OBJECT', 'ARRAY', 'NULL') ORDER BY s.r, t.id",
        lt=lt.append_column("ok", pa.array(ok)),
    )
    if t.num_rows == 0:
        return b
    rows = _col(t["r"]).to_numpy()
    fk = _col(t["k"])
    vals = _col(t["v"])
    names = {k: _json_flat_name(k) for k in pc.unique(fk).to_pylist()}
    by_label: dict[str, list[str]] = {}
    for k, name in names.items():
        if name:
            by_label.setdefault(name, []).append(k)
    for label, ks in sorted(by_label.items()):
        m = _np(pc.is_in(fk, value_set=pa.array(ks, pa.string())))
        b.add_parsed(label, scatter(n, rows[m], vals.filter(pa.array(m))))
    return b


def parse_unpack(b: Batch, ctx: Context) -> Batch:
    n = len(b)
    lt = pa.table({"r": np.arange(n), "line": b.line})
    ok = _np(ctx.sql(
        _JSON_OK, lt=lt
    )["ok"])
    b = b.copy()
    b.set_error(~ok, "JSONParserErr", "invalid json")
    t = ctx.sql(
        "SELECT s.r AS r, e.key AS k, e.value->>'$' AS v FROM (SELECT r, line FROM lt WHERE ok) s, "
        "json_each(s.line) e WHERE e.type = 'VARCHAR' ORDER BY s.r, e.id",
        lt=lt.append_column("ok", pa.array(ok)),
    )
    if t.num_rows == 0:
        return b
    rows = _col(t["r"]).to_numpy()
    ks, vals = _col(t["k"]), _col(t["v"])
    entry = _np(pc.equal(ks, "_entry"))
    new_line = None
    if entry.any():
        new_line = scatter(n, rows[entry], vals.filter(pa.array(entry)))
    for k in sorted(set(pc.unique(ks).to_pylist()) - {"_entry"}):
        m = _np(pc.equal(ks, k))
        b.add_parsed(sanitize_key(k), scatter(n, rows[m], vals.filter(pa.array(m))))
    if new_line is not None:
        b.line = pc.coalesce(new_line, b.line)
    return b


def parse_regexp(b: Batch, st: ast.RegexpParser) -> Batch:
    ex = pc.extract_regex(b.line, st.pattern)
    matched = _np(pc.is_valid(ex))
    b = b.copy()
    for name in st.names:
        col = where(matched, pc.struct_field(ex, name), None, len(b))
        b.add_parsed(name, col)
    return b


def parse_pattern(b: Batch, st: ast.PatternParser) -> Batch:
    regex, caps = extract_regex(st.pattern)
    ex = pc.extract_regex(b.line, regex)
    n = len(b)
    fields = {f.name for f in ex.type}
    matched = _np(pc.is_valid(ex)) & _np(pc.greater(pc.utf8_length(b.line), 0))
    reached = matched.copy()
    b = b.copy()
    # capture i is reached when every literal before it was found.
    all_caps = sorted({i for _, i in caps} | {int(f[1:]) for f in fields if f[0] in "cmr"})
    reach: dict[int, np.ndarray] = {}
    for i in all_caps:
        reach[i] = reached.copy()
        if f"m{i}" in fields:
            found = _np(pc.greater(pc.utf8_length(pc.struct_field(ex, f"m{i}")), 0))
            reached = reached & found
    for name, i in caps:
        c = pc.struct_field(ex, f"c{i}")
        if f"m{i}" in fields:
            found = _np(pc.greater(pc.utf8_length(pc.struct_field(ex, f"m{i}")), 0))
            c = where(found, c, pc.struct_field(ex, f"r{i}"), n)
        b.add_parsed(name, where(reach[i], c, None, n))
    return b


# ---------------------------------------------------------------- templates


def _distinct_render(b: Batch, tmpl: Template) -> pa.Array:
    """Render ``tmpl`` for every row, evaluating once per distinct input."""
    n = len(b)
    if n == 0:
        return pa.array([], pa.string())
    if tmpl.uses_line:
        names = sorted(tmpl.fields)
        cols = {k: b.get(k).to_pylist() for k in names}
        lines = b.line.to_pylist()
        out = []
        for i in range(n):  # per-line fallback: only for templates reading __line__/__timestamp__
            lb = {k: cols[k][i] or "" for k in names}
            out.append(_render(tmpl, lb, lines[i], int(b.ts[i])))
        return pa.array(out, pa.string())
    names = sorted(tmpl.fields - {""})
    if "" in tmpl.fields:  # `.` reads every label
        names = sorted(b.labels)
    if not names:
        return pa.array([_render(tmpl, {}, "", 0)] * n, pa.string())
    from .batch import series_ids

    gid, first = series_ids(b, names)
    rendered = []
    for row in first:
        lb = {k: (b.get(k)[int(row)].as_py() or "") for k in names}
        rendered.append(_render(tmpl, lb, "", 0))
    return pa.array(rendered, pa.string()).take(pa.array(gid))


def _render(tmpl: Template, labels: dict[str, str], line: str, ts: int) -> str | None:
    """The rendered text, or None when the template fails at execution (Loki flags the entry with
    ``TemplateFormatErr`` and leaves its line or label unchanged)."""
    try:
        return tmpl.render(labels, line, ts)
    except TemplateError:
        return None


def _apply_render(b: Batch, rendered: pa.Array, old: pa.Array) -> pa.Array:
    failed = ~valid(rendered)
    if failed.any():
        b.set_error(failed, "TemplateFormatErr", "template: execution failed")
        return pc.if_else(pa.array(failed), old, rendered)
    return rendered


# ---------------------------------------------------------------- label filters


def _cmp(op: str, vals: np.ndarray, lit: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        if op == "==":
            return vals == lit
        if op == "!=":
            return vals != lit
        if op == ">":
            return vals > lit
        if op == ">=":
            return vals >= lit
        if op == "<":
            return vals < lit
        return vals <= lit


def eval_label_filter(b: Batch, e: ast.LabelFilterExpr, active: np.ndarray, ctx: Context) -> np.ndarray:
    """Keep mask of ``e`` over the rows in ``active``; conversion failures set ``__error__`` on those rows
    (Loki keeps such a line). ``or`` skips its right side where the left side already holds."""
    n = len(b)
    if isinstance(e, ast.LFBinary):
        left = eval_label_filter(b, e.left, active, ctx)
        if e.op == "or":
            right = eval_label_filter(b, e.right, active & ~left, ctx)
            return left | right
        right = eval_label_filter(b, e.right, active, ctx)
        return left & right
    if isinstance(e, ast.LFString):
        col = pc.fill_null(b.get(e.name), "")
        if e.op in ("=", "!="):
            hit = _np(pc.equal(col, e.value))
        else:
            hit = _np(pc.match_substring_regex(col, f"^(?:{e.value})$"))
        return hit if e.op in ("=", "=~") else ~hit
    col = b.labels.get(e.name)
    if col is None:
        return np.zeros(n, dtype=bool)
    present = valid(col)
    if isinstance(e, ast.LFIp):
        has_err = ~np.equal(b.err, None)
        hit = match_column(col, e.pattern, ctx.duck) if present.any() else np.zeros(n, dtype=bool)
        res = hit if e.op == "=" else ~hit
        return has_err | (present & res)
    assert isinstance(e, ast.LFNumeric)
    vals, ok, errs = convert(col, e.kind)
    failed = present & ~ok
    b.set_error(failed & active, "LabelFilterErr", errs)
    return present & (failed | (ok & _cmp(e.op, vals, e.value)))


# ---------------------------------------------------------------- the pipeline


def run_stage(b: Batch, st: Any, ctx: Context) -> Batch:
    """Apply one stage (see the module docstring for how each kind runs)."""
    if len(b) == 0:
        return b
    if isinstance(st, ast.LineFilter):
        return b.filter(line_filter_mask(b.line, st, ctx))
    if isinstance(st, ast.LabelFilter):
        b = b.copy()
        b.err = b.err.copy()
        b.details = b.details.copy()
        keep = eval_label_filter(b, st.expr, np.ones(len(b), dtype=bool), ctx)
        return b.filter(keep)
    if isinstance(st, ast.LogfmtParser):
        return parse_logfmt(b, st, ctx)
    if isinstance(st, ast.JsonParser):
        return parse_json(b, st, ctx)
    if isinstance(st, ast.UnpackParser):
        return parse_unpack(b, ctx)
    if isinstance(st, ast.RegexpParser):
        return parse_regexp(b, st)
    if isinstance(st, ast.PatternParser):
        return parse_pattern(b, st)
    if isinstance(st, ast.Decolorize):
        b = b.copy()
        b.line = pc.replace_substring_regex(b.line, _ANSI, "")
        return b
    if isinstance(st, ast.LineFormat):
        tmpl = compile_template(st.template, "line")
        b = b.copy()
        b.err = b.err.copy()
        b.details = b.details.copy()
        b.line = _apply_render(b, _distinct_render(b, tmpl), b.line)
        return b
    if isinstance(st, ast.LabelFormat):
        b = b.copy()
        new: dict[str, pa.Array] = {}
        removed: list[str] = []
        for dst, is_tmpl, val in st.items:
            if is_tmpl:
                b.err = b.err.copy()
                b.details = b.details.copy()
                new[dst] = _apply_render(b, _distinct_render(b, compile_template(val, "label")), b.get(dst))
            else:
                new[dst] = b.get(val)
                if val != dst:
                    removed.append(val)
        for name in removed:
            b.drop_label(name)
        for dst, col in new.items():
            if dst in (ERROR, ERROR_DETAILS):
                continue
            b.set_label(dst, col)
        return b
    if isinstance(st, ast.DropKeep):
        return _drop_keep(b, st)
    if isinstance(st, ast.Distinct):
        from .batch import series_ids

        _, first = series_ids(b, st.labels)
        keep = np.zeros(len(b), dtype=bool)
        keep[first] = True
        return b.filter(keep)
    raise NotImplementedError(type(st).__name__)


def _matcher_rows(b: Batch, m: Any) -> np.ndarray:
    col = pc.fill_null(b.get(m.name), "")
    present = valid(b.get(m.name))
    if m.op in ("=", "!="):
        hit = _np(pc.equal(col, m.value))
    else:
        hit = _np(pc.match_substring_regex(col, f"^(?:{m.value})$"))
    return present & (hit if m.op in ("=", "=~") else ~hit)


def _drop_keep(b: Batch, st: ast.DropKeep) -> Batch:
    b = b.copy()
    b.err = b.err.copy()
    b.details = b.details.copy()
    if not st.keep:
        for name, m in st.items:
            b.drop_label(name, None if m is None else _matcher_rows(b, m))
        return b
    plain = {name for name, m in st.items if m is None}
    cond = {name: m for name, m in st.items if m is not None}
    for name in list(b.labels):
        if name in plain:
            continue
        if name in cond:
            b.drop_label(name, ~_matcher_rows(b, cond[name]))
        else:
            b.drop_label(name)
    return b


def run_pipeline(b: Batch, stages: list[Any], ctx: Context) -> Batch:
    for st in stages:
        b = run_stage(b, st, ctx)
    return b


def apply_unwrap(b: Batch, uw: ast.Unwrap, ctx: Context) -> Batch:
    """Sample values from the unwrapped label: a missing or empty label skips the entry, a failed
    conversion flags ``SampleExtractionErr``; the unwrapped label leaves the series labels."""
    col = b.labels.get(uw.label)
    if col is None:
        b = b.filter(np.zeros(len(b), dtype=bool)).copy()
        b.value = np.zeros(0)
        return b
    col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
    present = valid(col)
    b = b.filter(present)
    col = col.filter(pa.array(present))
    kind = {"": "number", "duration": "duration", "duration_seconds": "duration", "bytes": "bytes"}[uw.conv]
    vals, ok, errs = convert(col, kind)
    b = b.copy()
    b.err = b.err.copy()
    b.details = b.details.copy()
    b.set_error(~ok, "SampleExtractionErr", errs)
    b.value = np.where(ok, vals, np.nan)
    for f in uw.post_filters:
        b = run_stage(b, f, ctx)
    b = b.copy()
    b.drop_label(uw.label)
    return b


__all__ = ["Context", "run_pipeline", "apply_unwrap", "nulls"]
