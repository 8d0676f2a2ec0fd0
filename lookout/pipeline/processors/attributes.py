"""The ``attributes`` and ``resource`` processors (the Collector's attributesprocessor and
resourceprocessor).

Both apply an ordered list of actions to KeyValue lists: ``attributes`` to span attributes
(traces), log record attributes (logs) or data point attributes (metrics), ``resource`` to
resource attributes. The actions and their edge cases follow the Collector's ``attraction``
package, so configs carry over: insert / update / upsert (``value`` or ``from_attribute``),
delete and hash (``key`` and/or ``pattern`` over keys), extract (named groups of ``pattern``
upserted as string attributes), convert (``converted_type`` string / int / double). hash is the
hex SHA-256 of the value's bytes as the Collector hashes them (UTF-8 string, 8-byte
little-endian int64 / float64 bits, one byte for a bool; any other type, and the empty string,
becomes ``""``).

Vectorized: every list of the request is flattened once into (parent index, key, AnyValue)
columns, each action is a few Arrow kernels plus numpy index arithmetic over those columns,
and the lists are rebuilt once with offsets from ``bincount(parent)``. Regular expressions run
in Arrow's RE2 — the engine family Go's ``regexp`` belongs to, so patterns mean the same thing.
Hashing and number formatting loop in Python over *distinct* values only.

Not supported (config errors, never silently ignored): ``from_context`` (request metadata is
not available to processors), map/list ``value``s, match keys ``libraries``, ``span_kinds``,
``log_severity_number``, ``regexp`` (cache settings); converting a map/list to a string
leaves it unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.pipeline.otlp_view import OtlpBatch, any_values, key_value_lists
from lookout.pipeline.stats import ProcessorStats

_ACTIONS = ("insert", "update", "upsert", "delete", "hash", "extract", "convert")
_ACTION_KEYS = {"key", "action", "value", "from_attribute", "from_context", "pattern",
                "converted_type"}
_CONVERT_TYPES = ("string", "int", "double")
#: the item site and context each signal's ``attributes`` processor works on
_SITES = {"traces": "span", "logs": "log", "metrics": "datapoint"}
_MATCH_KEYS = {
    "traces": {"services", "span_names", "attributes", "resources"},
    "logs": {"attributes", "resources", "log_bodies", "log_severity_texts"},
    "metrics": {"metric_names", "attributes", "resources"},
}
_UNSUPPORTED_MATCH = {"libraries", "span_kinds", "log_severity_number", "regexp"}


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Action:
    """One validated action."""

    action: str
    key: str = ""
    value: Any = None
    has_value: bool = False
    from_attribute: str = ""
    pattern: str = ""
    groups: list[str] = field(default_factory=list)
    converted_type: str = ""


def _regex_problem(pattern: str) -> str | None:
    """Why Arrow's RE2 rejects ``pattern`` (None when it compiles)."""
    try:
        pc.match_substring_regex(pa.array([""], pa.string()), pattern=pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        return str(exc)
    return None


def parse_actions(raw: Any, path: str, problems: list[str]) -> list[Action]:
    """Validate an ``actions`` list as the Collector's ``NewAttrProc`` does."""
    if not isinstance(raw, list) or not raw:
        problems.append(f"{path}: expected a non-empty list of actions")
        return []
    out: list[Action] = []
    for i, entry in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        before = len(problems)
        for k in entry:
            if k not in _ACTION_KEYS:
                problems.append(f"{where}.{k}: unknown key (expected one of "
                                f"{', '.join(sorted(_ACTION_KEYS))})")
        name = entry.get("action")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.action: missing (one of {', '.join(_ACTIONS)})")
            continue
        name = name.lower()
        if name not in _ACTIONS:
            problems.append(f"{where}.action: unsupported action {entry['action']!r} "
                            f"(one of {', '.join(_ACTIONS)})")
            continue
        key = entry.get("key") or ""
        if not isinstance(key, str):
            problems.append(f"{where}.key: expected a string")
            key = ""
        pattern = entry.get("pattern") or ""
        if not isinstance(pattern, str):
            problems.append(f"{where}.pattern: expected a string")
            pattern = ""
        has_value = "value" in entry and entry["value"] is not None
        from_attr = entry.get("from_attribute") or ""
        converted = entry.get("converted_type") or ""
        if entry.get("from_context"):
            problems.append(f"{where}.from_context: not supported (request metadata is not "
                            "available to processors); use value or from_attribute")
        sources = int(has_value) + int(bool(from_attr)) + int(bool(entry.get("from_context")))
        act = Action(name, key=key, has_value=has_value, from_attribute=from_attr)
        if name in ("delete", "hash"):
            if not key and not pattern:
                problems.append(f"{where}: {name} needs key and/or pattern")
        elif not key:
            problems.append(f"{where}.key: missing")
        if name in ("insert", "update", "upsert"):
            if sources == 0:
                problems.append(f"{where}: {name} needs one of value, from_attribute")
            elif sources > 1:
                problems.append(f"{where}: {name} takes only one of value, from_attribute, "
                                "from_context")
            if pattern:
                problems.append(f"{where}.pattern: not used by {name}")
            if has_value:
                v = entry["value"]
                if not isinstance(v, (str, bool, int, float)):
                    problems.append(f"{where}.value: only string, int, double and bool values "
                                    f"are supported, got {type(v).__name__}")
                elif isinstance(v, int) and not isinstance(v, bool) and not -2**63 <= v < 2**63:
                    problems.append(f"{where}.value: {v} does not fit int64")
                act.value = v
        elif name in ("delete", "hash"):
            if has_value or from_attr:
                problems.append(f"{where}: {name} does not use value or from_attribute")
        elif name == "extract":
            if sources:
                problems.append(f"{where}: extract does not use value, from_attribute or "
                                "from_context")
            if not pattern:
                problems.append(f"{where}.pattern: missing (extract needs a pattern with "
                                "named groups)")
        elif name == "convert":
            if sources or pattern:
                problems.append(f"{where}: convert does not use value sources or pattern")
            if not converted:
                problems.append(f"{where}.converted_type: missing (one of string, int, double)")
            elif converted not in _CONVERT_TYPES:
                problems.append(f"{where}.converted_type: invalid {converted!r} "
                                "(one of string, int, double)")
        if converted and name != "convert":
            problems.append(f"{where}.converted_type: not used by {name}")
        if pattern:
            why = _regex_problem(pattern)
            if why is not None:
                problems.append(f"{where}.pattern: invalid regular expression {pattern!r}: {why}")
            elif name == "extract":
                try:
                    typ = pc.extract_regex(pa.array([""], pa.string()), pattern=pattern).type
                    act.groups = [f.name for f in typ]
                except pa.ArrowInvalid:
                    act.groups = []
                if not act.groups:
                    problems.append(f"{where}.pattern: extract needs named groups only "
                                    f"((?P<name>...)), got {pattern!r}")
        act.pattern = pattern
        act.converted_type = converted
        if len(problems) == before:
            out.append(act)
    return out


@dataclass(slots=True)
class _AttrMatch:
    key: str
    has_value: bool
    value: Any


@dataclass(slots=True)
class MatchProperties:
    """One ``include``/``exclude`` block: properties AND-ed, list entries OR-ed."""

    regexp: bool
    strings: dict[str, list[str]]  # services / span_names / log_* / metric_names
    attributes: list[_AttrMatch]
    resources: list[_AttrMatch]


def _parse_kv_matches(raw: Any, where: str, regexp: bool, problems: list[str]) -> list[_AttrMatch]:
    if not isinstance(raw, list):
        problems.append(f"{where}: expected a list of {{key, value}}")
        return []
    out = []
    for i, e in enumerate(raw):
        if not isinstance(e, dict) or not isinstance(e.get("key"), str) or not e["key"]:
            problems.append(f"{where}[{i}].key: missing")
            continue
        for k in e:
            if k not in ("key", "value"):
                problems.append(f"{where}[{i}].{k}: unknown key (expected key, value)")
        v = e.get("value")
        if v is not None and not isinstance(v, (str, bool, int, float)):
            problems.append(f"{where}[{i}].value: expected a scalar")
            continue
        if regexp and v is not None:
            if not isinstance(v, str):
                problems.append(f"{where}[{i}].value: match_type regexp needs a string pattern")
                continue
            why = _regex_problem(v)
            if why is not None:
                problems.append(f"{where}[{i}].value: invalid regular expression: {why}")
                continue
        out.append(_AttrMatch(e["key"], v is not None, v))
    return out


def parse_match(raw: Any, signal: str, where: str, problems: list[str]) -> MatchProperties | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a mapping")
        return None
    before = len(problems)
    mt = raw.get("match_type")
    if mt not in ("strict", "regexp"):
        problems.append(f"{where}.match_type: must be strict or regexp, got {mt!r}")
    regexp = mt == "regexp"
    allowed = _MATCH_KEYS[signal]
    strings: dict[str, list[str]] = {}
    attrs: list[_AttrMatch] = []
    resources: list[_AttrMatch] = []
    for k, v in raw.items():
        if k == "match_type":
            continue
        if k in _UNSUPPORTED_MATCH:
            problems.append(f"{where}.{k}: not supported; use a filter processor with OTTL")
            continue
        if k not in allowed:
            problems.append(f"{where}.{k}: unknown or not valid for {signal} (expected "
                            f"{', '.join(sorted(allowed))})")
            continue
        if k == "attributes":
            attrs = _parse_kv_matches(v, f"{where}.{k}", regexp, problems)
        elif k == "resources":
            resources = _parse_kv_matches(v, f"{where}.{k}", regexp, problems)
        else:
            if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
                problems.append(f"{where}.{k}: expected a list of strings")
                continue
            if regexp:
                for i, s in enumerate(v):
                    why = _regex_problem(s)
                    if why is not None:
                        problems.append(f"{where}.{k}[{i}]: invalid regular expression: {why}")
            strings[k] = list(v)
    if not strings and not attrs and not resources and len(problems) == before:
        problems.append(f"{where}: at least one of {', '.join(sorted(allowed))} is required")
    if len(problems) > before:
        return None
    return MatchProperties(regexp, strings, attrs, resources)


# --------------------------------------------------------------------------------------------
# Matching (include / exclude)
# --------------------------------------------------------------------------------------------

_STRING_PATHS = {
    "services": (("resource", "attributes"), ("service.name",)),
    "span_names": (("name",), ()),
    "log_bodies": (("body",), ()),
    "log_severity_texts": (("severity_text",), ()),
    "metric_names": (("metric", "name"), ()),
}


def _np(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _string_match(arr: pa.Array, patterns: list[str], regexp: bool) -> np.ndarray:
    if regexp:
        out = np.zeros(len(arr), np.bool_)
        for p in patterns:
            out |= _np(pc.match_substring_regex(arr, pattern=p).fill_null(False))
        return out
    return _np(pc.is_in(arr, value_set=pa.array(patterns, pa.string())).fill_null(False))


def _kv_match(ctx: Any, prefix: tuple[str, ...], m: _AttrMatch, regexp: bool) -> np.ndarray:
    v = ctx.values(prefix + ("attributes",), (m.key,))
    if not m.has_value:
        return np.asarray(v.present, np.bool_)
    if regexp:
        return _np(pc.match_substring_regex(v.str, pattern=m.value).fill_null(False))
    val = m.value
    if isinstance(val, bool):
        arr = pc.equal(v.bool, val)
    elif isinstance(val, int):
        arr = pc.equal(v.int, val)
    elif isinstance(val, float):
        arr = pc.equal(v.dbl, val)
    else:
        arr = pc.equal(v.str, val)
    return _np(arr.fill_null(False))


def match_mask(batch: OtlpBatch, kind: str, mp: MatchProperties) -> np.ndarray:
    """Per item of ``kind``: does it satisfy every property of ``mp``?"""
    ctx = batch.context(kind)
    out = np.ones(len(ctx), np.bool_)
    for k, patterns in mp.strings.items():
        fields, keys = _STRING_PATHS[k]
        v = ctx.values(fields, keys)
        out &= _string_match(v.str, patterns, mp.regexp)
    for m in mp.attributes:
        out &= _kv_match(ctx, (), m, mp.regexp)
    for m in mp.resources:
        out &= _kv_match(ctx, ("resource",), m, mp.regexp)
    return out


# --------------------------------------------------------------------------------------------
# Vectorized actions over flattened KeyValue lists
# --------------------------------------------------------------------------------------------


class _Flat:
    """Every KeyValue of ``n`` lists as columns: parent (non-decreasing), key, AnyValue."""

    def __init__(self, lists: pa.ListArray) -> None:
        self.list_type = lists.type
        self.n = len(lists)
        offs = lists.offsets.to_numpy().astype(np.int64)
        flat = lists.values.slice(int(offs[0]), int(offs[-1] - offs[0]))
        self.parent = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(offs))
        self.keys: pa.Array = flat.field("key")
        self.values: pa.Array = flat.field("value")
        self.value_type: pa.StructType = self.values.type
        self.changed = False

    def to_lists(self) -> pa.ListArray:
        offsets = np.zeros(self.n + 1, np.int64)
        np.cumsum(np.bincount(self.parent, minlength=self.n), out=offsets[1:])
        return key_value_lists(self.list_type, offsets, self.keys, self.values)

    # -- lookups --------------------------------------------------------------------------

    def key_rows(self, key: str) -> np.ndarray:
        return _np(pc.equal(self.keys, key)) if len(self.keys) else np.zeros(0, np.bool_)

    def pattern_rows(self, pattern: str) -> np.ndarray:
        if not len(self.keys):
            return np.zeros(0, np.bool_)
        return _np(pc.match_substring_regex(self.keys, pattern=pattern))

    def first(self, key: str) -> np.ndarray:
        """Per list: the row of the first ``key`` (pcommon ``Map.Get``), or -1."""
        pos = np.full(self.n, -1, np.int64)
        hit = np.flatnonzero(self.key_rows(key))
        if hit.size:
            par = self.parent[hit]
            first = np.ones(hit.size, np.bool_)
            first[1:] = par[1:] != par[:-1]
            pos[par[first]] = hit[first]
        return pos

    # -- edits ----------------------------------------------------------------------------

    def set_values(self, rows: np.ndarray, new: pa.Array) -> None:
        if not len(rows):
            return
        idx = np.arange(len(self.values), dtype=np.int64)
        idx[rows] = len(self.values) + np.arange(len(rows), dtype=np.int64)
        self.values = pa.concat_arrays([self.values, new]).take(pa.array(idx))
        self.changed = True

    def append(self, parents: np.ndarray, key: str, new: pa.Array) -> None:
        if not len(parents):
            return
        parent = np.concatenate([self.parent, parents])
        order = pa.array(np.argsort(parent, kind="stable"))
        self.parent = parent[order.to_numpy()]
        keys = pa.concat_arrays([self.keys, pa.array([key] * len(parents), self.keys.type)])
        self.keys = keys.take(order)
        self.values = pa.concat_arrays([self.values, new]).take(order)
        self.changed = True

    def remove(self, rows: np.ndarray) -> None:
        if not rows.any():
            return
        keep = pa.array(~rows)
        self.parent = self.parent[~rows]
        self.keys = self.keys.filter(keep)
        self.values = self.values.filter(keep)
        self.changed = True

    def assign(self, key: str, parents: np.ndarray, new: pa.Array, mode: str) -> None:
        """Insert/update/upsert ``key`` := ``new[i]`` in list ``parents[i]``."""
        pos = self.first(key)[parents]
        if mode in ("update", "upsert"):
            sel = pos >= 0
            self.set_values(pos[sel], new.filter(pa.array(sel)))
        if mode in ("insert", "upsert"):
            sel = pos < 0
            self.append(parents[sel], key, new.filter(pa.array(sel)))

    # -- values ---------------------------------------------------------------------------

    def constant(self, value: Any, n: int) -> pa.Array:
        if isinstance(value, bool):
            one = any_values(self.value_type, bool=pa.array([value]))
        elif isinstance(value, int):
            one = any_values(self.value_type, int=pa.array([value], pa.int64()))
        elif isinstance(value, float):
            one = any_values(self.value_type, dbl=pa.array([value], pa.float64()))
        else:
            one = any_values(self.value_type, str=pa.array([str(value)], pa.string()))
        return one.take(pa.array(np.zeros(n, np.int64)))

    def strings(self, values: pa.Array) -> pa.Array:
        return any_values(self.value_type, str=values)


def _typed(values: pa.Array) -> dict[str, pa.Array]:
    return {name: values.field(name) for name in
            ("string_value", "int_value", "double_value", "bool_value", "bytes_value")}


def _hash_values(values: pa.Array) -> pa.Array:
    """The Collector's ``sha2Hasher`` per AnyValue, as strings.

    Python hashes each *distinct* value once; rows get their digest by numpy fancy indexing.
    Ints and doubles are hashed as their 8 little-endian bytes (int64 / float64 bits), which
    is also what they are deduplicated on (so -0.0 and 0.0 stay different, as in Go).
    """
    n = len(values)
    t = _typed(values)
    out = np.full(n, "", dtype=object)
    s = t["string_value"]
    rows = np.flatnonzero(_np(s.is_valid()))
    if rows.size:
        enc = s.take(pa.array(rows)).dictionary_encode()
        digests = np.array([hashlib.sha256(x.encode()).hexdigest() if x else ""
                            for x in enc.dictionary.to_pylist()], dtype=object)
        out[rows] = digests[enc.indices.to_numpy()]
    for name in ("int_value", "double_value"):
        col = t[name]
        rows = np.flatnonzero(_np(col.is_valid()))
        if rows.size:
            bits = col.take(pa.array(rows)).to_numpy(zero_copy_only=False).view(np.int64)
            uniq, inv = np.unique(bits, return_inverse=True)
            digests = np.array([hashlib.sha256(struct.pack("<q", u)).hexdigest()
                                for u in uniq.tolist()], dtype=object)
            out[rows] = digests[inv]
    col = t["bool_value"]
    rows = np.flatnonzero(_np(col.is_valid()))
    if rows.size:
        pair = np.array([hashlib.sha256(b"\x00").hexdigest(), hashlib.sha256(b"\x01").hexdigest()],
                        dtype=object)
        out[rows] = pair[_np(col.take(pa.array(rows))).astype(np.int64)]
    return pa.array(out, pa.string())


def _format_double(f: float) -> str:
    """pcommon ``Value.AsString`` for a double (ES6 number-to-string, as Go's JSON encoder)."""
    if f != f or f in (float("inf"), float("-inf")):
        g = "NaN" if f != f else ("+Inf" if f > 0 else "-Inf")
        return f"json: unsupported value: {g}"
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = repr(f)  # shortest round-trip digits, exponent form
        mant, _, exp = s.partition("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        return f"{mant}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return np.format_float_positional(f, unique=True, trim="-")


def _convert(values: pa.Array, to: str) -> tuple[np.ndarray, pa.Array]:
    """(rows that change, their new AnyValues) for the Collector's ``convertValue``."""
    n = len(values)
    t = _typed(values)
    vt = values.type
    s_valid = _np(t["string_value"].is_valid())
    i_valid = _np(t["int_value"].is_valid())
    d_valid = _np(t["double_value"].is_valid())
    b_valid = _np(t["bool_value"].is_valid())
    if to == "string":
        bytes_valid = _np(t["bytes_value"].is_valid())
        out = pc.cast(t["int_value"], pa.string())
        out = pc.coalesce(out, pc.cast(t["bool_value"], pa.string()))
        drows = np.flatnonzero(d_valid)
        if drows.size:
            dvals = t["double_value"].take(pa.array(drows)).to_numpy(zero_copy_only=False)
            uniq, inv = np.unique(dvals, return_inverse=True)
            text = np.array([_format_double(u) for u in uniq.tolist()], dtype=object)[inv]
            full = np.full(n, None, dtype=object)
            full[drows] = text
            out = pc.coalesce(out, pa.array(full, pa.string()))
        brows = np.flatnonzero(bytes_valid)
        if brows.size:
            full = np.full(n, None, dtype=object)
            full[brows] = [base64.b64encode(b).decode() for b in
                           t["bytes_value"].take(pa.array(brows)).to_pylist()]
            out = pc.coalesce(out, pa.array(full, pa.string()))
        # an empty AnyValue reads as "" (maps and lists would be JSON: left as they are)
        empty = ~(s_valid | i_valid | d_valid | b_valid | bytes_valid)
        empty &= ~_np(values.field("array_value").is_valid())
        empty &= ~_np(values.field("kvlist_value").is_valid())
        out = pc.if_else(pa.array(empty), pa.scalar("", pa.string()), out)
        change = ~s_valid & _np(out.is_valid())
        return change, any_values(vt, str=out.filter(pa.array(change)))
    if to == "int":
        ints = pc.cast(pc.trunc(t["double_value"]), pa.int64(), safe=False)
        ints = pc.coalesce(ints, pc.cast(t["bool_value"], pa.int64()))
        srows = np.flatnonzero(s_valid)
        if srows.size:
            enc = t["string_value"].take(pa.array(srows)).dictionary_encode()
            parsed = [_parse_int(x) for x in enc.dictionary.to_pylist()]
            full = np.full(n, None, dtype=object)
            full[srows] = np.array(parsed, dtype=object)[enc.indices.to_numpy()]
            ints = pc.coalesce(ints, pa.array(full, pa.int64()))
        change = ~i_valid & _np(ints.is_valid())
        return change, any_values(vt, int=ints.filter(pa.array(change)))
    dbls = pc.cast(t["int_value"], pa.float64())
    dbls = pc.coalesce(dbls, pc.cast(pc.cast(t["bool_value"], pa.int64()), pa.float64()))
    srows = np.flatnonzero(s_valid)
    if srows.size:
        enc = t["string_value"].take(pa.array(srows)).dictionary_encode()
        parsed = [_parse_float(x) for x in enc.dictionary.to_pylist()]
        full = np.full(n, None, dtype=object)
        full[srows] = np.array(parsed, dtype=object)[enc.indices.to_numpy()]
        dbls = pc.coalesce(dbls, pa.array(full, pa.float64()))
    change = ~d_valid & _np(dbls.is_valid())
    return change, any_values(vt, dbl=dbls.filter(pa.array(change)))


def _parse_int(s: str) -> int | None:
    """Go ``strconv.ParseInt(s, 10, 64)``: optional sign, ASCII digits, int64 range."""
    body = s[1:] if s[:1] in "+-" else s
    if not body or not body.isascii() or not body.isdigit():
        return None
    v = int(s)
    return v if -2**63 <= v < 2**63 else None


def _parse_float(s: str) -> float | None:
    """Go ``strconv.ParseFloat(s, 64)`` close enough: no blanks or underscores (Python's
    ``float`` accepts both), otherwise the same literals including inf/nan."""
    if not s or s != s.strip() or "_" in s:
        return None
    try:
        return float(s)
    except ValueError:
        if s.lower().startswith(("0x", "+0x", "-0x")):
            try:
                return float.fromhex(s)
            except ValueError:
                return None
        return None


def apply_actions(lists: pa.ListArray, actions: list[Action]) -> pa.ListArray | None:
    """The lists after every action, or None when nothing changed."""
    kv = _Flat(lists)
    all_lists = np.arange(kv.n, dtype=np.int64)
    for a in actions:
        if a.action in ("insert", "update", "upsert"):
            if a.has_value:
                kv.assign(a.key, all_lists, kv.constant(a.value, kv.n), a.action)
            else:
                src = kv.first(a.from_attribute)
                has = np.flatnonzero(src >= 0)
                kv.assign(a.key, has, kv.values.take(pa.array(src[has])), a.action)
        elif a.action == "delete":
            rows = kv.key_rows(a.key) if a.key else np.zeros(len(kv.keys), np.bool_)
            if a.pattern:
                rows |= kv.pattern_rows(a.pattern)
            kv.remove(rows)
        elif a.action == "hash":
            rows = kv.key_rows(a.key) if a.key else np.zeros(len(kv.keys), np.bool_)
            if a.pattern:
                rows |= kv.pattern_rows(a.pattern)
            idx = np.flatnonzero(rows)
            if idx.size:
                hashed = _hash_values(kv.values.take(pa.array(idx)))
                kv.set_values(idx, kv.strings(hashed))
        elif a.action == "extract":
            pos = kv.first(a.key)
            has = np.flatnonzero(pos >= 0)
            if not has.size:
                continue
            src = kv.values.take(pa.array(pos[has])).field("string_value")
            got = pc.extract_regex(src, pattern=a.pattern)
            matched = _np(got.is_valid())
            parents = has[matched]
            if not parents.size:
                continue
            got = got.filter(pa.array(matched))
            for name in a.groups:
                kv.assign(name, parents, kv.strings(got.field(name)), "upsert")
        elif a.action == "convert":
            pos = kv.first(a.key)
            rows = pos[pos >= 0]
            if rows.size:
                change, new = _convert(kv.values.take(pa.array(rows)), a.converted_type)
                kv.set_values(rows[change], new)
    return kv.to_lists() if kv.changed else None


# --------------------------------------------------------------------------------------------
# Processors
# --------------------------------------------------------------------------------------------


class AttributesProcessor:
    """Applies actions to the item attributes (or, as ``resource``, resource attributes)."""

    def __init__(self, name: str, signal: str, site: str, actions: list[Action],
                 include: MatchProperties | None = None,
                 exclude: MatchProperties | None = None) -> None:
        self.name = name
        self.signal = signal
        self.site = site
        self.actions = actions
        self.include = include
        self.exclude = exclude
        self.stats = ProcessorStats(signal, name)

    def _selected(self, batch: OtlpBatch) -> np.ndarray | None:
        if self.include is None and self.exclude is None:
            return None
        sel = np.ones(len(batch.context(self.site)), np.bool_)
        if self.include is not None:
            sel &= match_mask(batch, self.site, self.include)
        if self.exclude is not None:
            sel &= ~match_mask(batch, self.site, self.exclude)
        return sel

    def process(self, batch: OtlpBatch, tenant: str) -> None:
        lists = batch.attributes(self.site)
        self.stats.add("received_items", batch.item_count())
        sel = self._selected(batch)
        if sel is None:
            new = apply_actions(lists, self.actions)
        else:
            idx = np.flatnonzero(sel)
            if not idx.size:
                return
            sub = apply_actions(lists.take(pa.array(idx)), self.actions)
            if sub is None:
                return
            # selected lists come from ``sub``, the others stay: one take over both
            order = np.arange(len(lists), dtype=np.int64)
            order[idx] = len(lists) + np.arange(idx.size, dtype=np.int64)
            sub = sub if sub.type == lists.type else sub.cast(lists.type)
            new = pa.concat_arrays([lists, sub]).take(pa.array(order))
        if new is not None:
            batch.set_attributes(self.site, new)
            self.stats.add("modified_items", len(lists) if sel is None else int(sel.sum()))


def build_attributes(name: str, raw: Any, *, signal: str, path: str,
                     problems: list[str]) -> AttributesProcessor | None:
    """Validate an ``attributes`` config entry (Collector attributesprocessor)."""
    return _build(name, raw, signal=signal, path=path, problems=problems, resource=False)


def build_resource(name: str, raw: Any, *, signal: str, path: str,
                   problems: list[str]) -> AttributesProcessor | None:
    """Validate a ``resource`` config entry (Collector resourceprocessor: ``attributes:``)."""
    return _build(name, raw, signal=signal, path=path, problems=problems, resource=True)


def _build(name: str, raw: Any, *, signal: str, path: str, problems: list[str],
           resource: bool) -> AttributesProcessor | None:
    start = len(problems)
    if not isinstance(raw, dict):
        problems.append(f"{path}: expected a mapping")
        return None
    list_key = "attributes" if resource else "actions"
    allowed = {list_key} if resource else {"actions", "include", "exclude"}
    for k in raw:
        if k not in allowed:
            problems.append(f"{path}.{k}: unknown key (expected {', '.join(sorted(allowed))})")
    if list_key not in raw:
        problems.append(f"{path}.{list_key}: missing")
        return None
    actions = parse_actions(raw[list_key], f"{path}.{list_key}", problems)
    include = exclude = None
    if not resource:
        if signal not in _SITES:
            problems.append(f"{path}: unknown signal {signal!r}")
            return None
        if raw.get("include") is not None:
            include = parse_match(raw["include"], signal, f"{path}.include", problems)
        if raw.get("exclude") is not None:
            exclude = parse_match(raw["exclude"], signal, f"{path}.exclude", problems)
    if len(problems) > start:
        return None
    site = "resource" if resource else _SITES[signal]
    return AttributesProcessor(name, signal, site, actions, include, exclude)
