"""PromQL conformance runner over Prometheus' own promqltest scripts (read in place, never copied).

Implements the ``.test`` format described in ``../shared/conformance/promql/FORMAT.md``: ``load``
blocks, ``clear``, ``eval instant|range`` with expected series, ``expect fail|ordered|string|
range vector`` and the deprecated ``eval_fail``/``eval_ordered``/... forms. The data store and the
query engine sit behind :class:`Backend` (``InProcessBackend`` here; an HTTP backend can drive a
live server), and all comparison is done on the Prometheus API JSON envelope, so it does not
depend on the backend.

Annotations (``expect warn|info|no_warn|no_info``) are checked against the envelope's
``warnings``/``infos`` (presence or absence of the kind; the text when ``msg:``/``regex:`` is
given). Skipped (and counted as skipped): evals expecting native histograms (``{{...}}`` in the
expected output), evals whose query may read a histogram sample (a selector matches a series
loaded with ``{{...}}`` samples, or a series synthesised by ``load_with_nhcb``, and the
selector's read window -- after ``@``, ``offset``, range, subquery range and lookback -- contains
one of its histogram timestamps), evals after start-timestamp (``@st``) loads, and queries our
parser cannot parse (experimental syntax such as duration expressions) unless a failure was
expected anyway. The float samples of mixed float/histogram series are loaded.

Usage: ``python conformance/run_promql.py [--backend inprocess] [-v] [files...]``.
"""

from __future__ import annotations

import argparse
import math
import re
import struct
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "promql" / "testdata"
STALE_BITS = 0x7FF0000000000002
STALE = struct.unpack("<d", struct.pack("<Q", STALE_BITS))[0]

# --------------------------------------------------------------------------------------------------
# The script format


_DUR_RE = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DUR_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}


def parse_duration(s: str) -> int:
    """A Prometheus duration (``1m30s``, ``0``, ``10s53ms``; bare integers are seconds) in ms."""
    s = s.strip()
    if re.fullmatch(r"\d+", s):
        return int(s) * 1000
    pos, total = 0, 0
    for m in _DUR_RE.finditer(s):
        if m.start() != pos:
            raise ValueError(f"bad duration {s!r}")
        total += int(m.group(1)) * _DUR_MS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"bad duration {s!r}")
    return total


_NUM = r"[+-]?(?:[Ii]nf|NaN|nan|(?:\d[\d_]*\.?[\d_]*|\.\d+)(?:[eE][+-]?\d+)?)"
_UNUM = r"(?:[Ii]nf|NaN|nan|(?:\d[\d_]*\.?[\d_]*|\.\d+)(?:[eE][+-]?\d+)?)"
_EXPAND = re.compile(rf"^({_NUM})([+-])({_UNUM})x(\d+)$")
_REPEAT = re.compile(rf"^({_NUM})x(\d+)$")
_OMIT = re.compile(r"^_x(\d+)$")


def _num(s: str) -> float:
    return float(s.replace("_", ""))


class HistogramSample(Exception):
    """A ``{{...}}`` native-histogram item was met (handled by :func:`_parse_mixed`)."""


def parse_values(text: str) -> list[float | None]:
    """Expand a value sequence; ``None`` = omitted position, :data:`STALE` = stale marker."""
    if "{{" in text:
        raise HistogramSample()
    out: list[float | None] = []
    for item in text.split():
        if item == "_":
            out.append(None)
        elif item == "stale":
            out.append(STALE)
        elif m := _OMIT.match(item):
            out.extend([None] * int(m.group(1)))
        elif m := _EXPAND.match(item):
            a, sign, b, n = _num(m.group(1)), m.group(2), _num(m.group(3)), int(m.group(4))
            b = -b if sign == "-" else b
            cur = a
            out.append(cur)
            for _ in range(n):
                cur += b
                out.append(cur)
        elif m := _REPEAT.match(item):
            out.extend([_num(m.group(1))] * (int(m.group(2)) + 1))
        else:
            out.append(_num(item))
    return out


def _split_series(line: str) -> tuple[str, str]:
    """Split ``name{l="v", ...} values`` into the series part and the rest."""
    line = line.strip()
    i, n, depth, quote = 0, len(line), 0, None
    while i < n:
        c = line[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'`" and depth:
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return line[: i + 1], line[i + 1:]
        elif c.isspace() and depth == 0:
            return line[:i], line[i:]
        i += 1
    return line, ""


def parse_labels(series: str) -> dict[str, str]:
    import promql_parser as pp

    if series.strip() == "{}":
        return {}
    node = pp.parse(series)
    labels = {m.name: m.value for m in node.matchers.matchers}
    if node.name:
        labels["__name__"] = node.name
    return {k: v for k, v in labels.items() if v != ""}


@dataclass
class Expected:
    labels: dict[str, str]
    values: list[float | None]


@dataclass
class Eval:
    file: str
    line: int
    query: str
    kind: str  # instant | range
    t_ms: int = 0
    start_ms: int = 0
    end_ms: int = 0
    step_ms: int = 0
    fail: bool = False
    fail_msg: str | None = None
    fail_regex: str | None = None
    ordered: bool = False
    string: str | None = None
    range_vector: tuple[int, int, int] | None = None
    scalar: float | None = None
    series: list[Expected] = field(default_factory=list)
    skip: str | None = None
    # expected annotations: kind ("warn"/"info") -> list of (mode, text), mode None/"msg"/"regex"
    annos: dict[str, list[tuple[str | None, str]]] = field(default_factory=dict)
    no_annos: set[str] = field(default_factory=set)  # "warn" / "info" for no_warn / no_info


@dataclass
class Load:
    interval_ms: int
    series: list[tuple[dict[str, str], np.ndarray, np.ndarray]]
    native: list[tuple[dict[str, str], np.ndarray]]  # series with histogram samples, and their times
    start_ts: bool = False


@dataclass
class Clear:
    pass


def _unquote_go(s: str) -> str:
    s = s.strip()
    if s.startswith("`") and s.endswith("`"):
        return s[1:-1]
    import ast as pyast

    return pyast.literal_eval(s)


def parse_script(path: Path) -> list:
    lines = path.read_text().splitlines()
    cmds: list = []
    i = 0
    name = path.name
    while i < len(lines):
        raw = lines[i].strip()
        if not raw or raw.startswith("#"):
            i += 1
            continue
        start_line = i + 1
        body = []
        j = i + 1
        while j < len(lines):
            b = lines[j].strip()
            if not b or b.startswith("#"):
                break
            body.append((j + 1, b))
            j += 1
        word = raw.split()[0].lower()
        if word == "clear":
            cmds.append(Clear())
            j = i + 1
        elif word.startswith("load"):
            cmds.append(_parse_load(raw, body))
        elif word.startswith("eval"):
            cmds.append(_parse_eval(name, start_line, raw, body))
        else:
            raise ValueError(f"{name}:{start_line}: unknown command {raw!r}")
        i = j
    return cmds


_HIST_ITEM = re.compile(r"\{\{[^}]*\}\}(?:[+-]\{\{[^}]*\}\})?(?:x(\d+))?")


def _split_items(text: str) -> list[str]:
    """Whitespace-separated items of a value sequence, keeping ``{{...}}`` literals (and their
    ``{{a}}+{{b}}xN`` / ``{{a}}xN`` expansions) whole."""
    items, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        m = _HIST_ITEM.match(text, i)
        if m:
            items.append(m.group(0))
            i = m.end()
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        items.append(text[i:j])
        i = j
    return items


def _parse_mixed(text: str) -> tuple[list[float | None], list[int]]:
    """A value sequence that may hold native histograms: the float positions (histogram
    positions as ``None``) and the indices of the histogram positions."""
    values: list[float | None] = []
    hist: list[int] = []
    for item in _split_items(text):
        m = _HIST_ITEM.fullmatch(item)
        if m:
            k = int(m.group(1)) + 1 if m.group(1) else 1
            hist.extend(range(len(values), len(values) + k))
            values.extend([None] * k)
        else:
            values.extend(parse_values(item))
    return values, hist


def _parse_load(head: str, body) -> Load:
    parts = head.split()
    interval = parse_duration(parts[1])
    nhcb = parts[0].lower() == "load_with_nhcb"
    series, native, start_ts = [], [], False
    nhcb_ts: dict[tuple, tuple[dict[str, str], set[int]]] = {}
    for _, line in body:
        sp, vals = _split_series(line)
        if sp.endswith("@st") or vals.startswith("@st"):
            start_ts = True
            continue
        labels = parse_labels(sp)
        values, hist = _parse_mixed(vals)
        if hist:
            native.append((labels, np.array([k * interval for k in hist], np.int64)))
        t = np.array([k * interval for k, x in enumerate(values) if x is not None], np.int64)
        v = np.array([x for x in values if x is not None], np.float64)
        series.append((labels, t, v))
        if nhcb and labels.get("__name__", "").endswith("_bucket"):
            nh = {k: v for k, v in labels.items() if k != "le"}
            nh["__name__"] = labels["__name__"][: -len("_bucket")]
            entry = nhcb_ts.setdefault(tuple(sorted(nh.items())), (nh, set()))
            entry[1].update(t.tolist())
    for nh, times in nhcb_ts.values():
        native.append((nh, np.array(sorted(times), np.int64)))
    return Load(interval, series, native, start_ts)


def _parse_eval(file: str, line: int, head: str, body) -> Eval:
    m = re.match(r"^(eval(?:_fail|_warn|_info|_ordered)?)\s+instant\s+at\s+(\S+)\s+(.*)$", head)
    if m:
        ev = Eval(file, line, m.group(3), "instant", t_ms=parse_duration(m.group(2)))
    else:
        m = re.match(r"^(eval(?:_fail|_warn|_info|_ordered)?)\s+range\s+from\s+(\S+)\s+to\s+(\S+)"
                     r"\s+step\s+(\S+)\s+(.*)$", head)
        if not m:
            raise ValueError(f"{file}:{line}: bad eval {head!r}")
        ev = Eval(file, line, m.group(5), "range", start_ms=parse_duration(m.group(2)),
                  end_ms=parse_duration(m.group(3)), step_ms=parse_duration(m.group(4)))
    variant = m.group(1)
    ev.fail = variant == "eval_fail"
    ev.ordered = variant == "eval_ordered"
    if variant in ("eval_warn", "eval_info"):
        ev.annos.setdefault(variant[5:], []).append((None, ""))
    for _, b in body:
        if b.startswith("expected_fail_message"):
            ev.fail_msg = b[len("expected_fail_message"):].strip()
            continue
        if b.startswith("expected_fail_regexp"):
            ev.fail_regex = b[len("expected_fail_regexp"):].strip()
            continue
        if b.startswith("expect "):
            rest = b[len("expect "):].strip()
            kw = rest.split()[0]
            arg = rest[len(kw):].strip()
            if kw == "fail":
                ev.fail = True
                if arg.startswith("msg:"):
                    ev.fail_msg = arg[4:].strip()
                elif arg.startswith("regex:"):
                    ev.fail_regex = arg[6:].strip()
            elif kw == "ordered":
                ev.ordered = True
            elif kw == "string":
                ev.string = _unquote_go(arg)
            elif kw == "range":
                mm = re.match(r"vector\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)", arg)
                ev.range_vector = (parse_duration(mm.group(1)), parse_duration(mm.group(2)),
                                   parse_duration(mm.group(3)))
            elif kw in ("warn", "info"):
                if arg.startswith("msg:"):
                    ev.annos.setdefault(kw, []).append(("msg", arg[4:].strip()))
                elif arg.startswith("regex:"):
                    ev.annos.setdefault(kw, []).append(("regex", arg[6:].strip()))
                else:
                    ev.annos.setdefault(kw, []).append((None, ""))
            elif kw in ("no_warn", "no_info"):
                ev.no_annos.add(kw[3:])
            continue
        if "{{" in b:
            ev.skip = "native histogram expected"
            continue
        if ev.kind == "instant" and ev.range_vector is None and re.fullmatch(rf"{_NUM}|0[xX][0-9a-fA-F]+", b):
            ev.scalar = float(int(b, 16)) if b.lower().startswith(("0x", "-0x", "+0x")) else _num(b)
            continue
        sp, vals = _split_series(b)
        ev.series.append(Expected(parse_labels(sp), parse_values(vals)))
    return ev


# --------------------------------------------------------------------------------------------------
# Backends


class Backend(Protocol):
    def clear(self) -> None: ...

    def load(self, series: list[tuple[dict[str, str], np.ndarray, np.ndarray]]) -> None: ...

    def instant(self, query: str, t_ms: int) -> dict: ...

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> dict: ...


class InProcessBackend:
    """MemoryQuerier + Engine + result_to_json, wrapped in the HTTP API's JSON envelope."""

    def __init__(self) -> None:
        from lookout.metrics.model import MemoryQuerier
        from lookout.metrics.promql import Engine

        self.q = MemoryQuerier()
        self.engine = Engine(max_samples=50_000_000)

    def clear(self) -> None:
        self.q.clear()

    def load(self, series) -> None:
        for labels, t, v in series:
            self.q.add(labels, t, v)

    def _run(self, fn) -> dict:
        from lookout.metrics.promql import PromQLError, result_to_json

        try:
            res = fn()
        except PromQLError as e:
            return {"status": "error", "errorType": e.error_type, "error": str(e)}
        except Exception as e:  # noqa: BLE001 - an engine bug becomes a reported failure
            tb = traceback.extract_tb(e.__traceback__)[-1]
            return {"status": "error", "errorType": "internal",
                    "error": f"{type(e).__name__}: {e} at {Path(tb.filename).name}:{tb.lineno}"}
        data = result_to_json(res)
        out = {"status": "success", "data": data}
        if res.warnings:
            out["warnings"] = list(res.warnings)
        if res.infos:
            out["infos"] = list(res.infos)
        return out

    def instant(self, query: str, t_ms: int) -> dict:
        return self._run(lambda: self.engine.instant_query(self.q, query, t_ms))

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> dict:
        return self._run(lambda: self.engine.range_query(self.q, query, start_ms, end_ms, step_ms))


# --------------------------------------------------------------------------------------------------
# Comparison


def floats_equal(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    if math.isinf(a) or math.isinf(b):
        return False
    s = min(abs(a) + abs(b), sys.float_info.max)
    if a == 0 or b == 0 or s < 2.2250738585072014e-308:
        return abs(a - b) < 1e-6 * 2.2250738585072014e-308
    return abs(a - b) / s < 1e-6


def _key(labels: dict[str, str]) -> tuple:
    return tuple(sorted(labels.items()))


def _fmt_labels(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


def _t_ms(t) -> int:
    return int(round(float(t) * 1000))


def _anno_matches(mode: str | None, text: str, got: str) -> bool:
    if mode == "msg":
        return got == text
    if mode == "regex":
        return re.search(text, got) is not None
    return True


def compare_annotations(ev: Eval, resp: dict) -> str | None:
    """``expect warn|info [msg:|regex:]`` / ``expect no_warn|no_info`` against the envelope's
    ``warnings`` / ``infos``: each expect line must match a returned annotation of its kind and
    every returned annotation must match some line; kinds without expectations are unchecked."""
    for kind, key in (("warn", "warnings"), ("info", "infos")):
        got = list(resp.get(key) or [])
        want = ev.annos.get(kind, [])
        if kind in ev.no_annos and got:
            return f"expected no {kind}, got {got}"
        if not want:
            continue
        if not got:
            return f"expected {kind} annotation, got none"
        for mode, text in want:
            if not any(_anno_matches(mode, text, g) for g in got):
                return f"no {kind} matches {mode} {text!r}: got {got}"
        for g in got:
            if not any(_anno_matches(mode, text, g) for mode, text in want):
                return f"unexpected {kind} {g!r}"
    return None


def compare(ev: Eval, resp: dict) -> str | None:
    """None when ``resp`` (an API envelope) satisfies the eval, else a short description."""
    if ev.fail:
        if resp.get("status") == "success":
            return "expected failure, query succeeded"
        if resp.get("errorType") == "internal":
            return f"expected failure, got internal error {resp.get('error')}"
        msg = resp.get("error", "")
        msg = re.sub(r'^invalid parameter "query": ', "", msg)
        if ev.fail_msg is not None and msg != ev.fail_msg and not msg.endswith(ev.fail_msg):
            return f"error message {msg!r} != {ev.fail_msg!r}"
        if ev.fail_regex is not None and not re.search(ev.fail_regex, msg):
            return f"error message {msg!r} !~ {ev.fail_regex!r}"
        return None
    if resp.get("status") != "success":
        return f"error: {resp.get('errorType')}: {resp.get('error')}"
    problem = compare_annotations(ev, resp)
    if problem is not None:
        return problem
    data = resp["data"]
    rt, result = data["resultType"], data["result"]
    if ev.string is not None:
        if rt != "string" or result[1] != ev.string:
            return f"expected string {ev.string!r}, got {rt} {result!r}"
        return None
    if ev.scalar is not None:
        if rt != "scalar":
            return f"expected scalar {ev.scalar}, got {rt}"
        got = float(result[1])
        return None if floats_equal(got, ev.scalar) else f"expected scalar {ev.scalar}, got {got}"
    if ev.kind == "range" or ev.range_vector is not None:
        if ev.kind == "range":
            start, end, step = ev.start_ms, ev.end_ms, ev.step_ms
        else:
            start, end, step = ev.range_vector
        if rt != "matrix":
            return f"expected matrix, got {rt}"
        keys = [_key(s["metric"]) for s in result]
        if ev.kind == "range" and keys != sorted(keys):
            return "range result not sorted by labels"
        got = {_key(s["metric"]): s["values"] for s in result}
        want = {_key(e.labels): e for e in ev.series}
        for k in got:
            if k not in want:
                return f"unexpected series {_fmt_labels(dict(k))} {got[k][:5]}"
        for k, e in want.items():
            if k not in got:
                if all(x is None for x in e.values):
                    continue
                return f"missing series {_fmt_labels(e.labels)}"
            exp = {start + i * step: x for i, x in enumerate(e.values) if x is not None}
            pts = {_t_ms(t): float(v) for t, v in got[k]}
            if set(exp) != set(pts):
                extra = sorted(set(pts) - set(exp))[:3]
                miss = sorted(set(exp) - set(pts))[:3]
                return f"{_fmt_labels(e.labels)}: point times differ (extra {extra}, missing {miss})"
            for t, x in exp.items():
                if not floats_equal(pts[t], x):
                    return f"{_fmt_labels(e.labels)} at {t / 1000}: expected {x}, got {pts[t]}"
        return None
    # instant vector
    if rt == "scalar":
        return f"expected vector, got scalar {result[1]}"
    if rt != "vector":
        return f"expected vector, got {rt}"
    for e in ev.series:
        if len(e.values) != 1:
            return "script error: more than one value for an instant eval"
    if ev.ordered:
        if len(result) != len(ev.series):
            return f"expected {len(ev.series)} samples, got {len(result)}"
        for n, (s, e) in enumerate(zip(result, ev.series, strict=False)):
            if _key(s["metric"]) != _key(e.labels):
                return f"position {n}: expected {_fmt_labels(e.labels)}, got {_fmt_labels(s['metric'])}"
            if not floats_equal(float(s["value"][1]), e.values[0]):
                return f"{_fmt_labels(e.labels)}: expected {e.values[0]}, got {s['value'][1]}"
        return None
    got = {_key(s["metric"]): float(s["value"][1]) for s in result}
    want = {_key(e.labels): e.values[0] for e in ev.series}
    for k in got:
        if k not in want:
            return f"unexpected sample {_fmt_labels(dict(k))} {got[k]}"
    for k, x in want.items():
        if k not in got:
            return f"missing sample {_fmt_labels(dict(k))} {x}"
        if not floats_equal(got[k], x):
            return f"{_fmt_labels(dict(k))}: expected {x}, got {got[k]}"
    return None


# --------------------------------------------------------------------------------------------------
# Running


LOOKBACK_MS = 300_000


def _read_windows(e, lo: int, hi: int, start: int, end: int) -> list:
    """Every selector of ``e`` with the closed time interval it may read samples from, when
    ``e`` is evaluated at times in [lo, hi] of a query spanning [start, end]."""
    from lookout.metrics.promql import ast as A

    def shift(at, offset_ms: int, lo: int, hi: int) -> tuple[int, int]:
        if at is not None:
            t = start if at.kind == "start" else end if at.kind == "end" else at.t_ms
            lo = hi = t
        return lo - offset_ms, hi - offset_ms

    e = A.unparen(e)
    if isinstance(e, A.VectorSel):
        a, b = shift(e.at, e.offset_ms, lo, hi)
        return [(e, a - LOOKBACK_MS, b)]
    if isinstance(e, A.MatrixSel):
        a, b = shift(e.vs.at, e.vs.offset_ms, lo, hi)
        return [(e.vs, a - e.range_ms, b)]
    if isinstance(e, A.Subquery):
        a, b = shift(e.at, e.offset_ms, lo, hi)
        return _read_windows(e.expr, a - e.range_ms, b, start, end)
    return [w for c in A.children(e) for w in _read_windows(c, lo, hi, start, end)]


def _touches_histograms(ev: Eval, native: list[tuple[dict[str, str], np.ndarray]]) -> bool:
    """Whether the query may read a native-histogram sample: some selector matches a series
    loaded with histogram samples and its read window contains one of their timestamps."""
    from lookout.metrics.model import matches_all
    from lookout.metrics.promql.parse import parse

    try:
        tree = parse(ev.query).expr
    except Exception:  # noqa: BLE001 - unparsable: be conservative
        return True
    start, end = (ev.t_ms, ev.t_ms) if ev.kind == "instant" else (ev.start_ms, ev.end_ms)
    for sel, lo, hi in _read_windows(tree, start, end, start, end):
        for labels, times in native:
            if matches_all(labels, list(sel.matchers)):
                i = np.searchsorted(times, lo, "left")
                if i < len(times) and times[i] <= hi:
                    return True
    return False


def _parser_can_parse(query: str) -> bool:
    from lookout.metrics.promql.parse import parse

    try:
        parse(query)
        return True
    except BaseException:  # noqa: BLE001 - the Rust binding may panic
        return False


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1


def run_file(path: Path, backend: Backend, tally: Tally, verbose: bool = False) -> None:
    try:
        cmds = parse_script(path)
    except Exception as e:  # noqa: BLE001
        print(f"{path.name}: script parse error: {e}")
        tally.failed += 1
        return
    backend.clear()
    native: list[tuple[dict[str, str], np.ndarray]] = []
    start_ts = False
    for cmd in cmds:
        if isinstance(cmd, Clear):
            backend.clear()
            native, start_ts = [], False
            continue
        if isinstance(cmd, Load):
            backend.load(cmd.series)
            native += cmd.native
            start_ts = start_ts or cmd.start_ts
            continue
        ev: Eval = cmd
        if ev.skip:
            tally.skip(ev.skip)
            continue
        if start_ts:
            tally.skip("start timestamps")
            continue
        if native and _touches_histograms(ev, native):
            tally.skip("native histogram series")
            continue
        expect_any_failure = ev.fail and ev.fail_msg is None and ev.fail_regex is None
        if not _parser_can_parse(ev.query) and not expect_any_failure:
            tally.skip("query not parsable (experimental syntax)")
            continue
        if ev.kind == "instant":
            resp = backend.instant(ev.query, ev.t_ms)
        else:
            resp = backend.range(ev.query, ev.start_ms, ev.end_ms, ev.step_ms)
        problem = compare(ev, resp)
        if problem is None:
            tally.passed += 1
        else:
            tally.failed += 1
            print(f"{ev.file}:{ev.line}: {ev.query}  -- {problem}"[:400 if not verbose else 4000])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="inprocess", choices=["inprocess"])
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--per-file", action="store_true", help="print counts per file")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args(argv)
    files = [Path(f) if Path(f).exists() else TESTDATA / f for f in args.files] or sorted(TESTDATA.glob("*.test"))
    backend: Backend = InProcessBackend()
    total = Tally()
    for f in files:
        t = Tally()
        run_file(f, backend, t, args.verbose)
        if args.per_file:
            print(f"  {f.name}: {t.passed} passed, {t.failed} failed, {t.skipped} skipped")
        total.passed += t.passed
        total.failed += t.failed
        total.skipped += t.skipped
        for k, n in t.skip_reasons.items():
            total.skip_reasons[k] = total.skip_reasons.get(k, 0) + n
    for k, n in sorted(total.skip_reasons.items()):
        print(f"  skipped {n}: {k}")
    print(f"promql: {total.passed} passed, {total.failed} failed, {total.skipped} skipped")
    return 1 if total.failed else 0


if __name__ == "__main__":
    sys.exit(main())
