"""A safe subset of Go ``text/template`` for ``line_format`` and ``label_format``.

Supports ``{{.label}}``, ``{{ __line__ }}``, ``{{ __timestamp__ }}``, pipes, parenthesised
pipelines, string/number literals, ``if``/``else``/``end`` and Loki's common functions (sprig
names). Rendering is per entry in Python — the one per-line fallback of the engine — but the
stages call it once per *distinct* combination of the labels a template reads, and per line only
when the template reads ``__line__``/``__timestamp__``.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ParseError
from .lexer import unquote_go


class TemplateError(Exception):
    pass


# ---------------------------------------------------------------- functions


def _s(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _fmt_float(v)
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC")
    return str(v)


def _fmt_float(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    if v == int(v) and abs(v) < 1e21:
        return str(int(v))
    return repr(v)


def _num(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    try:
        return float(_s(v))
    except ValueError:
        return 0


def _int(v: Any) -> int:
    if isinstance(v, dt.datetime):
        return int(v.timestamp())
    try:
        return int(_num(v))
    except (ValueError, OverflowError):
        return 0


_GO_LAYOUT = [("2006", "%Y"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("03", "%I"), ("04", "%M"), ("05", "%S"),
              ("Jan", "%b"), ("Mon", "%a"), ("MST", "UTC"), ("PM", "%p"), ("-0700", "+0000"), ("Z07:00", "Z"),
              ("06", "%y"), (".000000000", ".%f000"), (".000000", ".%f"), (".000", ".%3")]


def _go_date(layout: str, t: Any) -> str:
    if not isinstance(t, dt.datetime):
        t = dt.datetime.fromtimestamp(_num(t), dt.UTC)
    out = layout
    for go, py in _GO_LAYOUT:
        out = out.replace(go, py)
    ms = f"{t.microsecond // 1000:03d}"
    return t.strftime(out.replace("%3", "@@MS@@")).replace("@@MS@@", ms)


def _printf(fmt: str, *args: Any) -> str:
    it = iter(args)

    def repl(m: re.Match[str]) -> str:
        flags, verb = m.group(1), m.group(2)
        if verb == "%":
            return "%"
        try:
            a = next(it)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        if verb in "vs":
            out = ("%" + flags.replace("0", "") + "s") % _s(a)
            if "0" in flags.lstrip("-+# ")[:1] and "-" not in flags:
                out = out.replace(" ", "0", len(out) - len(out.lstrip(" ")))
            return out
        if verb == "q":
            return '"' + _s(a).replace("\\", "\\\\").replace('"', '\\"') + '"'
        if verb in "dc":
            return ("%" + flags + "d") % _int(a)
        if verb in "xX":
            if isinstance(a, str):
                return a.encode().hex() if verb == "x" else a.encode().hex().upper()
            return ("%" + flags + verb) % _int(a)
        if verb in "feEgG":
            return ("%" + flags + verb) % _num(a)
        if verb == "t":
            return _s(bool(a))
        return _s(a)

    return re.sub(r"%([-+# 0]*\d*(?:\.\d+)?)([vsqdcxXfeEgGt%])", repl, fmt)


def _regex_replace(regex: str, s: Any, repl: str) -> str:
    py = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: "\\g<" + (m.group(1) or m.group(2)) + ">", repl)
    return re.sub(regex, py, _s(s))


def _trunc(n: Any, s: Any) -> str:
    n, s = _int(n), _s(s)
    return s[:n] if n >= 0 else s[n:]


def _substr(start: Any, end: Any, s: Any) -> str:
    s, a, b = _s(s), _int(start), _int(end)
    if a < 0:
        return s[:b] if b >= 0 else s
    if b < 0 or b > len(s):
        return s[a:]
    return s[a:b]


def _default(d: Any, *given: Any) -> Any:
    if not given:
        return d
    g = given[0]
    return d if g in (None, "", 0, False) else g


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def f(a: Any, b: Any) -> bool:
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return op(a, b)
        return op(_s(a), _s(b))

    return f


FUNCS: dict[str, Callable[..., Any]] = {
    "ToLower": lambda s: _s(s).lower(), "lower": lambda s: _s(s).lower(),
    "ToUpper": lambda s: _s(s).upper(), "upper": lambda s: _s(s).upper(),
    "title": lambda s: _s(s).title(), "Title": lambda s: _s(s).title(),
    "Replace": lambda s, old, new, n: _s(s).replace(_s(old), _s(new), _int(n) if _int(n) >= 0 else -1),
    "replace": lambda old, new, s: _s(s).replace(_s(old), _s(new)),
    "Trim": lambda s, cut: _s(s).strip(_s(cut)), "TrimLeft": lambda s, cut: _s(s).lstrip(_s(cut)),
    "TrimRight": lambda s, cut: _s(s).rstrip(_s(cut)), "TrimSpace": lambda s: _s(s).strip(),
    "TrimPrefix": lambda s, p: _s(s).removeprefix(_s(p)), "TrimSuffix": lambda s, p: _s(s).removesuffix(_s(p)),
    "trim": lambda s: _s(s).strip(), "trimAll": lambda cut, s: _s(s).strip(_s(cut)),
    "trimPrefix": lambda p, s: _s(s).removeprefix(_s(p)), "trimSuffix": lambda p, s: _s(s).removesuffix(_s(p)),
    "trunc": _trunc, "substr": _substr,
    "contains": lambda sub, s: _s(sub) in _s(s), "hasPrefix": lambda p, s: _s(s).startswith(_s(p)),
    "hasSuffix": lambda p, s: _s(s).endswith(_s(p)),
    "repeat": lambda n, s: _s(s) * _int(n),
    "indent": lambda n, s: "\n".join(" " * _int(n) + ln for ln in _s(s).split("\n")),
    "nindent": lambda n, s: "\n" + "\n".join(" " * _int(n) + ln for ln in _s(s).split("\n")),
    "regexReplaceAll": _regex_replace,
    "regexReplaceAllLiteral": lambda regex, s, repl: re.sub(regex, lambda _m: _s(repl), _s(s)),
    "count": lambda regex, s: len(re.findall(regex, _s(s))),
    "default": _default,
    "printf": lambda fmt, *a: _printf(_s(fmt), *a), "print": lambda *a: "".join(_s(x) for x in a),
    "println": lambda *a: " ".join(_s(x) for x in a) + "\n",
    "len": lambda v: len(v) if isinstance(v, (str, list, dict)) else len(_s(v)),
    "add": lambda *a: sum(_int(x) for x in a), "sub": lambda a, b: _int(a) - _int(b),
    "mul": lambda *a: math.prod(_int(x) for x in a),
    # Go's integer division by zero panics, which the template reports as an execution error.
    "div": lambda a, b: int(_int(a) / _int(b)),
    "mod": lambda a, b: int(math.fmod(_int(a), _int(b))) if _int(b) else 1 // 0,
    "addf": lambda *a: sum(_num(x) for x in a), "subf": lambda a, *b: _num(a) - sum(_num(x) for x in b),
    "mulf": lambda *a: math.prod(_num(x) for x in a),
    "divf": lambda a, *b: _num(a) / math.prod(_num(x) for x in b) if math.prod(_num(x) for x in b) else math.inf,
    "max": lambda *a: max(_int(x) for x in a), "min": lambda *a: min(_int(x) for x in a),
    "maxf": lambda *a: max(_num(x) for x in a), "minf": lambda *a: min(_num(x) for x in a),
    "ceil": lambda v: float(math.ceil(_num(v))), "floor": lambda v: float(math.floor(_num(v))),
    "round": lambda v, p=0, *_: round(_num(v), _int(p)),
    "int": _int, "float64": _num, "toString": _s,
    "abs": lambda v: abs(_num(v)),
    "b64enc": lambda s: base64.b64encode(_s(s).encode()).decode(),
    "b64dec": lambda s: base64.b64decode(_s(s).encode()).decode(errors="replace"),
    "urlencode": lambda s: urllib.parse.quote_plus(_s(s)), "urldecode": lambda s: urllib.parse.unquote_plus(_s(s)),
    "alignLeft": lambda n, s: _s(s)[:_int(n)].ljust(_int(n)),
    "alignRight": lambda n, s: _s(s)[-_int(n):].rjust(_int(n)),
    "date": _go_date,
    "toDate": lambda layout, s: _to_date(_s(layout), _s(s)),
    "unixEpoch": lambda t: _int(t), "unixEpochMillis": lambda t: int(t.timestamp() * 1000),
    "unixEpochNanos": lambda t: int(t.timestamp() * 1e9),
    "unixToTime": lambda s: dt.datetime.fromtimestamp(_num(s), dt.UTC),
    "now": lambda: dt.datetime.now(dt.UTC),
    "eq": lambda a, *b: any(_cmp(lambda x, y: x == y)(a, x) for x in b),
    "ne": _cmp(lambda x, y: x != y), "lt": _cmp(lambda x, y: x < y), "le": _cmp(lambda x, y: x <= y),
    "gt": _cmp(lambda x, y: x > y), "ge": _cmp(lambda x, y: x >= y),
    "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
    "not": lambda a: not _truth(a),
    "html": lambda s: _s(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
    "urlquery": lambda *a: urllib.parse.quote_plus("".join(_s(x) for x in a)),
}


def _to_date(layout: str, s: str) -> dt.datetime:
    fmt = layout
    for go, py in _GO_LAYOUT:
        fmt = fmt.replace(go, py)
    try:
        return dt.datetime.strptime(s, fmt).replace(tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.UTC)


def _truth(v: Any) -> bool:
    return v not in (None, "", 0, False, 0.0) and not (isinstance(v, (list, dict)) and not v)


# ---------------------------------------------------------------- parse


@dataclass
class Text:
    text: str


@dataclass
class Field:
    name: str  # "" for "."


@dataclass
class Lit:
    value: Any


@dataclass
class Call:
    name: str
    args: list[Any]


@dataclass
class Pipeline:
    cmds: list[list[Any]]  # each command: operands (first may be a Call-name)


@dataclass
class Action:
    pipe: Pipeline


@dataclass
class If:
    branches: list[tuple[Pipeline | None, list[Any]]] = field(default_factory=list)


_ACTION_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)'
    r"|(?P<field>(?:\.[a-zA-Z_][a-zA-Z0-9_]*)+|\.)|(?P<ident>[a-zA-Z_][a-zA-Z0-9_]*)|(?P<op>[()|]))"
)


@dataclass
class Template:
    nodes: list[Any]
    fields: set[str]  # label names read
    uses_line: bool  # reads __line__ or __timestamp__
    text: str

    def render(self, labels: dict[str, str], line: str = "", ts_ns: int = 0) -> str:
        ctx = _Ctx(labels, line, ts_ns)
        return "".join(_exec(self.nodes, ctx))


@dataclass
class _Ctx:
    labels: dict[str, str]
    line: str
    ts_ns: int


def compile_template(text: str, name: str = "line") -> Template:
    """Parse ``text``; raises ParseError with Go's wording for unknown functions or bad actions."""
    pos = 0
    root: list[Any] = []
    stack: list[tuple[If, list[Any]]] = []
    cur = root
    fields: set[str] = set()
    uses_line = [False]

    def err(msg: str) -> ParseError:
        return ParseError(f"template: {name}:1: {msg}")

    while pos < len(text):
        i = text.find("{{", pos)
        if i < 0:
            cur.append(Text(text[pos:]))
            break
        chunk = text[pos:i]
        j = text.find("}}", i + 2)
        if j < 0:
            raise err("unclosed action")
        body = text[i + 2:j]
        if body.startswith("-") and body[1:2] in (" ", "\t", "\n"):
            chunk = chunk.rstrip()
            body = body[1:]
        pos = j + 2
        if body.endswith("-") and body[-2:-1] in (" ", "\t", "\n"):
            body = body[:-1]
            k = pos
            while k < len(text) and text[k] in " \t\r\n":
                k += 1
            pos = k
        if chunk:
            cur.append(Text(chunk))
        b = body.strip()
        if b.startswith("/*"):
            continue
        word = b.split(None, 1)[0] if b else ""
        if word == "if":
            node = If()
            node.branches.append((_parse_pipe(b[2:], err, fields, uses_line), []))
            cur.append(node)
            stack.append((node, cur))
            cur = node.branches[-1][1]
        elif word == "else":
            if not stack:
                raise err("unexpected {{else}}")
            node = stack[-1][0]
            rest = b[4:].strip()
            cond = None
            if rest.startswith("if"):
                cond = _parse_pipe(rest[2:], err, fields, uses_line)
            node.branches.append((cond, []))
            cur = node.branches[-1][1]
        elif word == "end":
            if not stack:
                raise err("unexpected {{end}}")
            _, cur = stack.pop()
        else:
            cur.append(Action(_parse_pipe(b, err, fields, uses_line)))
    if stack:
        raise err("unexpected EOF")
    return Template(root, fields, uses_line[0], text)


def _parse_pipe(src: str, err: Callable[[str], ParseError], fields: set[str], uses_line: list[bool]) -> Pipeline:
    toks: list[tuple[str, str]] = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _ACTION_TOKEN.match(src, pos)
        if not m or m.end() == pos:
            if src[pos:].strip() == "":
                break
            raise err(f"unexpected {src[pos:].strip()[:1]!r} in command")
        kind = m.lastgroup or ""
        toks.append((kind, m.group(kind)))
        pos = m.end()
    if not toks:
        raise err("missing value for command")
    it = [0]

    def parse_pipeline(stop: str | None) -> Pipeline:
        cmds: list[list[Any]] = []
        cmd: list[Any] = []
        while it[0] < len(toks):
            kind, val = toks[it[0]]
            if kind == "op" and val == ")":
                if stop != ")":
                    raise err("unexpected \")\" in command")
                break
            it[0] += 1
            if kind == "op" and val == "|":
                if not cmd:
                    raise err("missing command")
                cmds.append(cmd)
                cmd = []
            elif kind == "op" and val == "(":
                cmd.append(parse_pipeline(")"))
                if it[0] >= len(toks):
                    raise err("unclosed left paren")
                it[0] += 1
            elif kind == "str":
                try:
                    cmd.append(Lit(unquote_go(val[1:-1])))
                except ValueError:
                    raise err(f"invalid syntax {val}") from None
            elif kind == "raw":
                cmd.append(Lit(val[1:-1]))
            elif kind == "num":
                cmd.append(Lit(float(val) if any(c in val for c in ".eE") else int(val)))
            elif kind == "field":
                name = val[1:].split(".")[0] if val != "." else ""
                fields.add(name)
                cmd.append(Field(name))
            else:
                if val in ("true", "false"):
                    cmd.append(Lit(val == "true"))
                elif val == "nil":
                    cmd.append(Lit(None))
                elif val in ("__line__", "__timestamp__"):
                    uses_line[0] = True
                    cmd.append(Call(val, []))
                elif val in FUNCS:
                    cmd.append(Call(val, []))
                else:
                    raise err(f'function "{val}" not defined')
        if not cmd:
            raise err("missing command")
        cmds.append(cmd)
        return Pipeline(cmds)

    return parse_pipeline(None)


def _eval_operand(op: Any, ctx: _Ctx) -> Any:
    if isinstance(op, Lit):
        return op.value
    if isinstance(op, Field):
        if op.name == "":
            return ctx.labels
        return ctx.labels.get(op.name, "")
    if isinstance(op, Pipeline):
        return _eval_pipe(op, ctx)
    if isinstance(op, Call):
        return _call(op.name, [], ctx)
    return op


def _call(name: str, args: list[Any], ctx: _Ctx) -> Any:
    if name == "__line__":
        return ctx.line
    if name == "__timestamp__":
        return dt.datetime.fromtimestamp(ctx.ts_ns / 1e9, dt.UTC)
    try:
        return FUNCS[name](*args)
    except TemplateError:
        raise
    except Exception as e:  # a template function misuse renders as Go's exec error
        raise TemplateError(f"error calling {name}: {e}") from None


def _eval_pipe(p: Pipeline, ctx: _Ctx) -> Any:
    val: Any = None
    first = True
    for cmd in p.cmds:
        head = cmd[0]
        if isinstance(head, Call):
            args = [_eval_operand(a, ctx) for a in cmd[1:]]
            if not first:
                args.append(val)
            val = _call(head.name, args, ctx)
        else:
            if len(cmd) > 1 or not first:
                if not first and len(cmd) == 1:
                    raise TemplateError("can't give argument to non-function")
                raise TemplateError("can't give argument to non-function")
            val = _eval_operand(head, ctx)
        first = False
    return val


def _exec(nodes: list[Any], ctx: _Ctx) -> list[str]:
    out: list[str] = []
    for n in nodes:
        if isinstance(n, Text):
            out.append(n.text)
        elif isinstance(n, Action):
            out.append(_s(_eval_pipe(n.pipe, ctx)))
        elif isinstance(n, If):
            for cond, body in n.branches:
                if cond is None or _truth(_eval_pipe(cond, ctx)):
                    out.extend(_exec(body, ctx))
                    break
    return out
