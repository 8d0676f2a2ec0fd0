"""LogQL conformance runner over Loki's ``.logqltest`` scripts (read in place, never copied: AGPL).

Implements the DSL described in ``../shared/conformance/logql/loki-agpl/FORMAT.md`` against a pluggable
:class:`Backend`: ``clear``, ``push`` and two query calls that return the Loki HTTP JSON envelope. The
comparison only looks at that envelope, so an HTTP backend can replace :class:`InProcessBackend`.

Usage: ``python conformance/run_logql.py [--backend inprocess] [-v] [files...]``. Prints one line per
failure and ``logql: N passed, M failed``; exits non-zero on failures.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lookout.logs.logql import LogQLEngine, LogQLError, result_to_json  # noqa: E402
from lookout.logs.logql.units import parse_go_duration  # noqa: E402
from lookout.logs.model import MemoryLogQuerier  # noqa: E402

DEFAULT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance" / "logql" / "loki-agpl"
EPOCH_NS = 1767225600 * 10**9  # 2026-01-01T00:00:00Z, the scripts' epoch


class Backend(Protocol):
    """Where the runner loads entries and runs queries; answers are Loki API envelopes."""

    def clear(self) -> None: ...

    def push(self, labels: dict[str, str], entries: list[tuple[int, str, dict[str, str]]]) -> None: ...

    def instant(self, query: str, t_ns: int) -> dict[str, Any]: ...

    def range(self, query: str, start_ns: int, end_ns: int, step_ns: int) -> dict[str, Any]: ...


class InProcessBackend:
    """MemoryLogQuerier + LogQLEngine + result_to_json, wrapped as the HTTP API would wrap them."""

    def __init__(self) -> None:
        self.querier = MemoryLogQuerier()
        self.engine = LogQLEngine()

    def clear(self) -> None:
        self.querier.clear()

    def push(self, labels: dict[str, str], entries: list[tuple[int, str, dict[str, str]]]) -> None:
        if entries:
            self.querier.push(labels, np.array([e[0] for e in entries], dtype=np.int64), [e[1] for e in entries],
                              [e[2] for e in entries])

    def _wrap(self, fn: Any) -> dict[str, Any]:
        try:
            return {"status": "success", "data": result_to_json(fn())}
        except LogQLError as e:
            return {"status": "error", "errorType": "bad_data", "error": str(e), "code": e.status}

    def instant(self, query: str, t_ns: int) -> dict[str, Any]:
        return self._wrap(lambda: self.engine.query_instant(self.querier, query, t_ns))

    def range(self, query: str, start_ns: int, end_ns: int, step_ns: int) -> dict[str, Any]:
        return self._wrap(lambda: self.engine.query_range(self.querier, query, start_ns, end_ns, step_ns))


# ---------------------------------------------------------------- script parsing


def strip_comment(line: str) -> str:
    """Drop ``#`` to end of line unless inside a ``"…"`` or backtick string."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"`":
            quote = c
        elif c == "#":
            return line[:i].rstrip()
        i += 1
    return line.rstrip()


def dur_ns(text: str) -> int:
    return round(parse_go_duration(text, literal=True) * 1e9)


_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_labels(text: str) -> dict[str, str]:
    body = text.strip()[1:-1]
    out = {}
    pos = 0
    while pos < len(body):
        m = _LABEL_RE.match(body, pos)
        if not m:
            if body[pos:].strip() == "":
                break
            raise ValueError(f"bad label set {text!r}")
        out[m.group(1)] = m.group(2).encode().decode("unicode_escape") if "\\" in m.group(2) else m.group(2)
        pos = m.end()
    return out


_LOAD_RE = re.compile(
    r'^\s*(\{[^}]*\})\s*("[^"]*"|`[^`]*`)\s*@\s*(\S+)'
    r'(?:\s*\[repeat every\s+(\S+)\s+for\s+(\d+)\])?(?:\s*\[metadata\s+([^\]]*)\])?\s*$'
)


def parse_load_line(line: str) -> tuple[dict[str, str], list[tuple[int, str, dict[str, str]]]]:
    m = _LOAD_RE.match(line)
    if not m:
        raise ValueError(f"bad load line: {line!r}")
    labels = parse_labels(m.group(1))
    text = m.group(2)[1:-1]
    start = dur_ns(m.group(3))
    step = dur_ns(m.group(4)) if m.group(4) else 0
    count = int(m.group(5)) if m.group(5) else 1
    md = parse_labels("{" + m.group(6) + "}") if m.group(6) else {}
    entries = [(EPOCH_NS + start + i * step, text.replace("{{.i}}", str(i)), dict(md)) for i in range(count)]
    return labels, entries


def parse_value(tok: str) -> list[float | None]:
    """One expected-value token, with promqltest expansions (``1+2x3``, ``4x2``, ``_x3``)."""
    m = re.fullmatch(r"(_|[-+]?(?:Inf|NaN|[0-9.eE+-]+?))(?:([-+])([0-9.eE]+))?x([0-9]+)", tok)
    if m:
        n = int(m.group(4))
        if m.group(1) == "_":
            return [None] * n
        a = float(m.group(1))
        d = float(m.group(3) or 0) * (-1 if m.group(2) == "-" else 1)
        return [a + d * i for i in range(n + 1)]
    if tok == "_":
        return [None]
    return [float(tok)]


@dataclass
class Eval:
    file: str
    lineno: int
    query: str
    instant: bool
    t0: int
    t1: int = 0
    step: int = 0
    series: dict[tuple, list[float | None]] = field(default_factory=dict)
    series_order: list[tuple] = field(default_factory=list)
    scalar: float | None = None
    empty: bool = False
    fail: bool = False
    fail_msg: str | None = None
    fail_regex: str | None = None
    ordered: bool = False


def parse_script(path: Path) -> list[tuple[str, Any]]:
    """Commands in order: ("clear", None), ("load", [(labels, entries)]), ("eval", Eval)."""
    raw = path.read_text().split("\n")
    cmds: list[tuple[str, Any]] = []
    i = 0
    while i < len(raw):
        line = strip_comment(raw[i])
        lineno = i + 1
        i += 1
        if not line.strip():
            continue
        if line[0].isspace():
            raise ValueError(f"{path.name}:{lineno}: unexpected indented line")
        block: list[tuple[int, str]] = []
        while i < len(raw) and raw[i][:1].isspace():
            b = strip_comment(raw[i])
            i += 1
            if not b.strip():
                if raw[i - 1].strip() == "" or raw[i - 1].strip().startswith("#"):
                    if raw[i - 1].strip() == "":
                        break
                    continue
                continue
            block.append((i, b.strip()))
        word = line.split()[0]
        if word == "clear":
            cmds.append(("clear", None))
        elif word == "load":
            cmds.append(("load", [parse_load_line(b) for _, b in block]))
        elif word == "eval":
            cmds.append(("eval", parse_eval(path.name, lineno, line, block)))
        else:
            raise ValueError(f"{path.name}:{lineno}: unknown command {word!r}")
    return cmds


def parse_eval(fname: str, lineno: int, line: str, block: list[tuple[int, str]]) -> Eval:
    m = re.match(r"eval\s+instant\s+at\s+(\S+)\s+(.*)$", line)
    if m:
        ev = Eval(fname, lineno, m.group(2).strip(), True, EPOCH_NS + dur_ns(m.group(1)))
    else:
        m = re.match(r"eval\s+range\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s+(.*)$", line)
        if not m:
            raise ValueError(f"{fname}:{lineno}: bad eval line")
        ev = Eval(fname, lineno, m.group(4).strip(), False, EPOCH_NS + dur_ns(m.group(1)),
                  EPOCH_NS + dur_ns(m.group(2)), dur_ns(m.group(3)))
    for _, b in block:
        if b == "expect empty":
            ev.empty = True
        elif b == "expect ordered":
            ev.ordered = True
        elif b.startswith("expect fail"):
            ev.fail = True
            rest = b[len("expect fail"):].strip()
            if rest.startswith("msg:"):
                ev.fail_msg = rest[4:].strip()
            elif rest.startswith("regex:"):
                ev.fail_regex = rest[6:].strip()
        elif b.startswith("skip "):
            continue
        elif b.startswith("{"):
            j = b.index("}")
            labels = parse_labels(b[:j + 1])
            vals: list[float | None] = []
            for tok in b[j + 1:].split():
                vals.extend(parse_value(tok))
            key = tuple(sorted(labels.items()))
            ev.series[key] = vals
            ev.series_order.append(key)
        else:
            ev.scalar = parse_value(b.split()[0])[0]
    return ev


# ---------------------------------------------------------------- comparison


def almost_equal(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    diff = abs(a - b)
    if a == 0 or b == 0 or abs(a) + abs(b) < 2.2250738585072014e-308:
        return diff < 1e-6 * 2.2250738585072014e-308 or diff < 1e-12
    return diff / (abs(a) + abs(b)) < 1e-6


def _num(s: str) -> float:
    return float({"+Inf": "inf", "-Inf": "-inf"}.get(s, s))


def _fmt_series(series: dict[tuple, list[float | None]]) -> str:
    parts = []
    for k, vals in sorted(series.items()):
        lb = "{" + ", ".join(f'{n}="{v}"' for n, v in k) + "}"
        parts.append(lb + " " + " ".join("_" if v is None else f"{v:g}" for v in vals))
    return "; ".join(parts) or "(empty)"


def check(ev: Eval, resp: dict[str, Any]) -> str | None:
    """None when the response matches the expectation, else a short description."""
    if resp.get("status") != "success":
        err = str(resp.get("error", ""))
        if not ev.fail:
            return f"unexpected error: {err[:200]}"
        if ev.fail_msg and ev.fail_msg not in err:
            return f"error {err[:200]!r} lacks {ev.fail_msg!r}"
        if ev.fail_regex and not re.search(ev.fail_regex, err):
            return f"error {err[:200]!r} does not match /{ev.fail_regex}/"
        return None
    if ev.fail:
        return "expected an error, got success"
    data = resp["data"]
    rt = data["resultType"]
    if ev.scalar is not None:
        if rt != "scalar":
            return f"expected scalar {ev.scalar}, got {rt}"
        got = _num(data["result"][1])
        return None if almost_equal(got, ev.scalar) else f"expected scalar {ev.scalar}, got {got}"
    got: dict[tuple, list[float | None]] = {}
    order: list[tuple] = []
    if ev.instant:
        if rt == "scalar":
            return f"expected vector, got scalar {data['result']}"
        for s in data["result"]:
            k = tuple(sorted(s["metric"].items()))
            got[k] = [_num(s["value"][1])]
            order.append(k)
    else:
        steps = list(range(ev.t0, ev.t1 + 1, ev.step))
        for s in data["result"]:
            k = tuple(sorted(s["metric"].items()))
            vals: list[float | None] = [None] * len(steps)
            for t, v in s["values"]:
                idx = round((round(float(t) * 1e9) - ev.t0) / ev.step)
                if 0 <= idx < len(steps):
                    vals[idx] = _num(v)
            got[k] = vals
    if ev.empty:
        return None if not got else f"expected empty, got {_fmt_series(got)}"
    if set(got) != set(ev.series):
        return f"expected {_fmt_series(ev.series)}, got {_fmt_series(got)}"
    for k, exp in ev.series.items():
        g = got[k]
        if len(g) != len(exp):
            return f"expected {_fmt_series(ev.series)}, got {_fmt_series(got)}"
        for a, b in zip(exp, g, strict=True):
            if (a is None) != (b is None) or (a is not None and b is not None and not almost_equal(b, a)):
                return f"expected {_fmt_series(ev.series)}, got {_fmt_series(got)}"
    if ev.ordered and order != ev.series_order:
        return f"expected order {ev.series_order}, got {order}"
    return None


def run_file(path: Path, backend: Backend, verbose: bool = False) -> tuple[int, list[str]]:
    passed = 0
    failures: list[str] = []
    backend.clear()
    for kind, arg in parse_script(path):
        if kind == "clear":
            backend.clear()
        elif kind == "load":
            for labels, entries in arg:
                backend.push(labels, entries)
        else:
            ev: Eval = arg
            try:
                if ev.instant:
                    resp = backend.instant(ev.query, ev.t0)
                else:
                    resp = backend.range(ev.query, ev.t0, ev.t1, ev.step)
                problem = check(ev, resp)
            except Exception as e:  # a crash is a failure of that eval, not of the run
                problem = f"crash: {type(e).__name__}: {e}"
            if problem is None:
                passed += 1
                if verbose:
                    print(f"ok   {ev.file}:{ev.lineno}: {ev.query}")
            else:
                failures.append(f"{ev.file}:{ev.lineno}: {ev.query}  --  {problem}")
    return passed, failures


def make_backend(name: str) -> Backend:
    if name == "inprocess":
        return InProcessBackend()
    raise SystemExit(f"unknown backend {name!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="inprocess")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--summary", action="store_true", help="print per-file counts")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args(argv)
    files = [Path(f) for f in args.files] or sorted(DEFAULT_DIR.glob("*.logqltest"))
    backend = make_backend(args.backend)
    total_p = total_f = 0
    per_file = []
    for f in files:
        p, fails = run_file(f, backend, args.verbose)
        for line in fails:
            print(line)
        total_p += p
        total_f += len(fails)
        per_file.append((f.name, p, len(fails)))
    if args.summary:
        for name, p, n in per_file:
            print(f"  {name}: {p} passed, {n} failed")
    print(f"logql: {total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
