"""Tail-sampling policy evaluators, each deciding a whole batch of traces at once.

A decision round hands every policy one :class:`TraceBatch`: the spans of all traces being
decided, sorted by trace (arrival order kept within a trace), a trace index per span and
``starts`` (first span of each trace). A policy returns one decision code per trace. Span-level
predicates are computed column-wise with pyarrow/numpy and reduced per trace with
``np.logical_or.reduceat`` — the Collector loops over spans per trace; we loop over neither.

``active`` tells which traces a policy is actually evaluated for (upstream stops evaluating at a
``Dropped`` result or, with ``sample_on_first_match``, at ``Sampled``; ``and``/``drop``/
``composite`` short-circuit per trace). Stateless policies may compute every trace and let the
caller ignore the rest; stateful ones (``rate_limiting``, ``bytes_limiting``, ``composite``)
must only charge their budgets for active traces, in trace order. They have a vectorized fast
path (everything fits) and otherwise walk the active traces in a Python loop — a greedy budget
with skips has no closed form, and it runs once per decided trace of these few policies only.

Semantics and quirks follow the Collector (``NOTES.md`` §3–4) and are called out where they
happen.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.pipeline.tailsampling import config as C
from lookout.pipeline.tailsampling.fnv import fnv1a64_ids, probabilistic_threshold

log = logging.getLogger(__name__)

# Decision codes (int8), as upstream's sampling.Decision values that matter here.
NOT_SAMPLED = 0
SAMPLED = 1
INVERT_SAMPLED = 2
INVERT_NOT_SAMPLED = 3
DROPPED = 4
ERROR = 5

DECISION_NAMES = ("not_sampled", "sampled", "inverted_sampled", "inverted_not_sampled", "dropped", "error")

_ATTR_KINDS = ("str", "int", "dbl", "bool", "other")


@dataclass(slots=True)
class AttrValues:
    """One attribute key looked up for every span, split by value type (as the flat table is)."""

    present: np.ndarray  # bool: the key exists with any type
    str: pa.Array  # string value where the value is a string, else null
    int: np.ndarray  # int64; the value where it is an int, else 0 (pcommon Value.Int())
    is_int: np.ndarray  # bool
    bool: np.ndarray  # bool; the value where it is a bool, else False (pcommon Value.Bool())


@dataclass(slots=True)
class TraceBatch:
    """The spans of the traces decided in one round.

    ``table`` rows are grouped by trace (trace ``i`` owns rows ``starts[i]:starts[i+1]``), in
    arrival order within a trace, which is the order the Collector iterates spans in (it matters
    for the latency prefix quirk and for which OTTL error is hit first). Every trace has ≥1 span.
    """

    table: pa.Table
    ti: np.ndarray  # int64 trace index per span
    m: int
    wall: float  # wall-clock seconds for the rate limiters of this round
    trace_bytes: np.ndarray  # float64 per trace (size estimate, see processor)
    starts: np.ndarray = field(init=False)
    span_count: np.ndarray = field(init=False)
    _cache: dict[Any, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.span_count = np.bincount(self.ti, minlength=self.m).astype(np.int64)
        self.starts = np.zeros(self.m, dtype=np.int64)
        if self.m > 1:
            self.starts[1:] = np.cumsum(self.span_count)[:-1]

    @property
    def n(self) -> int:
        return self.table.num_rows

    def any(self, span_mask: np.ndarray) -> np.ndarray:
        """Per trace: does any of its spans satisfy ``span_mask``?"""
        if self.m == 0:
            return np.zeros(0, dtype=np.bool_)
        return np.logical_or.reduceat(np.asarray(span_mask, dtype=np.bool_), self.starts)

    def column(self, name: str) -> pa.Array:
        if name not in self._cache:
            self._cache[name] = self.table.column(name).combine_chunks()
        return self._cache[name]

    def numpy(self, name: str, fill: int = 0) -> np.ndarray:
        key = ("np", name)
        if key not in self._cache:
            self._cache[key] = self.column(name).fill_null(fill).to_numpy(zero_copy_only=False)
        return self._cache[key]

    def trace_ids(self) -> np.ndarray:
        """``(m, 16)`` uint8: the id of every trace (from its first span)."""
        if "ids" not in self._cache:
            arr = self.column("trace_id")
            raw = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
            raw = raw[arr.offset * 16:(arr.offset + len(arr)) * 16].reshape(-1, 16)
            self._cache["ids"] = raw[self.starts]
        return self._cache["ids"]

    def attr(self, prefix: str, key: str) -> AttrValues:
        """``key`` in the span (``prefix=""``) or resource (``"res_"``) attributes of every span."""
        ck = ("attr", prefix, key)
        if ck in self._cache:
            return self._cache[ck]
        n = self.n
        present = np.zeros(n, dtype=np.bool_)
        found: dict[str, pa.Array] = {}
        for kind in _ATTR_KINDS:
            col = f"{prefix}attrs_{kind}"
            if col not in self.table.column_names:
                continue
            v = pc.map_lookup(self.column(col), pa.scalar(key), "first")
            found[kind] = v
            present |= v.is_valid().to_numpy(zero_copy_only=False)
        ints = found.get("int")
        is_int = ints.is_valid().to_numpy(zero_copy_only=False) if ints is not None else np.zeros(n, np.bool_)
        ival = ints.fill_null(0).to_numpy(zero_copy_only=False) if ints is not None else np.zeros(n, np.int64)
        bools = found.get("bool")
        bval = (bools.fill_null(False).to_numpy(zero_copy_only=False) if bools is not None
                else np.zeros(n, np.bool_))
        strs = found.get("str", pa.nulls(n, pa.string()))
        out = AttrValues(present, strs, ival.astype(np.int64), is_int, bval.astype(np.bool_))
        self._cache[ck] = out
        return out


class Evaluator(Protocol):
    name: str

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        """int8 decision code per trace; only entries where ``active`` is True are used."""
        ...


def _full(batch: TraceBatch, code: int) -> np.ndarray:
    return np.full(batch.m, code, dtype=np.int8)


def _choose(batch: TraceBatch, hit: np.ndarray, yes: int, no: int) -> np.ndarray:
    return np.where(hit, np.int8(yes), np.int8(no)).astype(np.int8)


# --------------------------------------------------------------------------------------------
# Basic policies
# --------------------------------------------------------------------------------------------


class AlwaysSample:
    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        return _full(batch, SAMPLED)


class Latency:
    """Trace duration = latest end − earliest start in whole milliseconds (Go truncation).

    Quirk kept: upstream checks the condition on the *running* min/max while walking spans and
    returns at the first span where it holds. Without an upper bound that equals checking the
    full duration (it only grows); with one, a prefix whose duration was in ``(threshold,
    upper]`` samples the trace even if the full trace exceeds ``upper``. Because prefix
    durations never decrease, "some prefix in range" is "the smallest prefix duration above
    ``threshold`` is ≤ ``upper``", computed from segmented running min/max.
    """

    def __init__(self, name: str, cfg: C.LatencyCfg) -> None:
        self.name, self.lo, self.hi = name, cfg.threshold_ms, cfg.upper_threshold_ms

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        if batch.m == 0:
            return _full(batch, NOT_SAMPLED)
        start = batch.numpy("start_time_unix_nano")
        end = start + batch.numpy("duration_nano")
        if not self.hi:
            dur = np.maximum.reduceat(end, batch.starts) - np.minimum.reduceat(start, batch.starts)
            return _choose(batch, _go_ms(dur) >= self.lo, SAMPLED, NOT_SAMPLED)
        run_max = _segmented_cummax(end, batch.ti, batch.n)
        run_min = -_segmented_cummax(-start, batch.ti, batch.n)
        ms = _go_ms(run_max - run_min)
        hit = (ms > self.lo) & (ms <= self.hi)
        return _choose(batch, batch.any(hit), SAMPLED, NOT_SAMPLED)


def _go_ms(ns: np.ndarray) -> np.ndarray:
    """``time.Duration.Milliseconds()``: integer division truncating toward zero."""
    q = np.abs(ns) // 1_000_000
    return np.where(ns < 0, -q, q)


def _segmented_cummax(values: np.ndarray, seg: np.ndarray, n: int) -> np.ndarray:
    """Running maximum that restarts at every segment (``seg`` sorted ascending).

    Values are replaced by their global rank and offset by ``seg × n`` so one
    ``np.maximum.accumulate`` cannot carry a maximum across a segment boundary.
    """
    if n == 0:
        return values
    order = np.argsort(values, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64)
    key = seg.astype(np.int64) * n + rank
    best = np.maximum.accumulate(key) - seg.astype(np.int64) * n
    return values[order[best]]


class NumericAttribute:
    """Some resource or span has ``key`` with ``min ≤ v ≤ max``.

    Quirks kept: a configured 0 bound means "no bound"; a value of another type reads as 0
    (``pcommon.Value.Int()``), so a double/string attribute matches whenever 0 is in range.
    ``invert_match``: InvertNotSampled if anything matches, else InvertSampled.
    """

    def __init__(self, name: str, cfg: C.NumericAttributeCfg) -> None:
        self.name, self.key, self.invert = name, cfg.key, cfg.invert_match
        self.lo = cfg.min_value if cfg.min_value else np.iinfo(np.int64).min
        self.hi = cfg.max_value if cfg.max_value else np.iinfo(np.int64).max

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        hit = np.zeros(batch.n, dtype=np.bool_)
        for prefix in ("res_", ""):
            a = batch.attr(prefix, self.key)
            hit |= a.present & (a.int >= self.lo) & (a.int <= self.hi)
        t = batch.any(hit)
        if self.invert:
            return _choose(batch, t, INVERT_NOT_SAMPLED, INVERT_SAMPLED)
        return _choose(batch, t, SAMPLED, NOT_SAMPLED)


class Probabilistic:
    """FNV-1a-64(salt ‖ trace id) ≤ floor(MaxUint64 × pct/100); independent of spans."""

    def __init__(self, name: str, cfg: C.ProbabilisticCfg) -> None:
        self.name = name
        self.salt = cfg.hash_salt.encode()
        self.threshold = np.uint64(probabilistic_threshold(cfg.sampling_percentage))

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        if batch.m == 0:
            return _full(batch, NOT_SAMPLED)
        h = fnv1a64_ids(batch.trace_ids(), self.salt)
        return _choose(batch, h <= self.threshold, SAMPLED, NOT_SAMPLED)


class StatusCode:
    def __init__(self, name: str, cfg: C.StatusCodeCfg) -> None:
        self.name, self.codes = name, np.array(cfg.status_codes, dtype=np.int64)

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        hit = np.isin(batch.numpy("status_code").astype(np.int64), self.codes)
        return _choose(batch, batch.any(hit), SAMPLED, NOT_SAMPLED)


class StringAttribute:
    """Exact or regex match of a string attribute in any resource or span.

    Regexes run through Arrow's RE2 (the same engine family as Go's ``regexp``) with
    ``MatchString`` semantics, i.e. **unanchored**. The Collector memoises matches in an LRU of
    ``cache_max_size``; here the match is one vectorized call per pattern over the column, so the
    cache would only add overhead — the setting is accepted and has no observable effect either
    way. Non-string values read as ``""``: for a resource that can match a regex (``.*``), for a
    span an empty string never matches. Empty strings in exact ``values`` are ignored.
    """

    def __init__(self, name: str, cfg: C.StringAttributeCfg) -> None:
        self.name, self.key, self.invert = name, cfg.key, cfg.invert_match
        self.regex = cfg.enabled_regex_matching
        if self.regex:
            self.patterns = list(cfg.values)
            self.empty_matches = bool(self._match(pa.array([""], pa.string()))[0])
        else:
            self.values = pa.array(sorted({v for v in cfg.values if v}), pa.string())
            self.empty_matches = False

    def _match(self, strs: pa.Array) -> np.ndarray:
        if self.regex:
            hit = np.zeros(len(strs), dtype=np.bool_)
            for p in self.patterns:
                hit |= pc.match_substring_regex(strs, p).fill_null(False).to_numpy(zero_copy_only=False)
            return hit
        return pc.is_in(strs, value_set=self.values).fill_null(False).to_numpy(zero_copy_only=False)

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        r = batch.attr("res_", self.key)
        s = batch.attr("", self.key)
        r_is_str = r.str.is_valid().to_numpy(zero_copy_only=False)
        hit = r_is_str & self._match(r.str)
        if self.empty_matches:
            hit |= r.present & ~r_is_str  # Value.Str() of a non-string is "" (resources only)
        s_nonempty = pc.fill_null(pc.greater(pc.binary_length(s.str), 0), False).to_numpy(zero_copy_only=False)
        hit |= s_nonempty & self._match(s.str)
        t = batch.any(hit)
        if self.invert:
            return _choose(batch, t, INVERT_NOT_SAMPLED, INVERT_SAMPLED)
        return _choose(batch, t, SAMPLED, NOT_SAMPLED)


class BooleanAttribute:
    """Some resource or span has ``key`` whose ``Value.Bool()`` equals ``value``; a non-bool
    value reads as false, so ``value: false`` also matches non-bool attributes with the key."""

    def __init__(self, name: str, cfg: C.BooleanAttributeCfg) -> None:
        self.name, self.key, self.value, self.invert = name, cfg.key, cfg.value, cfg.invert_match

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        hit = np.zeros(batch.n, dtype=np.bool_)
        for prefix in ("res_", ""):
            a = batch.attr(prefix, self.key)
            hit |= a.present & (a.bool == self.value)
        t = batch.any(hit)
        if self.invert:
            return _choose(batch, t, INVERT_NOT_SAMPLED, INVERT_SAMPLED)
        return _choose(batch, t, SAMPLED, NOT_SAMPLED)


_TS_KEY = re.compile(r"^(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$")
_TS_VALUE = re.compile(r"^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$")


def parse_trace_state(ts: str) -> dict[str, str] | None:
    """W3C ``tracestate`` as OpenTelemetry-Go's ``ParseTraceState`` reads it; None if invalid
    (bad member, duplicate key, more than 32 members) — an unparsable state never matches."""
    out: dict[str, str] = {}
    for member in ts.split(","):
        if member == "":
            continue
        key, sep, val = member.partition("=")
        if not sep:
            return None
        key, val = key.lstrip(" \t"), val.rstrip(" \t")
        if not _TS_KEY.match(key) or not _TS_VALUE.match(val) or key in out:
            return None
        out[key] = val
        if len(out) > 32:
            return None
    return out


class TraceState:
    """Some span's parsed tracestate has ``key`` equal to one of ``values``. Values are parsed
    per *distinct* tracestate string of the batch (usually a handful), never per span."""

    def __init__(self, name: str, cfg: C.TraceStateCfg) -> None:
        self.name, self.key = name, cfg.key
        self.values = {v for v in cfg.values if v and len(cfg.key) + len(v) < 256}

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        enc = pc.dictionary_encode(batch.column("trace_state").fill_null(""))
        ok = np.array([(st := parse_trace_state(s)) is not None and st.get(self.key, "") in self.values
                       for s in enc.dictionary.to_pylist()], dtype=np.bool_)
        idx = enc.indices.to_numpy(zero_copy_only=False)
        hit = ok[idx] if ok.size else np.zeros(batch.n, dtype=np.bool_)
        return _choose(batch, batch.any(hit), SAMPLED, NOT_SAMPLED)


class TraceFlags:
    """Some span has the W3C *sampled* flag (bit 0 of the span's flags)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        hit = (batch.numpy("flags").astype(np.int64) & 1) != 0
        return _choose(batch, batch.any(hit), SAMPLED, NOT_SAMPLED)


class SpanCount:
    def __init__(self, name: str, cfg: C.SpanCountCfg) -> None:
        self.name, self.lo, self.hi = name, cfg.min_spans, cfg.max_spans

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        n = batch.span_count
        hit = (n >= self.lo) & ((self.hi == 0) | (n <= self.hi))
        return _choose(batch, hit, SAMPLED, NOT_SAMPLED)


class RateLimiting:
    """Per wall-clock second: sampled iff ``admitted + spans < spans_per_second`` (strict)."""

    def __init__(self, name: str, cfg: C.RateLimitingCfg) -> None:
        self.name, self.limit = name, cfg.spans_per_second
        self.second: int | None = None
        self.count = 0

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        out = _full(batch, NOT_SAMPLED)
        sec = int(np.floor(batch.wall))
        if sec != self.second:
            self.second, self.count = sec, 0
        idx = np.flatnonzero(active)
        s = batch.span_count[idx]
        cs = self.count + np.cumsum(s)
        if idx.size == 0:
            return out
        if cs[-1] < self.limit:  # fast path: everything fits
            out[idx] = SAMPLED
            self.count = int(cs[-1])
            return out
        count, limit = self.count, self.limit
        for i, k in zip(idx.tolist(), s.tolist(), strict=True):  # greedy with skips (see module doc)
            if count + k < limit:
                count += k
                out[i] = SAMPLED
        self.count = count
        return out


class BytesLimiting:
    """Token bucket (Go ``rate.Limiter.AllowN``): starts full at ``burst_capacity``, refills at
    ``bytes_per_second``; a trace passes iff its size fits the tokens available (then they are
    taken). A trace larger than the burst never passes. Size: the processor's per-trace byte
    estimate (see ``processor.py``)."""

    def __init__(self, name: str, cfg: C.BytesLimitingCfg) -> None:
        self.name, self.rate = name, float(cfg.bytes_per_second)
        self.burst = float(cfg.burst_capacity or 2 * cfg.bytes_per_second)
        self.tokens = self.burst
        self.last: float | None = None

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        out = _full(batch, NOT_SAMPLED)
        now = batch.wall
        if self.last is not None and now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now if self.last is None else max(self.last, now)
        idx = np.flatnonzero(active)
        size = np.ceil(batch.trace_bytes[idx])
        if idx.size == 0:
            return out
        cs = np.cumsum(size)
        if cs[-1] <= self.tokens and size.max() <= self.burst:
            out[idx] = SAMPLED
            self.tokens -= float(cs[-1])
            return out
        tokens, burst = self.tokens, self.burst
        for i, b in zip(idx.tolist(), size.tolist(), strict=True):
            if b <= burst and b <= tokens:
                tokens -= b
                out[i] = SAMPLED
        self.tokens = tokens
        return out


class OttlCondition:
    """Sampled iff any span satisfies any ``span`` condition or any event any ``spanevent`` one.

    Order matters only for errors and is the Collector's: spans in arrival order, for each span
    first its span conditions (in order, stopping at the first true or failing one) then each of
    its events. Under ``propagate`` a failure before any match makes the policy fail for that
    trace (an evaluation error, ignored at top level); ``ignore``/``silent`` treat it as false.

    The OTTL engine evaluates a condition over the whole batch and raises :class:`OttlError`
    on a runtime error without saying which item failed, so on that (rare) path we re-evaluate
    item by item to localise it; for events the finest grain is "the events of one span".
    """

    def __init__(self, name: str, cfg: C.OttlConditionCfg) -> None:
        self.name, self.mode = name, cfg.error_mode
        self.span_conds = list(cfg.compiled_span)
        self.event_conds = list(cfg.compiled_spanevent)

    # Outcome per item: 0 nothing, 1 true, 2 error.
    def _sequence(self, conds: list[Any], make_ctx: Any, n: int, per_item: Any) -> np.ndarray:
        from lookout.pipeline.ottl import OttlError

        res = np.zeros(n, dtype=np.int8)
        if n == 0 or not conds:
            return res
        ctx = make_ctx()
        for cond in conds:
            todo = res == 0
            if not todo.any():
                break
            try:
                hit = np.asarray(cond.evaluate(ctx), dtype=np.bool_)
                err = np.zeros(n, dtype=np.bool_)
            except OttlError:
                hit, err = per_item(cond)
            if self.mode != "propagate":
                err = np.zeros(n, dtype=np.bool_)
            res[todo & err] = 2
            res[todo & ~err & hit] = 1
        return res

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        from lookout.pipeline.ottl import OttlError
        from lookout.pipeline.span_table import SpanEventTableContext, SpanTableContext

        n, table = batch.n, batch.table

        def span_per_item(cond: Any) -> tuple[np.ndarray, np.ndarray]:
            hit, err = np.zeros(n, np.bool_), np.zeros(n, np.bool_)
            for i in range(n):
                try:
                    hit[i] = bool(cond.evaluate(SpanTableContext(table.slice(i, 1)))[0])
                except OttlError:
                    err[i] = True
            return hit, err

        span_res = self._sequence(self.span_conds, lambda: SpanTableContext(table), n, span_per_item)

        combined = span_res
        if self.event_conds:
            events = batch.column("events")
            ev_span = pc.list_parent_indices(events).to_numpy(zero_copy_only=False).astype(np.int64)
            ne = len(ev_span)

            def event_per_span(cond: Any) -> tuple[np.ndarray, np.ndarray]:
                hit, err = np.zeros(ne, np.bool_), np.zeros(ne, np.bool_)
                offs = events.offsets.to_numpy()
                base = offs[0]
                for s in np.unique(ev_span).tolist():
                    lo, hi = offs[s] - base, offs[s + 1] - base
                    try:
                        hit[lo:hi] = cond.evaluate(SpanEventTableContext(table.slice(s, 1)))
                    except OttlError:
                        err[lo:hi] = True
                return hit, err

            ev_res = self._sequence(self.event_conds, lambda: SpanEventTableContext(table), ne, event_per_span)
            # First event outcome per span (events are in span order, so the minimum position).
            pos = np.where(ev_res != 0, np.arange(ne), ne)
            first = np.full(n, ne, dtype=np.int64)
            np.minimum.at(first, ev_span, pos)
            ev_outcome = np.where(first < ne, ev_res[np.minimum(first, max(ne - 1, 0))] if ne else 0, 0)
            combined = np.where(span_res != 0, span_res, ev_outcome).astype(np.int8)

        if batch.m == 0:
            return _full(batch, NOT_SAMPLED)
        pos = np.where(combined != 0, np.arange(n), n)
        first = np.minimum.reduceat(pos, batch.starts)
        outcome = np.where(first < n, combined[np.minimum(first, n - 1)], 0)
        out = _full(batch, NOT_SAMPLED)
        out[outcome == 1] = SAMPLED
        out[outcome == 2] = ERROR
        return out


# --------------------------------------------------------------------------------------------
# Compound policies
# --------------------------------------------------------------------------------------------


class And:
    """All sub-policies sample → Sampled; the first NotSampled/InvertNotSampled short-circuits
    to NotSampled; a sub-policy error makes the whole policy error for that trace. ``drop``
    is the same with ``Dropped`` as the all-sampled result."""

    def __init__(self, name: str, subs: list[Evaluator], all_code: int = SAMPLED) -> None:
        self.name, self.subs, self.all_code = name, subs, all_code

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        out = _full(batch, self.all_code)
        act = active.copy()
        for sub in self.subs:
            if not act.any():
                break
            c = sub.evaluate(batch, act)
            err = act & (c == ERROR)
            out[err] = ERROR
            no = act & ~err & ((c == NOT_SAMPLED) | (c == INVERT_NOT_SAMPLED))
            out[no] = NOT_SAMPLED
            act &= ~(err | no)
        return out


class Not:
    """Negates one sub-policy: (Invert)Sampled → NotSampled, (Invert)NotSampled → Sampled."""

    def __init__(self, name: str, sub: Evaluator) -> None:
        self.name, self.sub = name, sub

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        c = self.sub.evaluate(batch, active)
        out = _full(batch, NOT_SAMPLED)
        out[(c == NOT_SAMPLED) | (c == INVERT_NOT_SAMPLED)] = SAMPLED
        out[c == ERROR] = ERROR
        return out


class Composite:
    """Rate-limited, prioritised OR (see NOTES §4 ``composite``).

    Sub-policies are tried in ``composite_sub_policy`` order (``policy_order`` is ignored, as
    upstream); the first Sampled/InvertSampled claims the trace, and the trace is sampled iff
    that sub-policy's counter + spans ≤ its budget and ≤ the total cap — later sub-policies are
    never tried. Budgets: ``percent/100 × total`` truncated, ``percent: 0`` → ``total // n``,
    no allocation → 0.
    """

    def __init__(self, name: str, cfg: C.CompositeCfg, subs: list[Evaluator]) -> None:
        self.name, self.subs = name, subs
        total = cfg.max_total_spans_per_second
        alloc: dict[str, float] = {}
        default = total / len(cfg.sub_policies) if cfg.sub_policies else 0.0
        for pname, pct in cfg.rate_allocation:
            alloc[pname] = (pct / 100) * total if pct > 0 else default
        self.budgets = np.array([int(alloc.get(p.name, 0.0)) for p in cfg.sub_policies], dtype=np.int64)
        self.total = total
        self.second: int | None = None
        self.counts = np.zeros(len(subs), dtype=np.int64)

    def evaluate(self, batch: TraceBatch, active: np.ndarray) -> np.ndarray:
        sec = int(np.floor(batch.wall))
        if sec != self.second:
            self.second = sec
            self.counts[:] = 0
        out = _full(batch, NOT_SAMPLED)
        claim = np.full(batch.m, -1, dtype=np.int64)
        act = active.copy()
        for j, sub in enumerate(self.subs):
            if not act.any():
                break
            c = sub.evaluate(batch, act)
            err = act & (c == ERROR)
            out[err] = ERROR
            hit = act & ~err & ((c == SAMPLED) | (c == INVERT_SAMPLED))
            claim[hit] = j
            act &= ~(err | hit)
        caps = np.minimum(self.budgets, self.total)
        for j in range(len(self.subs)):
            idx = np.flatnonzero(claim == j)
            if idx.size == 0:
                continue
            s = batch.span_count[idx]
            cs = self.counts[j] + np.cumsum(s)
            if cs[-1] <= caps[j]:  # fast path: the sub-policy's whole share fits
                out[idx] = SAMPLED
                self.counts[j] = cs[-1]
                continue
            count, cap = int(self.counts[j]), int(caps[j])
            for i, k in zip(idx.tolist(), s.tolist(), strict=True):  # greedy with skips
                if count + k <= cap:
                    count += k
                    out[i] = SAMPLED
            self.counts[j] = count
        return out


def build_evaluator(p: C.PolicyConfig) -> Evaluator:
    """Evaluator for one parsed policy (sub-policies built recursively)."""
    t, s = p.type, p.settings
    if t == "always_sample":
        return AlwaysSample(p.name)
    if t == "latency":
        return Latency(p.name, s)
    if t == "numeric_attribute":
        return NumericAttribute(p.name, s)
    if t == "probabilistic":
        return Probabilistic(p.name, s)
    if t == "status_code":
        return StatusCode(p.name, s)
    if t == "string_attribute":
        return StringAttribute(p.name, s)
    if t == "trace_state":
        return TraceState(p.name, s)
    if t == "trace_flags":
        return TraceFlags(p.name)
    if t == "rate_limiting":
        return RateLimiting(p.name, s)
    if t == "bytes_limiting":
        return BytesLimiting(p.name, s)
    if t == "span_count":
        return SpanCount(p.name, s)
    if t == "boolean_attribute":
        return BooleanAttribute(p.name, s)
    if t == "ottl_condition":
        return OttlCondition(p.name, s)
    if t == "and":
        return And(p.name, [build_evaluator(x) for x in s.sub_policies], SAMPLED)
    if t == "drop":
        return And(p.name, [build_evaluator(x) for x in s.sub_policies], DROPPED)
    if t == "not":
        return Not(p.name, build_evaluator(s.sub_policy))
    if t == "composite":
        return Composite(p.name, s, [build_evaluator(x) for x in s.sub_policies])
    raise ValueError(f"unknown policy type {t!r}")
