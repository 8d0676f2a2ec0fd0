"""Conversions of label values to numbers: plain floats, Go durations and humanized byte sizes.

Each converter works on a whole Arrow string column at once (regex validation plus
``pc.extract_regex`` and casts), returning float values, a validity mask and, for the rows that
failed, the error text Go would have produced (Loki shows it in ``__error_details__``). Only the
error messages of failing *distinct* values are built in Python.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_FLOAT_RE = (r"^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
             r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])$")
# Unit sizes in nanoseconds: sums are built in ns (as Go does) and divided once, so 3600000000000ns == 1h.
_GO_UNITS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
_LITERAL_UNITS = dict(_GO_UNITS, d=86400e9, w=7 * 86400e9, y=365 * 86400e9)
_CANON_DURATION = (r"^(?P<sign>[-+]?)(?:(?P<h>[0-9.]+)h)?(?:(?P<m>[0-9.]+)m)?(?:(?P<s>[0-9.]+)s)?"
                   r"(?:(?P<ms>[0-9.]+)ms)?(?:(?P<us>[0-9.]+)(?:us|µs|μs))?(?:(?P<ns>[0-9.]+)ns)?$")
_CANON_FACTORS = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}
_BYTES_TABLE = {
    "b": 1, "": 1,
    "kib": 1024, "ki": 1024, "kb": 1000, "k": 1000,
    "mib": 1024**2, "mi": 1024**2, "mb": 1000**2, "m": 1000**2,
    "gib": 1024**3, "gi": 1024**3, "gb": 1000**3, "g": 1000**3,
    "tib": 1024**4, "ti": 1024**4, "tb": 1000**4, "t": 1000**4,
    "pib": 1024**5, "pi": 1024**5, "pb": 1000**5, "p": 1000**5,
    "eib": 1024**6, "ei": 1024**6, "eb": 1000**6, "e": 1000**6,
}


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote`` for the ASCII-ish strings that appear in error messages."""
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    out = "".join(c if c.isprintable() or c in "\\" else f"\\x{ord(c):02x}" for c in out)
    return f'"{out}"'


def parse_go_duration(s: str, *, literal: bool = False) -> float:
    """Seconds in a Go duration (``time.ParseDuration``); ``literal`` also allows d/w/y as Loki's
    query literals do. Raises ValueError with Go's message."""
    units = _LITERAL_UNITS if literal else _GO_UNITS
    orig = s
    if s == "":
        raise ValueError(f"time: invalid duration {go_quote(orig)}")
    neg = False
    if s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0.0
    if s == "":
        raise ValueError(f"time: invalid duration {go_quote(orig)}")
    total = 0.0
    while s:
        m = re.match(r"([0-9]*)(\.[0-9]*)?", s)
        assert m is not None
        num = m.group(0)
        if num in ("", ".") or not re.search(r"[0-9]", num):
            raise ValueError(f"time: invalid duration {go_quote(orig)}")
        s = s[m.end():]
        u = re.match(r"[^0-9.]*", s)
        unit = u.group(0) if u else ""
        if unit == "":
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        if unit not in units:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(orig)}")
        total += float(num) * units[unit]
        s = s[len(unit):]
    total /= 1e9
    return -total if neg else total


def parse_go_bytes(s: str) -> float:
    """``humanize.ParseBytes``: digits (commas allowed) then a case-insensitive unit; truncates."""
    m = re.match(r"[0-9.,]*", s)
    num = m.group(0) if m else ""
    extra = s[len(num):].strip().lower()
    num = num.replace(",", "")
    if not re.fullmatch(r"[0-9]+\.?[0-9]*|\.[0-9]+", num):
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(num)}: invalid syntax")
    if extra not in _BYTES_TABLE:
        raise ValueError(f"unhandled size name: {extra}")
    return float(math.floor(float(num) * _BYTES_TABLE[extra]))


def parse_go_float(s: str) -> float:
    if not re.fullmatch(_FLOAT_RE[1:-1], s):
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(s)}: invalid syntax")
    return float(s)


_SCALAR = {"number": parse_go_float, "duration": parse_go_duration, "bytes": parse_go_bytes}


def _errors_for(col: pa.Array, bad: np.ndarray, kind: str) -> np.ndarray:
    """Error messages (object array, None where ok) for rows in ``bad``: built once per distinct value."""
    out = np.full(len(col), None, dtype=object)
    if not bad.any():
        return out
    idx = np.nonzero(bad)[0]
    vals = col.take(pa.array(idx)).to_pylist()
    cache: dict[str, str] = {}
    fn = _SCALAR[kind]
    for i, v in zip(idx, vals, strict=True):
        if v not in cache:
            try:
                fn(v)
                cache[v] = ""
            except ValueError as e:
                cache[v] = str(e)
        out[i] = cache[v] or None
    return out


def convert(col: pa.Array, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convert a string column (nulls allowed) to floats.

    Returns ``(values, ok, errors)``: ``ok`` is True where the value converted, ``errors`` holds
    Go's error text where a non-null value failed (None elsewhere). Durations are in seconds."""
    n = len(col)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    present = pc.is_valid(col).to_numpy(zero_copy_only=False)
    vals = np.full(n, np.nan)
    if kind == "number":
        ok = pc.fill_null(pc.match_substring_regex(col, _FLOAT_RE), False).to_numpy(zero_copy_only=False)
        if ok.any():
            safe = pc.if_else(pa.array(ok), col, pa.scalar("0"))
            vals = np.where(ok, pc.cast(safe, pa.float64()).to_numpy(zero_copy_only=False), np.nan)
    elif kind == "duration":
        ex = pc.extract_regex(col, _CANON_DURATION)
        matched = pc.fill_null(pc.is_valid(ex), False).to_numpy(zero_copy_only=False)
        nonempty = pc.fill_null(pc.greater(pc.utf8_length(col), 0), False).to_numpy(zero_copy_only=False)
        total = np.zeros(n)
        good = matched & nonempty
        for name, f in _CANON_FACTORS.items():
            part = ex.field(name)
            txt = pc.if_else(pc.fill_null(pc.equal(part, ""), True), pa.scalar("0"), part)
            fine = pc.fill_null(pc.match_substring_regex(txt, r"^(?:[0-9]+\.?[0-9]*|\.[0-9]+)$"), False)
            good &= fine.to_numpy(zero_copy_only=False)
            safe = pc.if_else(fine, txt, pa.scalar("0"))
            total += pc.cast(safe, pa.float64()).to_numpy(zero_copy_only=False) * f
        sign = pc.fill_null(pc.equal(ex.field("sign"), "-"), False).to_numpy(zero_copy_only=False)
        # "+" / "-" alone, or a sign with nothing after it, is not a duration.
        bare = pc.fill_null(pc.match_substring_regex(col, r"^[-+]?$"), False).to_numpy(zero_copy_only=False)
        good &= ~bare
        total /= 1e9
        vals = np.where(good, np.where(sign, -total, total), np.nan)
        ok = good
        rest = present & ~good
        if rest.any():  # non-canonical order ("1s1h") or errors: per distinct value
            idx = np.nonzero(rest)[0]
            cache: dict[str, float | None] = {}
            for i, v in zip(idx, col.take(pa.array(idx)).to_pylist(), strict=True):
                if v not in cache:
                    try:
                        cache[v] = parse_go_duration(v)
                    except ValueError:
                        cache[v] = None
                if cache[v] is not None:
                    vals[i] = cache[v]
                    ok[i] = True
    elif kind == "bytes":
        ex = pc.extract_regex(col, r"^(?P<num>[0-9.,]*)(?P<unit>.*)$")
        num = pc.replace_substring(ex.field("num"), ",", "")
        numok = pc.fill_null(pc.match_substring_regex(num, r"^(?:[0-9]+\.?[0-9]*|\.[0-9]+)$"), False)
        unit = pc.utf8_lower(pc.utf8_trim_whitespace(ex.field("unit")))
        keys = list(_BYTES_TABLE)
        uidx = pc.index_in(unit, value_set=pa.array(keys))
        unitok = pc.is_valid(uidx)
        okarr = pc.and_(numok, unitok)
        ok = pc.fill_null(okarr, False).to_numpy(zero_copy_only=False)
        mult = np.array([float(_BYTES_TABLE[k]) for k in keys])
        ui = pc.fill_null(uidx, 0).to_numpy(zero_copy_only=False)
        f = pc.cast(pc.if_else(numok, num, pa.scalar("0")), pa.float64()).to_numpy(zero_copy_only=False)
        vals = np.where(ok, np.floor(f * mult[ui]), np.nan)
    else:
        raise ValueError(kind)
    ok = ok & present
    errors = _errors_for(col, present & ~ok, kind)
    return vals, ok, errors


def literal_value(kind: str, text: str) -> float:
    """The value of a label-filter literal (durations in seconds, bytes as a count)."""
    if kind == "duration":
        return parse_go_duration(text, literal=True)
    if kind == "bytes":
        return parse_go_bytes(text)
    return float(text)
