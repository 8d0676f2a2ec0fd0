"""Prometheus' alert templates: the Go ``text/template`` language plus Prometheus' functions.

Alert labels and annotations in rule files are Go templates (``{{ $labels.instance }} is down,
value {{ $value | humanize }}``). Users copy these between Prometheus and Lookout, so the
language, the functions and — above all — the number formatting must come out byte for byte as
Prometheus prints them (``{{ $value }}`` of 1234567 is ``1.234567e+06`` in Go, not ``1234567.0``).

The implementation is a small lexer, a recursive-descent parser into a node tree, and a
tree-walking executor, mirroring ``text/template/parse`` and ``text/template/exec``:

* actions ``{{ }}`` with trim markers ``{{-``/``-}}``, comments ``{{/* */}}``;
* pipelines, parenthesised pipelines, variables (``:=``, ``=``), fields and chains
  (``.Labels.instance``, ``$labels.job``, ``(query "up" | first).Value``);
* ``if``/``else if``/``else``, ``range`` (with ``$i, $e :=``, ``else``, ``break``, ``continue``),
  ``with``/``else with``, ``define``/``template``/``block``;
* Go's builtins (``and or not eq ne lt le gt ge len index slice print printf println html js
  urlquery``) and Prometheus' functions (``humanize*``, ``query``, ``first``, ``label``, …).

Templates run with ``missingkey=zero`` as Prometheus does: a missing label is ``""``.
Comparisons are as strict as Go's: ``gt $value 80`` (float against int) is an error in
Prometheus and therefore here too — write ``gt $value 80.0``.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import math
import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lookout.gocompat import UnquoteError, unquote
from lookout.gocompat import expand as _regexp_expand
from lookout.gocompat import quote as _go_quote
from lookout.storage.durations import parse_prometheus_duration

__all__ = [
    "Sample", "Template", "TemplateData", "TemplateError", "TemplateFuncs", "expand",
    "format_value", "humanize", "humanize1024", "humanize_duration", "humanize_percentage",
    "parse_template",
]


class TemplateError(ValueError):
    """A parse or execution error, worded as Go's ``template: <name>:<line>:<col>: ...``."""


# ---------------------------------------------------------------- values


@dataclass
class Sample:
    """One query result as templates see it (Prometheus' ``sample``: ``.Labels``, ``.Value``)."""

    Labels: dict[str, str]
    Value: float


@dataclass
class TemplateData:
    """What an alert's labels and annotations are expanded against (``.Labels``, ``.Value`` …)."""

    labels: dict[str, str]
    value: float | str
    external_labels: dict[str, str] = field(default_factory=dict)
    external_url: str = ""


@dataclass
class TemplateFuncs:
    """The environment of Prometheus' functions: ``query`` runs ``query_fn(expr)`` (a list of
    objects with ``Labels``/``Value`` or ``labels``/``value``, or dicts); ``externalURL`` and
    ``pathPrefix`` use ``external_url``; ``extra`` adds or overrides functions (declare their
    names to :func:`parse_template` too, since Go checks function names at parse time)."""

    query_fn: Callable[[str], Iterable[Any]] | None = None
    external_url: str = ""
    extra: dict[str, Callable[..., Any]] = field(default_factory=dict)


class _Struct:
    """A Go struct value: named fields, no methods; unknown fields are an error, as in Go."""

    __slots__ = ("type_name", "fields")

    def __init__(self, type_name: str, fields: dict[str, Any]) -> None:
        self.type_name = type_name
        self.fields = fields


class GoTime:
    """A ``time.Time`` in UTC (what ``toTime`` returns), with the methods templates call."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def _dt(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(microseconds=self.ns // 1000)

    def Format(self, layout: str) -> str:  # noqa: N802 - Go method name
        return _go_time_format(self, layout)

    def Unix(self) -> int:  # noqa: N802
        return self.ns // 1_000_000_000

    def UnixMilli(self) -> int:  # noqa: N802
        return self.ns // 1_000_000

    def UnixNano(self) -> int:  # noqa: N802
        return self.ns

    def UTC(self) -> GoTime:  # noqa: N802
        return self

    def String(self) -> str:  # noqa: N802
        return self.Format("2006-01-02 15:04:05.999999999 -0700 MST")

    def __str__(self) -> str:
        return self.String()


_TIME_METHODS = frozenset({"Format", "Unix", "UnixMilli", "UnixNano", "UTC", "String"})
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class _QueryResult(list):  # type: ignore[type-arg]
    """``query``'s result (Go's ``template.queryResult``), so type names in errors match."""


class _SafeHTML(str):
    """``safeHtml``'s result: a plain string in text templates."""


def _type_name(v: Any) -> str:
    """Go's name for the type of ``v`` (used in error messages)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, _SafeHTML):
        return "template.HTML"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Sample):
        return "*template.sample"
    if isinstance(v, GoTime):
        return "time.Time"
    if isinstance(v, _Struct):
        return v.type_name
    if isinstance(v, dict):
        return "map[string]string" if _is_string_map(v) else "map[string]interface {}"
    if isinstance(v, _QueryResult):
        return "template.queryResult"
    if isinstance(v, list | tuple):
        if v and all(isinstance(x, Sample) for x in v):
            return "template.queryResult"
        return "[]interface {}"
    return type(v).__name__


def _is_string_map(d: dict[Any, Any]) -> bool:
    return all(isinstance(x, str) for x in d.values())


# ---------------------------------------------------------------- Go number formatting


def _float_parts(v: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of ``|v|`` (no trailing zeros) and the position of
    the decimal point relative to them (``120.0`` -> ``("12", 3)``)."""
    _, digits, exp = Decimal(repr(abs(v))).normalize().as_tuple()
    assert isinstance(exp, int)
    return "".join(map(str, digits)), len(digits) + exp


def _fmt_e(neg: bool, digits: str, dp: int) -> str:
    exp = dp - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{'-' if neg else ''}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _fmt_f(neg: bool, digits: str, dp: int) -> str:
    if dp <= 0:
        s = "0." + "0" * (-dp) + digits
    elif dp >= len(digits):
        s = digits + "0" * (dp - len(digits))
    else:
        s = digits[:dp] + "." + digits[dp:]
    return ("-" if neg else "") + s


def format_value(v: float) -> str:
    """A float64 as Go's ``%v`` prints it (``{{ $value }}``): strconv's shortest ``%g``, which
    switches to an exponent when it is < -4 or >= 6 (so ``1234567.0`` is ``1.234567e+06``,
    ``0.00001`` is ``1e-05``), and Go's ``+Inf``/``-Inf``/``NaN``."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    digits, dp = _float_parts(v)
    exp = dp - 1
    neg = v < 0
    if exp < -4 or exp >= 6:  # shortest %g decides with precision 6 (strconv's ftoa)
        return _fmt_e(neg, digits, dp)
    return _fmt_f(neg, digits, dp)


def _fmt_g_prec(v: float, prec: int) -> str:
    """Go's ``%.<prec>g`` (the same decision rule as C/Python, Go's spelling of Inf/NaN)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return format(v, f".{prec}g")


def _parse_float(v: Any) -> float:
    """Prometheus' ``convertToFloat``: numbers as they are, strings via ``strconv.ParseFloat``."""
    if isinstance(v, bool):
        raise _CallError(f"can't convert {_type_name(v)} to float")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        # Python's float() also takes surrounding whitespace and "1_000"; Go's ParseFloat doesn't.
        if v and not any(c.isspace() or c == "_" for c in v):
            try:
                return float(v)
            except ValueError:
                try:
                    return float.fromhex(v) if "0x" in v.lower() else _raise(ValueError())
                except ValueError:
                    pass
        raise _CallError(f"strconv.ParseFloat: parsing {_go_quote(v)}: invalid syntax")
    raise _CallError(f"can't convert {_type_name(v)} to float")


def _raise(e: Exception) -> float:
    raise e


# ---------------------------------------------------------------- Prometheus' humanize family


def humanize(v: Any) -> str:
    """``humanize``: SI prefixes, 4 significant digits (``1234567`` -> ``1.235M``)."""
    x = _parse_float(v)
    if x == 0 or math.isnan(x) or math.isinf(x):
        return _fmt_g_prec(x, 4)
    prefix = ""
    if abs(x) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(x) < 1000:
                break
            prefix = p
            x /= 1000
        return _fmt_g_prec(x, 4) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(x) >= 1:
            break
        prefix = p
        x *= 1000
    return _fmt_g_prec(x, 4) + prefix


def humanize1024(v: Any) -> str:
    """``humanize1024``: binary prefixes (``1048576`` -> ``1Mi``)."""
    x = _parse_float(v)
    if abs(x) <= 1 or math.isnan(x) or math.isinf(x):
        return _fmt_g_prec(x, 4)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(x) < 1024:
            break
        prefix = p
        x /= 1024
    return _fmt_g_prec(x, 4) + prefix


def humanize_duration(v: Any) -> str:
    """``humanizeDuration``: seconds as ``1d 2h 3m 4s``, sub-second as ``123.5ms``."""
    x = _parse_float(v)
    if math.isnan(x) or math.isinf(x):
        return _fmt_g_prec(x, 4)
    if x == 0:
        return _fmt_g_prec(x, 4) + "s"
    if abs(x) >= 1:
        sign = ""
        if x < 0:
            sign, x = "-", -x
        d = int(x)
        seconds, minutes, hours, days = d % 60, (d // 60) % 60, (d // 3600) % 24, d // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_fmt_g_prec(x, 4)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(x) >= 1:
            break
        prefix = p
        x *= 1000
    return f"{_fmt_g_prec(x, 4)}{prefix}s"


def humanize_percentage(v: Any) -> str:
    """``humanizePercentage``: a ratio as a percentage (``0.1234`` -> ``12.34%``)."""
    return _fmt_g_prec(_parse_float(v) * 100, 4) + "%"


def _float_to_time(v: float) -> GoTime:
    ts = v * 1e9
    if ts > 9.223372036854775807e18 or ts < -9.223372036854775808e18:
        raise _CallError(f"{format_value(v)} cannot be represented as a nanoseconds timestamp since it overflows int64")
    return GoTime(int(ts))


def _humanize_timestamp(v: Any) -> str:
    x = _parse_float(v)
    if math.isnan(x) or math.isinf(x):
        return _fmt_g_prec(x, 4)
    return _float_to_time(x).String()


def _to_time(v: Any) -> GoTime:
    return _float_to_time(_parse_float(v))


# ---------------------------------------------------------------- Go's time.Format


_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _go_time_format(t: GoTime, layout: str) -> str:
    """``time.Time.Format`` in UTC for Go's reference-time layouts (``2006-01-02T15:04:05Z07:00``)."""
    d = t._dt()
    nanos = t.ns % 1_000_000_000
    out: list[str] = []
    i, n = 0, len(layout)
    while i < n:
        rest = layout[i:]
        tok: str | None = None
        for cand in ("January", "Jan", "Monday", "Mon", "MST", "2006", "002", "01", "02", "03", "04",
                     "05", "06", "15", "__2", "_2", "-07:00:00", "-070000", "-07:00", "-0700", "-07",
                     "Z07:00:00", "Z070000", "Z07:00", "Z0700", "Z07", "PM", "pm", "1", "2", "3", "4", "5"):
            if rest.startswith(cand):
                tok = cand
                break
        if tok is None and rest[0] in ".," and len(rest) > 1 and rest[1] in "09":
            j = 1
            while j < len(rest) and rest[j] == rest[1]:
                j += 1
            if not (j < len(rest) and rest[j].isdigit()):
                frac = f"{nanos:09d}"[: j - 1]
                if rest[1] == "9":
                    frac = frac.rstrip("0")
                    out.append(rest[0] + frac if frac else "")
                else:
                    out.append(rest[0] + frac)
                i += j
                continue
        if tok is None:
            out.append(rest[0])
            i += 1
            continue
        i += len(tok)
        h12 = d.hour % 12 or 12
        out.append({
            "January": _MONTHS[d.month - 1], "Jan": _MONTHS[d.month - 1][:3],
            "Monday": _DAYS[d.weekday()], "Mon": _DAYS[d.weekday()][:3], "MST": "UTC",
            "2006": f"{d.year:04d}", "06": f"{d.year % 100:02d}", "002": f"{d.timetuple().tm_yday:03d}",
            "__2": f"{d.timetuple().tm_yday:>3d}", "01": f"{d.month:02d}", "1": str(d.month),
            "02": f"{d.day:02d}", "2": str(d.day), "_2": f"{d.day:>2d}", "15": f"{d.hour:02d}",
            "03": f"{h12:02d}", "3": str(h12), "04": f"{d.minute:02d}", "4": str(d.minute),
            "05": f"{d.second:02d}", "5": str(d.second), "PM": "PM" if d.hour >= 12 else "AM",
            "pm": "pm" if d.hour >= 12 else "am", "-07:00:00": "+00:00:00", "-070000": "+000000",
            "-07:00": "+00:00", "-0700": "+0000", "-07": "+00",
        }.get(tok, "Z"))
    return "".join(out)


# ---------------------------------------------------------------- Go's fmt


def _fmt_v(v: Any, top: bool = True) -> str:
    """Go's ``%v`` (``fmt.Sprint`` of one operand)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_value(v)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, GoTime):
        return v.String()
    if isinstance(v, Sample):
        return ("&" if top else "") + "{" + _fmt_v(v.Labels, False) + " " + _fmt_v(v.Value, False) + "}"
    if isinstance(v, _Struct):
        return "{" + " ".join(_fmt_v(x, False) for x in v.fields.values()) + "}"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{_fmt_v(k, False)}:{_fmt_v(v[k], False)}" for k in sorted(v)) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(_fmt_v(x, False) for x in v) + "]"
    return str(v)


def _sprint(args: list[Any]) -> str:
    """``fmt.Sprint``: a space between operands when neither side is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_fmt_v(a))
    return "".join(out)


_VERB_RE = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?([a-zA-Z%])")


def _pad(s: str, width: int | None, minus: bool, zero: bool) -> str:
    if width is None or len(s) >= width:
        return s
    if minus:
        return s + " " * (width - len(s))
    if zero:
        sign = s[0] if s[:1] in "+- " and s[1:2].isdigit() else ""
        return sign + "0" * (width - len(s)) + s[len(sign):]
    return " " * (width - len(s)) + s


def _sprintf(fmt: str, args: list[Any]) -> str:
    """``fmt.Sprintf`` for the verbs templates use (``%s %v %d %f %e %g %q %x %X %o %b %c %t %%``)."""
    out: list[str] = []
    argi = 0
    pos = 0

    def bad(verb: str, a: Any) -> str:
        return f"%!{verb}({_type_name(a)}={_fmt_v(a)})"

    for m in _VERB_RE.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width_s, prec_s, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        width: int | None = None
        prec: int | None = None
        if width_s == "*":
            width = int(args[argi]) if argi < len(args) and isinstance(args[argi], int) else None
            argi += 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            prec = int(args[argi]) if argi < len(args) and isinstance(args[argi], int) else None
            argi += 1
        elif prec_s is not None:
            prec = int(prec_s) if prec_s else 0
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[argi]
        argi += 1
        minus, plus, space, sharp = "-" in flags, "+" in flags, " " in flags, "#" in flags
        zero = "0" in flags and not minus
        sign = "+" if plus else (" " if space else "")
        s: str
        if verb in "vs" and not (verb == "s" and isinstance(a, bool | int | float) and not isinstance(a, str)):
            if isinstance(a, float) and verb == "v":
                s = _fmt_float_verb(a, "g", prec, sign, sharp)
            elif isinstance(a, int) and not isinstance(a, bool) and verb == "v":
                s = format(a, sign + "d")
            else:
                s = _fmt_v(a)
                if prec is not None:
                    s = s[:prec]
            zero = zero and isinstance(a, int | float) and not isinstance(a, bool)
        elif verb == "d" and isinstance(a, int) and not isinstance(a, bool):
            s = format(a, sign + "d")
        elif verb in "xXob" and isinstance(a, int) and not isinstance(a, bool):
            prefix = {"x": "0x", "X": "0X", "o": "0", "b": "0b"}[verb] if sharp else ""
            body = format(abs(a), verb)
            s = ("-" if a < 0 else sign) + prefix + body
        elif verb in "xX" and isinstance(a, str):
            s = a.encode().hex()
            s = s.upper() if verb == "X" else s
        elif verb == "c" and isinstance(a, int) and not isinstance(a, bool):
            s = chr(a)
        elif verb == "q" and isinstance(a, str):
            s = _go_quote(a)
        elif verb == "t" and isinstance(a, bool):
            s = "true" if a else "false"
        elif verb in "eEfFgG" and isinstance(a, float):
            s = _fmt_float_verb(a, verb, prec, sign, sharp)
            zero = zero and not (math.isnan(a) or math.isinf(a))
        else:
            out.append(bad(verb, a))
            continue
        out.append(_pad(s, width, minus, zero))
    out.append(fmt[pos:])
    if argi < len(args):
        extra = ", ".join(f"{_type_name(a)}={_fmt_v(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _fmt_float_verb(a: float, verb: str, prec: int | None, sign: str, sharp: bool) -> str:
    if math.isnan(a):
        return (sign if sign else "") + "NaN"
    if math.isinf(a):
        return "+Inf" if a > 0 else "-Inf"
    if verb in "gG" and prec is None:
        s = format_value(a)
        s = s.upper() if verb == "G" else s
        return (sign + s) if a >= 0 and not s.startswith("-") else s
    p = 6 if prec is None else prec
    return format(a, f"{sign}{'#' if sharp else ''}.{p}{verb}")


def _html_escape(s: str) -> str:
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\x00", "\ufffd"))


def _js_escape(s: str) -> str:
    out: list[str] = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == '"':
            out.append('\\"')
        elif ch in "<>&=" or ord(ch) < 0x20 or not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------- functions


class _CallError(Exception):
    """A function's own error (reported as ``error calling <fn>: ...``)."""


class _ArgError(Exception):
    """A type mismatch in a call (reported without the ``error calling`` prefix, as Go does)."""


def _want_str(v: Any) -> str:
    if isinstance(v, str):
        return str.__str__(v)
    raise _ArgError(f"wrong type for value; expected string; got {_type_name(v)}")


def _want_sample(v: Any) -> Sample:
    if isinstance(v, Sample):
        return v
    raise _ArgError(f"wrong type for value; expected *template.sample; got {_type_name(v)}")


def _want_vector(v: Any) -> list[Sample]:
    if isinstance(v, list) and all(isinstance(x, Sample) for x in v):
        return v
    raise _ArgError(f"wrong type for value; expected template.queryResult; got {_type_name(v)}")


def _truth(v: Any) -> bool:
    """Go's ``template.IsTrue``: the zero value of any type is false; structs are true."""
    if v is None:
        return False
    if isinstance(v, bool | int | float | str | dict | list | tuple):
        return bool(v)
    return True


_KINDS = ((bool, "bool"), (int, "int"), (float, "float"), (str, "string"))


def _kind(v: Any) -> str | None:
    for t, k in _KINDS:
        if isinstance(v, t):
            return k
    return None


def _eq(a: Any, *rest: Any) -> bool:
    if not rest:
        raise _CallError("missing argument for comparison")
    ka = _kind(a)
    for b in rest:
        kb = _kind(b)
        if ka != kb and a is not None and b is not None:
            raise _CallError("incompatible types for comparison")
        if ka is None and isinstance(a, dict | list):
            raise _CallError(f"non-comparable type {_fmt_v(a)}: {_type_name(a)}")
        if a == b:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka in (None, "bool") or kb in (None, "bool"):
        raise _CallError("invalid type for comparison")
    if ka != kb:
        raise _CallError("incompatible types for comparison")
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    return _lt(a, b) or _eq(a, b)


def _len(v: Any) -> int:
    if v is None:
        raise _CallError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, dict | list | tuple):
        return len(v)
    raise _CallError(f"len of type {_type_name(v)}")


def _index(item: Any, *idx: Any) -> Any:
    if item is None:
        raise _CallError("index of untyped nil")
    for i in idx:
        if isinstance(item, dict):
            if not isinstance(i, str):
                raise _CallError(f"value has type {_type_name(i)}; should be string")
            item = item.get(i, "" if _is_string_map(item) else None)
        elif isinstance(item, list | tuple | str):
            if not isinstance(i, int) or isinstance(i, bool):
                raise _CallError(f"cannot index slice/array with type {_type_name(i)}")
            seq = item.encode() if isinstance(item, str) else item
            if not 0 <= i < len(seq):
                raise _CallError(f"index out of range: {i}")
            item = seq[i]
        elif isinstance(item, Sample):
            raise _CallError("can't index item of type *template.sample")
        else:
            raise _CallError(f"can't index item of type {_type_name(item)}")
    return item


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, str | list | tuple):
        raise _CallError(f"can't slice item of type {_type_name(item)}")
    if len(idx) > 3 or (len(idx) == 3 and isinstance(item, str)):
        raise _CallError("too many slice indexes")
    ints = [int(i) for i in idx]
    lo = ints[0] if ints else 0
    hi = ints[1] if len(ints) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise _CallError(f"index out of range: {hi if hi > len(item) else lo}")
    return item[lo:hi]


def _printf(fmt: Any, *args: Any) -> str:
    return _sprintf(_want_str(fmt), list(args))


def _title(s: Any) -> str:
    """``strings.Title``: upper-case the first letter of each word."""
    out: list[str] = []
    prev_sep = True
    for ch in _want_str(s):
        if prev_sep and ch.isalpha():
            out.append(ch.upper())
        else:
            out.append(ch)
        prev_sep = not (ch.isalnum() or ch == "_") and (ord(ch) < 0x80 or ch.isspace())
    return "".join(out)


@functools.lru_cache(maxsize=256)
def _compile_re(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise _CallError(f"error parsing regexp: {e}: `{pattern}`") from None


def _re_replace_all(pattern: Any, repl: Any, text: Any) -> str:
    """Go's ``Regexp.ReplaceAllString``: ``$1``/``${name}`` references; an empty match right
    after a previous match is skipped (Python's ``re.sub`` would replace it)."""
    rx = _compile_re(_want_str(pattern))
    r, t = _want_str(repl), _want_str(text)
    out: list[str] = []
    last = 0
    prev_end = -1
    for m in rx.finditer(t):
        if m.start() == m.end() and m.start() == prev_end:
            continue
        out.append(t[last:m.start()])
        out.append(_regexp_expand(r, m))
        last = m.end()
        prev_end = m.end()
    out.append(t[last:])
    return "".join(out)


def _split_host_port(hp: str) -> tuple[str, str] | None:
    """``net.SplitHostPort``; None where Go returns an error."""
    i = hp.rfind(":")
    if i < 0:
        return None
    j = k = 0
    if hp.startswith("["):
        end = hp.find("]")
        if end < 0 or end + 1 == len(hp) or end + 1 != i:
            return None
        host = hp[1:end]
        j, k = 1, end + 1
    else:
        host = hp[:i]
        if ":" in host:
            return None
    if "[" in hp[j:] or "]" in hp[k:]:
        return None
    return host, hp[i + 1:]


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _strip_port(hp: Any) -> str:
    s = _want_str(hp)
    sp = _split_host_port(s)
    return s if sp is None else sp[0]


def _strip_domain(hp: Any) -> str:
    s = _want_str(hp)
    sp = _split_host_port(s)
    host, port = sp if sp is not None else (s, "")
    if _is_ip(host):
        return s
    host = host.split(".")[0]
    if port:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return host


def _graph_link(expr: Any, tab: int) -> str:
    return f"/graph?g0.expr={urllib.parse.quote_plus(_want_str(expr), safe='')}&g0.tab={tab}"


def _parse_duration(s: Any) -> float:
    text = _want_str(s)
    try:
        return parse_prometheus_duration(text)
    except ValueError:
        raise _CallError(f"not a valid duration string: {_go_quote(text)}") from None


def _to_sample(x: Any) -> Sample:
    if isinstance(x, Sample):
        return x
    if isinstance(x, dict):
        labels = x.get("Labels", x.get("labels", x.get("metric", {})))
        value = x.get("Value", x.get("value", 0.0))
    else:
        labels = getattr(x, "Labels", None)
        if labels is None:
            labels = getattr(x, "labels", {})
        value = getattr(x, "Value", None)
        if value is None:
            value = getattr(x, "value", 0.0)
    if isinstance(value, list | tuple):  # Prometheus API shape [ts, "value"]
        value = value[-1]
    return Sample(dict(labels), float(value))


@dataclass(frozen=True)
class _Fn:
    """A template function: ``nargs`` fixed parameters, or at least ``nargs`` when variadic."""

    impl: Callable[..., Any]
    nargs: int
    variadic: bool = False


def _builtin_funcs() -> dict[str, _Fn]:
    def first(v: Any) -> Sample:
        vec = _want_vector(v) if v else v
        if not vec:
            raise _CallError("first() called on vector with no elements")
        return vec[0]

    def sort_by_label(label: Any, v: Any) -> list[Sample]:
        name = _want_str(label)
        vec = _want_vector(v)
        vec.sort(key=lambda s: s.Labels.get(name, ""))
        return vec

    return {
        # Go builtins (and/or are evaluated lazily by the executor).
        "and": _Fn(lambda *a: a[-1], 1, True),
        "or": _Fn(lambda *a: a[-1], 1, True),
        "not": _Fn(lambda a: not _truth(a), 1),
        "eq": _Fn(_eq, 1, True),
        "ne": _Fn(lambda a, b: not _eq(a, b), 2),
        "lt": _Fn(_lt, 2),
        "le": _Fn(_le, 2),
        "gt": _Fn(lambda a, b: not _le(a, b), 2),
        "ge": _Fn(lambda a, b: not _lt(a, b), 2),
        "len": _Fn(_len, 1),
        "index": _Fn(_index, 1, True),
        "slice": _Fn(_slice, 1, True),
        "print": _Fn(lambda *a: _sprint(list(a)), 0, True),
        "printf": _Fn(_printf, 1, True),
        "println": _Fn(lambda *a: " ".join(_fmt_v(x) for x in a) + "\n", 0, True),
        "html": _Fn(lambda *a: _html_escape(_sprint(list(a))), 0, True),
        "js": _Fn(lambda *a: _js_escape(_sprint(list(a))), 0, True),
        "urlquery": _Fn(lambda *a: urllib.parse.quote_plus(_sprint(list(a)), safe=""), 0, True),
        # Prometheus
        "first": _Fn(first, 1),
        "label": _Fn(lambda name, s: _want_sample(s).Labels.get(_want_str(name), ""), 2),
        "value": _Fn(lambda s: _want_sample(s).Value, 1),
        "strvalue": _Fn(lambda s: _want_sample(s).Labels.get("__value__", ""), 1),
        "args": _Fn(lambda *a: {f"arg{i}": x for i, x in enumerate(a)}, 0, True),
        "reReplaceAll": _Fn(_re_replace_all, 3),
        "safeHtml": _Fn(lambda s: _SafeHTML(_want_str(s)), 1),
        "match": _Fn(lambda p, s: _compile_re(_want_str(p)).search(_want_str(s)) is not None, 2),
        "title": _Fn(_title, 1),
        "toUpper": _Fn(lambda s: _want_str(s).upper(), 1),
        "toLower": _Fn(lambda s: _want_str(s).lower(), 1),
        "graphLink": _Fn(lambda e: _graph_link(e, 0), 1),
        "tableLink": _Fn(lambda e: _graph_link(e, 1), 1),
        "sortByLabel": _Fn(sort_by_label, 2),
        "stripPort": _Fn(_strip_port, 1),
        "stripDomain": _Fn(_strip_domain, 1),
        "humanize": _Fn(humanize, 1),
        "humanize1024": _Fn(humanize1024, 1),
        "humanizeDuration": _Fn(humanize_duration, 1),
        "humanizePercentage": _Fn(humanize_percentage, 1),
        "humanizeTimestamp": _Fn(_humanize_timestamp, 1),
        "toTime": _Fn(_to_time, 1),
        "parseDuration": _Fn(_parse_duration, 1),
    }


_BUILTINS = _builtin_funcs()
# Functions whose implementation depends on the TemplateFuncs environment.
_ENV_FUNCS = ("query", "externalURL", "pathPrefix")
FUNCTION_NAMES = frozenset(_BUILTINS) | frozenset(_ENV_FUNCS)


def _env_funcs(env: TemplateFuncs) -> dict[str, _Fn]:
    def query(q: Any) -> list[Sample]:
        if env.query_fn is None:
            raise _CallError("no query function available")
        try:
            return _QueryResult(_to_sample(x) for x in env.query_fn(_want_str(q)))
        except _ArgError:
            raise
        except Exception as e:  # the query engine's error is the template's error
            raise _CallError(str(e)) from None

    funcs = dict(_BUILTINS)
    funcs["query"] = _Fn(query, 1)
    funcs["externalURL"] = _Fn(lambda: env.external_url, 0)
    funcs["pathPrefix"] = _Fn(lambda: urllib.parse.urlsplit(env.external_url).path, 0)
    for name, fn in env.extra.items():
        funcs[name] = _Fn(fn, 0, True)
    return funcs


# ---------------------------------------------------------------- lexer


@dataclass(slots=True)
class _Tok:
    kind: str  # text, lbrace, rbrace, eof, and action tokens (see _lex_action)
    val: str
    pos: int
    space: bool = False  # whitespace right before this token inside an action


_KEYWORDS = frozenset({"block", "break", "continue", "define", "else", "end", "if", "range",
                       "template", "with"})
_SPACE = " \t\r\n"
_NUM_RE = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?\d+)?|0[oObB][0-7_]+"
                     r"|(?:\d[\d_]*)?(?:\.[\d_]*)?(?:[eE][+-]?\d+)?)i?")
_OPERAND_START = frozenset({"ident", "dot", "nil", "var", "field", "bool", "str", "num", "lparen"})
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Lexer:
    def __init__(self, text: str, err: Callable[[str, int], TemplateError]) -> None:
        self.text = text
        self.err = err
        self.toks: list[_Tok] = []

    def run(self) -> list[_Tok]:
        text = self.text
        pos = 0
        trim_next = False
        while True:
            start = text.find("{{", pos)
            chunk = text[pos:] if start < 0 else text[pos:start]
            if trim_next:
                chunk = chunk.lstrip(_SPACE)
            if start < 0:
                if chunk:
                    self.toks.append(_Tok("text", chunk, pos))
                break
            left_trim = text.startswith("{{-", start) and start + 3 < len(text) and text[start + 3] in _SPACE
            if left_trim:
                chunk = chunk.rstrip(_SPACE)
            if chunk:
                self.toks.append(_Tok("text", chunk, pos))
            p = start + (4 if left_trim else 2)
            # Comments: {{/* ... */}} directly after the delimiter.
            if text.startswith("/*", p):
                end = text.find("*/", p + 2)
                if end < 0:
                    raise self.err("unclosed comment", start)
                q = end + 2
                trim_next = False
                if text.startswith(" -}}", q) or text.startswith("\t-}}", q) or text.startswith("\n-}}", q):
                    trim_next, q = True, q + 4
                elif text.startswith("}}", q):
                    q += 2
                else:
                    raise self.err("comment ends before closing delimiter", start)
                pos = q
                continue
            self.toks.append(_Tok("lbrace", "{{", start))
            pos, trim_next = self._action(p)
        self.toks.append(_Tok("eof", "", len(text)))
        return self.toks

    def _action(self, p: int) -> tuple[int, bool]:
        """Tokens of one action from ``p``; returns the position after ``}}`` and its trim flag."""
        text = self.text
        n = len(text)
        depth = 0
        space = False
        while True:
            if p >= n:
                raise self.err("unclosed action", p)
            c = text[p]
            if c in _SPACE:
                # A right trim marker: whitespace, '-', '}}'.
                q = p
                while q < n and text[q] in _SPACE:
                    q += 1
                if text.startswith("-}}", q):
                    if depth:
                        raise self.err("unclosed left paren", p)
                    self.toks.append(_Tok("rbrace", "}}", q, True))
                    return q + 3, True
                p, space = q, True
                continue
            if text.startswith("}}", p):
                if depth:
                    raise self.err("unclosed left paren", p)
                self.toks.append(_Tok("rbrace", "}}", p, space))
                return p + 2, False
            start = p
            kind: str
            val: str
            if c == "|":
                kind, val, p = "pipe", "|", p + 1
            elif c == "(":
                kind, val, p = "lparen", "(", p + 1
                depth += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise self.err("unexpected right paren", p)
                kind, val, p = "rparen", ")", p + 1
            elif text.startswith(":=", p):
                kind, val, p = "declare", ":=", p + 2
            elif c == "=":
                kind, val, p = "assign", "=", p + 1
            elif c == ",":
                kind, val, p = "comma", ",", p + 1
            elif c == '"':
                q = p + 1
                while True:
                    if q >= n or text[q] == "\n":
                        raise self.err("unterminated quoted string", start)
                    if text[q] == "\\":
                        q += 2
                        continue
                    if text[q] == '"':
                        break
                    q += 1
                kind, val, p = "str", _unquote(text[p:q + 1], lambda m, at=start: self.err(m, at)), q + 1
            elif c == "`":
                q = text.find("`", p + 1)
                if q < 0:
                    raise self.err("unterminated raw quoted string", start)
                kind, val, p = "str", text[p + 1:q].replace("\r", ""), q + 1
            elif c == "'":
                m = re.match(r"'(\\.[^']*|[^\\'])'", text[p:])
                if not m:
                    raise self.err("unterminated character constant", start)
                ch = _unquote('"' + m.group(1) + '"', lambda msg, at=start: self.err(msg, at))
                kind, val, p = "num", str(ord(ch[0])), p + m.end()
            elif c == "$":
                m = _IDENT_RE.match(text, p + 1)
                q = m.end() if m else p + 1
                kind, val, p = "var", text[p:q], q
            elif c == "." and p + 1 < n and (text[p + 1].isalpha() or text[p + 1] == "_"):
                m = _IDENT_RE.match(text, p + 1)
                assert m is not None
                kind, val, p = "field", m.group(0), m.end()
            elif c.isdigit() or (c in "+-." and p + 1 < n and text[p + 1].isdigit()):
                m = _NUM_RE.match(text, p)
                q = m.end() if m else p + 1
                if q < n and (text[q].isalnum() or text[q] == "_"):
                    raise self.err(f"bad number syntax: {_go_quote(text[p:q + 1])}", start)
                kind, val, p = "num", text[p:q], q
            elif c == ".":
                kind, val, p = "dot", ".", p + 1
            elif c.isalpha() or c == "_":
                m = _IDENT_RE.match(text, p)
                assert m is not None
                val, p = m.group(0), m.end()
                kind = "kw" if val in _KEYWORDS else ("bool" if val in ("true", "false") else
                                                      ("nil" if val == "nil" else "ident"))
            else:
                cp = f"U+{ord(c):04X}"
                raise self.err(f"unrecognized character in action: {cp}" + (f" {c!r}" if c.isprintable() else ""),
                               start)
            self.toks.append(_Tok(kind, val, start, space))
            space = False


def _unquote(s: str, err: Callable[[str], TemplateError]) -> str:
    """A Go interpreted string literal's value."""
    try:
        return unquote(s[1:-1])
    except UnquoteError:
        raise err(f"invalid syntax in string {s}") from None


# ---------------------------------------------------------------- syntax tree


class _Node:
    """Base of the syntax tree; every node has ``pos`` (offset into the source, for errors)."""

    pos: int


@dataclass
class _Text(_Node):
    text: str


@dataclass
class _Dot(_Node):
    pos: int

    def __str__(self) -> str:
        return "."


@dataclass
class _Nil(_Node):
    pos: int

    def __str__(self) -> str:
        return "nil"


@dataclass
class _Lit(_Node):
    pos: int
    value: Any
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class _Field(_Node):
    pos: int
    names: list[str]

    def __str__(self) -> str:
        return "".join("." + n for n in self.names)


@dataclass
class _Var(_Node):
    pos: int
    name: str
    names: list[str]

    def __str__(self) -> str:
        return self.name + "".join("." + n for n in self.names)


@dataclass
class _Ident(_Node):
    pos: int
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass
class _Chain(_Node):
    pos: int
    node: _Node
    names: list[str]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return inner + "".join("." + n for n in self.names)


@dataclass
class _Cmd(_Node):
    pos: int
    args: list[_Node]

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, _Pipe) else str(a) for a in self.args)


@dataclass
class _Pipe(_Node):
    pos: int
    decl: list[str]
    is_assign: bool
    cmds: list[_Cmd]

    def __str__(self) -> str:
        s = " | ".join(str(c) for c in self.cmds)
        if self.decl:
            s = ", ".join(self.decl) + (" = " if self.is_assign else " := ") + s
        return s


@dataclass
class _Action(_Node):
    pos: int
    pipe: _Pipe


@dataclass
class _Control(_Node):
    kind: str  # if, with, range
    pos: int
    pipe: _Pipe
    body: list[_Node]
    else_body: list[_Node] | None


@dataclass
class _TemplateCall(_Node):
    pos: int
    name: str
    pipe: _Pipe | None

    def __str__(self) -> str:
        return f"{{{{template {_go_quote(self.name)}{' ' + str(self.pipe) if self.pipe else ''}}}}}"


@dataclass
class _Jump(_Node):
    kind: str  # break, continue
    pos: int


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str, name: str, funcs: frozenset[str], predeclared: Iterable[str]) -> None:
        self.text = text
        self.name = name
        self.funcs = funcs
        self.toks = _Lexer(text, self.error).run()
        self.i = 0
        self.vars: list[str] = ["$", *predeclared]
        self.range_depth = 0
        self.defs: dict[str, list[_Node]] = {}

    def error(self, msg: str, pos: int) -> TemplateError:
        return TemplateError(f"template: {_location(self.text, self.name, pos)}: {msg}")

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def unexpected(self, t: _Tok, context: str) -> TemplateError:
        if t.kind == "eof":
            what = "EOF"
        elif t.kind == "kw":
            what = f"<{t.val}>"
        elif t.kind == "str":
            what = _go_quote(_go_quote(t.val))
        else:
            what = _go_quote(t.val)
        return self.error(f"unexpected {what} in {context}", t.pos)

    def expect(self, kind: str, context: str) -> _Tok:
        t = self.next()
        if t.kind != kind:
            raise self.unexpected(t, context)
        return t

    def parse(self) -> list[_Node]:
        nodes, term = self.item_list(top=True)
        assert term.kind == "eof"
        return nodes

    def item_list(self, top: bool = False) -> tuple[list[_Node], _Tok]:
        """Nodes up to ``{{end}}``/``{{else}}`` (returned as the terminator token) or EOF."""
        nodes: list[_Node] = []
        while True:
            t = self.next()
            if t.kind == "text":
                nodes.append(_Text(t.val))
            elif t.kind == "eof":
                if not top:
                    raise self.error("unexpected EOF", t.pos)
                return nodes, t
            else:  # lbrace
                k = self.peek()
                if k.kind == "kw" and k.val in ("end", "else"):
                    if top:
                        raise self.error(f"unexpected {{{{{k.val}}}}}", k.pos)
                    self.next()
                    if k.val == "end":
                        self.expect("rbrace", "end")
                    return nodes, k
                node = self.action(top)
                if node is not None:
                    nodes.append(node)

    def action(self, top: bool) -> _Node | None:
        t = self.peek()
        if t.kind == "kw":
            self.next()
            if t.val in ("if", "with", "range"):
                return self.control(t.val, t.pos)
            if t.val in ("break", "continue"):
                if not self.range_depth:
                    raise self.error(f"{{{{{t.val}}}}} outside {{{{range}}}}", t.pos)
                self.expect("rbrace", t.val)
                return _Jump(t.val, t.pos)
            if t.val == "template":
                return self.template_call(t.pos)
            if t.val in ("define", "block"):
                if t.val == "define" and not top:
                    raise self.error("unexpected <define> in command", t.pos)
                return self.define(t.val, t.pos)
        pipe = self.pipeline("command", "rbrace")
        return _Action(pipe.pos, pipe)

    def control(self, kind: str, pos: int) -> _Node:
        mark = len(self.vars)
        pipe = self.pipeline(kind, "rbrace")
        if kind == "range":
            self.range_depth += 1
        body, term = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_body: list[_Node] | None = None
        if term.val == "else":
            nxt = self.peek()
            if kind in ("if", "with") and nxt.kind == "kw" and nxt.val == kind:
                self.next()
                else_body = [self.control(kind, nxt.pos)]
            else:
                self.expect("rbrace", "else")
                else_body, term2 = self.item_list()
                if term2.val != "end":
                    raise self.error(f"expected end; found {{{{{term2.val}}}}}", term2.pos)
        del self.vars[mark:]
        return _Control(kind, pos, pipe, body, else_body)

    def template_call(self, pos: int) -> _Node:
        t = self.next()
        if t.kind != "str":
            raise self.unexpected(t, "template clause")
        pipe = None
        if self.peek().kind != "rbrace":
            pipe = self.pipeline("template clause", "rbrace")
        else:
            self.next()
        return _TemplateCall(pos, t.val, pipe)

    def define(self, kind: str, pos: int) -> _Node | None:
        t = self.next()
        if t.kind != "str":
            raise self.unexpected(t, f"{kind} clause")
        pipe = None
        if kind == "block":
            pipe = self.pipeline("block clause", "rbrace")
        else:
            self.expect("rbrace", "define clause")
        saved_vars, saved_depth = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        body, term = self.item_list()
        self.vars, self.range_depth = saved_vars, saved_depth
        if term.val != "end":
            raise self.error(f"unexpected {{{{{term.val}}}}} in {kind} clause", term.pos)
        self.defs[t.val] = body
        return _TemplateCall(pos, t.val, pipe) if kind == "block" else None

    def pipeline(self, context: str, end: str) -> _Pipe:
        start = self.peek().pos
        decl: list[str] = []
        is_assign = False
        t = self.peek()
        if t.kind == "var":
            after = self.toks[self.i + 1]
            if after.kind in ("declare", "assign"):
                self.i += 2
                decl.append(t.val)
                is_assign = after.kind == "assign"
                if is_assign and t.val not in self.vars:
                    raise self.error(f"undefined variable {_go_quote(t.val)}", t.pos)
            elif after.kind == "comma":
                if context != "range":
                    raise self.error(f"too many declarations in {context}", after.pos)
                v2 = self.toks[self.i + 2]
                op = self.toks[self.i + 3]
                if v2.kind != "var" or op.kind not in ("declare", "assign"):
                    raise self.error("range can only initialize variables", v2.pos)
                self.i += 4
                decl += [t.val, v2.val]
                is_assign = op.kind == "assign"
        cmds: list[_Cmd] = []
        while True:
            t = self.peek()
            if t.kind == end:
                self.next()
                break
            if t.kind not in _OPERAND_START:
                raise self.unexpected(t, context)
            cmds.append(self.command())
        if not cmds:
            raise self.error(f"missing value for {context}", start)
        for i, c in enumerate(cmds[1:], start=2):
            if isinstance(c.args[0], _Lit | _Dot | _Nil):
                raise self.error(f"non executable command in pipeline stage {i}", c.pos)
        if not is_assign:
            self.vars.extend(decl)
        return _Pipe(cmds[0].pos, decl, is_assign, cmds)

    def command(self) -> _Cmd:
        """Operands separated by spaces, up to (and consuming) ``|`` or up to ``}}``/``)``."""
        args: list[_Node] = []
        pos = self.peek().pos
        while True:
            op = self.operand()
            if op is None:
                raise self.unexpected(self.peek(), "operand")
            args.append(op)
            t = self.peek()
            if t.kind in ("rbrace", "rparen"):
                break
            if t.kind == "pipe":
                self.next()
                break
            if not t.space:
                raise self.unexpected(t, "operand")
        return _Cmd(pos, args)

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None:
            return None
        names: list[str] = []
        while self.peek().kind == "field" and not self.peek().space:
            names.append(self.next().val)
        if not names:
            return node
        if isinstance(node, _Field):
            return _Field(node.pos, node.names + names)
        if isinstance(node, _Var):
            return _Var(node.pos, node.name, node.names + names)
        if isinstance(node, _Lit | _Nil | _Dot):
            raise self.error(f"unexpected . after term {_go_quote(str(node))}", node.pos)
        return _Chain(node.pos, node, names)

    def term(self) -> _Node | None:
        t = self.next()
        if t.kind == "ident":
            if t.val not in self.funcs:
                raise self.error(f"function {_go_quote(t.val)} not defined", t.pos)
            return _Ident(t.pos, t.val)
        if t.kind == "dot":
            return _Dot(t.pos)
        if t.kind == "nil":
            return _Nil(t.pos)
        if t.kind == "var":
            if t.val not in self.vars:
                raise self.error(f"undefined variable {_go_quote(t.val)}", t.pos)
            return _Var(t.pos, t.val, [])
        if t.kind == "field":
            return _Field(t.pos, [t.val])
        if t.kind == "bool":
            return _Lit(t.pos, t.val == "true", t.val)
        if t.kind == "str":
            return _Lit(t.pos, t.val, _go_quote(t.val))
        if t.kind == "num":
            return _Lit(t.pos, self.number(t), t.val)
        if t.kind == "lparen":
            pipe = self.pipeline("parenthesized pipeline", "rparen")
            return pipe
        self.i -= 1
        return None

    def number(self, t: _Tok) -> int | float:
        s = t.val.replace("_", "")
        if s.endswith("i"):
            raise self.error(f"complex numbers are not supported: {s}", t.pos)
        try:
            body = s.lstrip("+-")
            neg = s.startswith("-")
            if body.lower().startswith("0x") and ("." in body or "p" in body.lower()):
                v: int | float = float.fromhex(body)
            elif body.lower().startswith(("0x", "0o", "0b")):
                v = int(body, 0)
            elif re.fullmatch(r"0[0-7]+", body):
                v = int(body, 8)
            elif re.fullmatch(r"\d+", body):
                v = int(body)
            else:
                v = float(body)
            return -v if neg else v
        except ValueError:
            raise self.error(f"illegal number syntax: {_go_quote(t.val)}", t.pos) from None


def _location(text: str, name: str, pos: int) -> str:
    """``name:line:col`` (col is the byte offset in the line, as Go's ErrorContext)."""
    before = text[:pos]
    line = before.count("\n") + 1
    col = len(before[before.rfind("\n") + 1:].encode())
    return f"{name}:{line}:{col}" if name else f"{line}:{col}"


# ---------------------------------------------------------------- executor


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_MISSING = object()
_MAX_DEPTH = 1000


class _ExecError(Exception):
    def __init__(self, node: _Node, msg: str) -> None:
        super().__init__(msg)
        self.node = node
        self.msg = msg


class _State:
    def __init__(self, tmpl: Template, funcs: dict[str, _Fn], out: list[str]) -> None:
        self.tmpl = tmpl
        self.funcs = funcs
        self.out = out
        self.vars: list[list[Any]] = []
        self.depth = 0

    # -- variables
    def push(self, name: str, value: Any) -> None:
        self.vars.append([name, value])

    def set_var(self, node: _Node, name: str, value: Any) -> None:
        for v in reversed(self.vars):
            if v[0] == name:
                v[1] = value
                return
        raise _ExecError(node, f"undefined variable: {name}")

    def var(self, node: _Node, name: str) -> Any:
        for v in reversed(self.vars):
            if v[0] == name:
                return v[1]
        raise _ExecError(node, f"undefined variable: {name}")

    # -- statements
    def walk(self, dot: Any, nodes: list[_Node]) -> None:
        for n in nodes:
            if isinstance(n, _Text):
                self.out.append(n.text)
            elif isinstance(n, _Action):
                mark = len(self.vars)
                v = self.eval_pipe(dot, n.pipe)
                if not n.pipe.decl:
                    self.out.append(self.printable(n, v))
                    del self.vars[mark:]
            elif isinstance(n, _Control):
                self.control(dot, n)
            elif isinstance(n, _TemplateCall):
                self.call_template(dot, n)
            elif isinstance(n, _Jump):
                raise _Break() if n.kind == "break" else _Continue()

    def printable(self, node: _Node, v: Any) -> str:
        return "<no value>" if v is None else _fmt_v(v)

    def control(self, dot: Any, n: _Control) -> None:
        mark = len(self.vars)
        if n.kind == "range":
            self.walk_range(dot, n, mark)
        else:
            v = self.eval_pipe(dot, n.pipe)
            if _truth(v):
                self.walk(v if n.kind == "with" else dot, n.body)
            elif n.else_body is not None:
                self.walk(dot, n.else_body)
        del self.vars[mark:]

    def walk_range(self, dot: Any, n: _Control, mark: int) -> None:
        # The declared variables are bound per element below, not to the collection.
        val = self.eval_pipe(dot, _Pipe(n.pipe.pos, [], False, n.pipe.cmds))
        items: list[tuple[Any, Any]]
        if val is None:
            items = []
        elif isinstance(val, dict):
            items = [(k, val[k]) for k in sorted(val)]
        elif isinstance(val, list | tuple):
            items = list(enumerate(val))
        elif isinstance(val, int) and not isinstance(val, bool):
            items = [(i, i) for i in range(val)]
        else:
            raise _ExecError(n.pipe, f"range can't iterate over {_fmt_v(val)}")
        if not items:
            if n.else_body is not None:
                self.walk(dot, n.else_body)
            return
        for key, elem in items:
            inner = len(self.vars)
            decl = n.pipe.decl
            if decl:
                if n.pipe.is_assign:
                    if len(decl) == 1:
                        self.set_var(n, decl[0], elem)
                    else:
                        self.set_var(n, decl[0], key)
                        self.set_var(n, decl[1], elem)
                elif len(decl) == 1:
                    self.push(decl[0], elem)
                else:
                    self.push(decl[0], key)
                    self.push(decl[1], elem)
            try:
                self.walk(elem, n.body)
            except _Continue:
                pass
            except _Break:
                del self.vars[inner:]
                break
            del self.vars[inner:]

    def call_template(self, dot: Any, n: _TemplateCall) -> None:
        body = self.tmpl._defs.get(n.name)
        if body is None:
            raise _ExecError(n, f"no such template {_go_quote(n.name)}")
        new_dot = self.eval_pipe(dot, n.pipe) if n.pipe is not None else None
        if self.depth >= _MAX_DEPTH:
            raise _ExecError(n, f"exceeded maximum template depth ({_MAX_DEPTH})")
        saved = self.vars
        self.vars = [["$", new_dot]]
        self.depth += 1
        try:
            self.walk(new_dot, body)
        finally:
            self.depth -= 1
            self.vars = saved

    # -- expressions
    def eval_pipe(self, dot: Any, pipe: _Pipe) -> Any:
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_cmd(dot, cmd, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(pipe, name, value)
            else:
                self.push(name, value)
        return value

    def eval_cmd(self, dot: Any, cmd: _Cmd, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Field):
            return self.eval_fields(first, dot, dot, first.names, cmd.args, final)
        if isinstance(first, _Chain):
            return self.eval_fields(first, dot, self.eval_arg(dot, first.node), first.names, cmd.args, final)
        if isinstance(first, _Ident):
            return self.eval_function(dot, first.name, cmd, cmd.args, final)
        if isinstance(first, _Var):
            v = self.var(first, first.name)
            if first.names:
                return self.eval_fields(first, dot, v, first.names, cmd.args, final)
            self.not_a_function(cmd, final)
            return v
        self.not_a_function(cmd, final)
        if isinstance(first, _Pipe):
            return self.eval_pipe(dot, first)
        if isinstance(first, _Nil):
            raise _ExecError(cmd, "nil is not a command")
        if isinstance(first, _Dot):
            return dot
        assert isinstance(first, _Lit)
        return first.value

    def not_a_function(self, cmd: _Cmd, final: Any) -> None:
        if len(cmd.args) > 1 or final is not _MISSING:
            raise _ExecError(cmd, f"can't give argument to non-function {cmd.args[0]}")

    def eval_arg(self, dot: Any, node: _Node) -> Any:
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Nil):
            return None
        if isinstance(node, _Lit):
            return node.value
        if isinstance(node, _Field):
            return self.eval_fields(node, dot, dot, node.names, [node], _MISSING)
        if isinstance(node, _Var):
            v = self.var(node, node.name)
            return self.eval_fields(node, dot, v, node.names, [node], _MISSING) if node.names else v
        if isinstance(node, _Pipe):
            mark = len(self.vars)
            v = self.eval_pipe(dot, node)
            del self.vars[mark:]
            return v
        if isinstance(node, _Ident):
            return self.eval_function(dot, node.name, node, [node], _MISSING)
        if isinstance(node, _Chain):
            return self.eval_fields(node, dot, self.eval_arg(dot, node.node), node.names, [node], _MISSING)
        raise _ExecError(node, f"can't handle {node}")

    def eval_fields(self, node: _Node, dot: Any, receiver: Any, names: list[str], args: list[_Node],
                    final: Any) -> Any:
        """``receiver.A.B.C args...``: only the last name may take arguments (a method call)."""
        for name in names[:-1]:
            receiver = self.eval_field(node, dot, receiver, name, [], _MISSING)
        return self.eval_field(node, dot, receiver, names[-1], args[1:], final)

    def eval_field(self, node: _Node, dot: Any, receiver: Any, name: str, arg_nodes: list[_Node],
                   final: Any) -> Any:
        has_args = bool(arg_nodes) or final is not _MISSING
        if receiver is None:
            return None
        if isinstance(receiver, GoTime) and name in _TIME_METHODS:
            argv = [self.eval_arg(dot, a) for a in arg_nodes]
            if final is not _MISSING:
                argv.append(final)
            method = getattr(receiver, name)
            want = 1 if name == "Format" else 0
            if len(argv) != want:
                raise _ExecError(node, f"wrong number of args for {name}: want {want} got {len(argv)}")
            if name == "Format" and not isinstance(argv[0], str):
                raise _ExecError(node, f"wrong type for value; expected string; got {_type_name(argv[0])}")
            return method(*argv)
        if isinstance(receiver, _Struct | Sample):
            fields = receiver.fields if isinstance(receiver, _Struct) else {"Labels": receiver.Labels,
                                                                             "Value": receiver.Value}
            if name in fields:
                if has_args:
                    raise _ExecError(node, f"{name} has arguments but cannot be invoked as function")
                return fields[name]
            raise _ExecError(node, f"can't evaluate field {name} in type {_type_name(receiver)}")
        if isinstance(receiver, dict):
            if has_args:
                raise _ExecError(node, f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            return "" if _is_string_map(receiver) else None
        if not isinstance(receiver, bool | int | float | str | list | tuple) and not name.startswith("_") \
                and hasattr(receiver, name):
            if has_args:
                raise _ExecError(node, f"{name} has arguments but cannot be invoked as function")
            return getattr(receiver, name)
        raise _ExecError(node, f"can't evaluate field {name} in type {_type_name(receiver)}")

    def eval_function(self, dot: Any, name: str, node: _Node, args: list[_Node], final: Any) -> Any:
        fn = self.funcs.get(name)
        if fn is None:
            raise _ExecError(node, f"{_go_quote(name)} is not a defined function")
        arg_nodes = args[1:]
        nargs = len(arg_nodes) + (final is not _MISSING)
        if fn.variadic and nargs < fn.nargs:
            raise _ExecError(node, f"wrong number of args for {name}: want at least {fn.nargs} got {nargs}")
        if not fn.variadic and nargs != fn.nargs:
            raise _ExecError(node, f"wrong number of args for {name}: want {fn.nargs} got {nargs}")
        if name in ("and", "or"):
            # Short-circuit, as Go 1.18+: stop at the first falsy (and) / truthy (or) argument.
            v: Any = None
            vals = [lambda a=a: self.eval_arg(dot, a) for a in arg_nodes]
            if final is not _MISSING:
                vals.append(lambda: final)
            for get in vals:
                v = get()
                if _truth(v) != (name == "and"):
                    return v
            return v
        argv = [self.eval_arg(dot, a) for a in arg_nodes]
        if final is not _MISSING:
            argv.append(final)
        try:
            return fn.impl(*argv)
        except _ArgError as e:
            raise _ExecError(node, str(e)) from None
        except _CallError as e:
            raise _ExecError(node, f"error calling {name}: {e}") from None
        except TemplateError:
            raise
        except Exception as e:  # a user-supplied function failed
            raise _ExecError(node, f"error calling {name}: {e}") from None


# ---------------------------------------------------------------- public API


class Template:
    """A parsed template; :meth:`render` executes it (thread-safe: rendering keeps no state here)."""

    def __init__(self, text: str, name: str, root: list[_Node], defs: dict[str, list[_Node]],
                 predeclared: tuple[str, ...]) -> None:
        self.text = text
        self.name = name
        self._root = root
        self._defs = defs
        self._predeclared = predeclared

    def render(self, data: TemplateData | Any, funcs: TemplateFuncs | None = None) -> str:
        """Execute against ``data``: a :class:`TemplateData` (seen as Prometheus' alert template
        data: ``.Labels``, ``.ExternalLabels``, ``.ExternalURL``, ``.Value``, and ``$labels``,
        ``$externalLabels``, ``$externalURL``, ``$value`` when parsed by :func:`expand`) or any
        plain value (dicts, lists, numbers, strings) used as dot directly."""
        env = funcs or TemplateFuncs()
        dot = data
        if isinstance(data, TemplateData):
            if not env.external_url and data.external_url:
                env = TemplateFuncs(env.query_fn, data.external_url, env.extra)
            dot = _alert_struct(data)
        out: list[str] = []
        st = _State(self, _env_funcs(env), out)
        st.push("$", dot)
        if isinstance(dot, _Struct):
            for var, fname in _ALERT_VARS:
                if var in self._predeclared:
                    st.push(var, dot.fields[fname])
        try:
            st.walk(dot, self._root)
        except _ExecError as e:
            loc = _location(self.text, self.name, e.node.pos)
            where = f'executing "{self.name}" at' if self.name else "at"
            raise TemplateError(f"template: {loc}: {where} <{e.node}>: {e.msg}") from None
        except (_Break, _Continue):  # pragma: no cover - parser forbids them outside range
            pass
        except RecursionError:
            raise TemplateError(f"template: {self.name}: exceeded maximum template depth") from None
        return "".join(out)


_ALERT_VARS = (("$labels", "Labels"), ("$externalLabels", "ExternalLabels"),
               ("$externalURL", "ExternalURL"), ("$value", "Value"))
ALERT_VARIABLES: tuple[str, ...] = tuple(v for v, _ in _ALERT_VARS)


def _alert_struct(d: TemplateData) -> _Struct:
    return _Struct("struct { Labels map[string]string; ExternalLabels map[string]string; "
                   "ExternalURL string; Value interface {} }",
                   {"Labels": d.labels, "ExternalLabels": d.external_labels, "ExternalURL": d.external_url,
                    "Value": d.value})


def parse_template(text: str, name: str = "", extra_funcs: Iterable[str] = (),
                   variables: Iterable[str] = ()) -> Template:
    """Parse ``text``; raises :class:`TemplateError` (``template: 1:14: ...``) on syntax errors,
    undefined functions and undefined variables, as Go's parser does. ``variables`` are
    predeclared (``$labels`` etc. for alert templates, see :func:`expand`)."""
    predeclared = tuple(variables)
    p = _Parser(text, name, FUNCTION_NAMES | frozenset(extra_funcs), predeclared)
    root = p.parse()
    return Template(text, name, root, p.defs, predeclared)


@functools.lru_cache(maxsize=4096)
def parse_alert_template(text: str, name: str = "") -> Template:
    """Parse an alert label/annotation template with ``$labels``, ``$externalLabels``,
    ``$externalURL`` and ``$value`` predeclared (cached: rules re-expand the same text on every
    evaluation)."""
    return parse_template(text, name, variables=ALERT_VARIABLES)


def expand(text: str, data: TemplateData, query_fn: Callable[[str], Iterable[Any]] | None = None,
           name: str = "") -> str:
    """Expand an alert label or annotation as Prometheus does: the text runs with ``$labels``,
    ``$externalLabels``, ``$externalURL`` and ``$value`` bound (Prometheus prepends
    ``{{$labels := .Labels}}…`` — binding them directly keeps error columns pointing into the
    user's text). Text without ``{{`` is returned unchanged without parsing."""
    if "{{" not in text:
        return text
    return parse_alert_template(text, name).render(data, TemplateFuncs(query_fn, data.external_url))
