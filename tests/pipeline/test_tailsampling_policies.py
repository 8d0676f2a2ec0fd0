"""Tail-sampling policy evaluators: boundary tables per policy type (NOTES §4, §5.4–5.8).

Spans are built as real OTLP requests and decoded with ``decode_traces`` so the evaluators see
exactly the flat span table the pipeline gives them.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from lookout.otlp.traces import decode_traces
from lookout.pipeline.tailsampling import parse_config
from lookout.pipeline.tailsampling.fnv import fnv1a64, fnv1a64_ids, probabilistic_threshold
from lookout.pipeline.tailsampling.policies import (
    DROPPED,
    ERROR,
    INVERT_NOT_SAMPLED,
    INVERT_SAMPLED,
    NOT_SAMPLED,
    SAMPLED,
    OttlCondition,
    TraceBatch,
    build_evaluator,
    parse_trace_state,
)

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def _kv(key: str, value: Any) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    elif isinstance(value, bytes):
        kv.value.bytes_value = value
    else:
        kv.value.string_value = str(value)
    return kv


_span_counter = [0]


def request(specs: list[dict]) -> bytes:
    """Spans as dicts → one serialized ExportTraceServiceRequest (one ResourceSpans per span).

    Keys: trace (int), parent (bytes), name, start_ms, dur_ms, status (0/1/2), attrs, res,
    trace_state, flags, events [(name, attrs)].
    """
    req = ExportTraceServiceRequest()
    for s in specs:
        rs = req.resource_spans.add()
        for k, v in s.get("res", {}).items():
            rs.resource.attributes.append(_kv(k, v))
        sp = rs.scope_spans.add().spans.add()
        _span_counter[0] += 1
        sp.trace_id = tid(s.get("trace", 1))
        sp.span_id = s.get("span", _span_counter[0].to_bytes(8, "big"))
        sp.parent_span_id = s.get("parent", b"")
        sp.name = s.get("name", "op")
        start = T0 + int(s.get("start_ms", 0) * MS)
        sp.start_time_unix_nano = start
        sp.end_time_unix_nano = start + int(round(s.get("dur_ms", 1) * MS))
        sp.status.code = s.get("status", 0)
        sp.trace_state = s.get("trace_state", "")
        sp.flags = s.get("flags", 0)
        for k, v in s.get("attrs", {}).items():
            sp.attributes.append(_kv(k, v))
        for name, attrs in s.get("events", []):
            ev = sp.events.add()
            ev.name = name
            ev.time_unix_nano = start
            for k, v in attrs.items():
                ev.attributes.append(_kv(k, v))
    return req.SerializeToString()


def spans(*specs: dict) -> pa.Table:
    return decode_traces([request(list(specs))])


def batch_of(table: pa.Table, wall: float = 1000.0, trace_bytes: np.ndarray | None = None) -> TraceBatch:
    """Group a span table by trace (first-appearance order of ids, arrival order within)."""
    ids = [bytes(x) for x in table.column("trace_id").to_pylist()]
    first: dict[bytes, int] = {}
    ti = np.array([first.setdefault(i, len(first)) for i in ids], dtype=np.int64)
    order = np.argsort(ti, kind="stable")
    m = len(first)
    tb = trace_bytes if trace_bytes is not None else np.zeros(m)
    return TraceBatch(table.take(pa.array(order)), ti[order], m, wall, tb)


def policy(pol: dict) -> Any:
    problems: list[str] = []
    cfg = parse_config({"policies": [{"name": "p", **pol}]}, "tail_sampling", problems)
    assert cfg is not None, problems
    return build_evaluator(cfg.policies[0])


def decide(pol: dict | Any, table: pa.Table, **kw: Any) -> list[int]:
    ev = policy(pol) if isinstance(pol, dict) else pol
    b = batch_of(table, **kw)
    return ev.evaluate(b, np.ones(b.m, dtype=np.bool_)).tolist()


S, N, IS, INS = SAMPLED, NOT_SAMPLED, INVERT_SAMPLED, INVERT_NOT_SAMPLED

# ------------------------------------------------------------------------------------------------
# latency


@pytest.mark.parametrize("dur_ms,expected", [(4999, N), (4999.999, N), (5000, S), (5000.9, S), (5001, S)])
def test_latency_at_least(dur_ms: float, expected: int) -> None:
    pol = {"type": "latency", "latency": {"threshold_ms": 5000}}
    assert decide(pol, spans({"dur_ms": dur_ms})) == [expected]


@pytest.mark.parametrize("dur_ms,expected", [(5000, N), (5001, S), (6000, S), (6001, N)])
def test_latency_with_upper_bound_has_exclusive_lower_edge(dur_ms: float, expected: int) -> None:
    pol = {"type": "latency", "latency": {"threshold_ms": 5000, "upper_threshold_ms": 6000}}
    assert decide(pol, spans({"dur_ms": dur_ms})) == [expected]


def test_latency_duration_spans_the_whole_trace() -> None:
    pol = {"type": "latency", "latency": {"threshold_ms": 5000}}
    t = spans({"start_ms": 0, "dur_ms": 1000}, {"start_ms": 4500, "dur_ms": 600},
              {"trace": 2, "start_ms": 0, "dur_ms": 100}, {"trace": 2, "start_ms": 4000, "dur_ms": 999})
    assert decide(pol, t) == [S, N]


def test_latency_upper_bound_prefix_quirk() -> None:
    """A prefix in range samples the trace even though the whole trace exceeds the upper bound;
    in the other arrival order no prefix is in range."""
    pol = {"type": "latency", "latency": {"threshold_ms": 5000, "upper_threshold_ms": 6000}}
    t = spans({"trace": 1, "dur_ms": 5500}, {"trace": 1, "dur_ms": 7000},
              {"trace": 2, "dur_ms": 7000}, {"trace": 2, "dur_ms": 5500})
    assert decide(pol, t) == [S, N]


# ------------------------------------------------------------------------------------------------
# numeric_attribute


@pytest.mark.parametrize("value,expected", [(49, N), (50, S), (75, S), (100, S), (101, N)])
def test_numeric_range_inclusive(value: int, expected: int) -> None:
    pol = {"type": "numeric_attribute", "numeric_attribute": {"key": "k", "min_value": 50, "max_value": 100}}
    assert decide(pol, spans({"attrs": {"k": value}})) == [expected]
    assert decide(pol, spans({"res": {"k": value}})) == [expected]  # resource attributes count


def test_numeric_other_types_read_as_zero_and_zero_means_unset() -> None:
    rng = {"type": "numeric_attribute", "numeric_attribute": {"key": "k", "min_value": 50, "max_value": 100}}
    t = spans({"trace": 1, "attrs": {"k": 75.0}}, {"trace": 2, "attrs": {"k": "75"}},
              {"trace": 3, "attrs": {"other": 75}}, {"trace": 4, "attrs": {"k": 10}}, {"trace": 4, "attrs": {"k": 60}})
    assert decide(rng, t) == [N, N, N, S]
    zero = {"type": "numeric_attribute", "numeric_attribute": {"key": "k", "min_value": 0, "max_value": 100}}
    t = spans({"trace": 1, "attrs": {"k": -5}}, {"trace": 2, "attrs": {"k": 75.5}},
              {"trace": 3, "attrs": {"k": "x"}}, {"trace": 4, "attrs": {"k": 101}}, {"trace": 5})
    # min 0 = no lower bound: -5 matches; a double or string reads 0, which is in range.
    assert decide(zero, t) == [S, S, S, N, N]
    only_max_zero = {"type": "numeric_attribute", "numeric_attribute": {"key": "k", "min_value": 10, "max_value": 0}}
    assert decide(only_max_zero, spans({"attrs": {"k": 10**12}})) == [S]


def test_numeric_invert_match() -> None:
    pol = {"type": "numeric_attribute",
           "numeric_attribute": {"key": "k", "min_value": 50, "max_value": 100, "invert_match": True}}
    t = spans({"trace": 1, "attrs": {"k": 75}}, {"trace": 2, "attrs": {"k": 7}}, {"trace": 3},
              {"trace": 4, "attrs": {"k": 7}}, {"trace": 4, "res": {"k": 60}})
    assert decide(pol, t) == [INS, IS, IS, INS]


# ------------------------------------------------------------------------------------------------
# status_code


def test_status_code_lists() -> None:
    t = spans({"trace": 1, "status": 1}, {"trace": 1, "status": 2}, {"trace": 2, "status": 1},
              {"trace": 3, "status": 0})
    assert decide({"type": "status_code", "status_code": {"status_codes": ["ERROR"]}}, t) == [S, N, N]
    assert decide({"type": "status_code", "status_code": {"status_codes": ["ERROR", "UNSET"]}}, t) == [S, N, S]
    assert decide({"type": "status_code", "status_code": {"status_codes": ["OK"]}}, t) == [S, S, N]


# ------------------------------------------------------------------------------------------------
# string_attribute


def test_string_exact_vs_regex() -> None:
    t = spans({"trace": 1, "attrs": {"k": "value1"}}, {"trace": 2, "attrs": {"k": "value10"}},
              {"trace": 3, "attrs": {"k": "xvalue1"}}, {"trace": 4, "attrs": {"k": ""}},
              {"trace": 5, "res": {"k": "value1"}}, {"trace": 6, "attrs": {"k": 1}})
    exact = {"type": "string_attribute", "string_attribute": {"key": "k", "values": ["value1", ""]}}
    assert decide(exact, t) == [S, N, N, N, S, N]
    regex = {"type": "string_attribute",
             "string_attribute": {"key": "k", "values": ["value1"], "enabled_regex_matching": True}}
    assert decide(regex, t) == [S, S, S, N, S, N]  # unanchored: value10 and xvalue1 match
    anchored = {"type": "string_attribute",
                "string_attribute": {"key": "k", "values": ["^value1$"], "enabled_regex_matching": True}}
    assert decide(anchored, t) == [S, N, N, N, S, N]


def test_string_non_string_values_read_empty() -> None:
    """A non-string value reads as "": a regex that matches "" matches it on a resource; a span's
    empty value never matches."""
    t = spans({"trace": 1, "res": {"k": 5}}, {"trace": 2, "attrs": {"k": 5}}, {"trace": 3})
    pol = {"type": "string_attribute",
           "string_attribute": {"key": "k", "values": [".*"], "enabled_regex_matching": True}}
    assert decide(pol, t) == [S, N, N]


def test_string_invert_match_absent_key() -> None:
    pol = {"type": "string_attribute", "string_attribute": {"key": "k", "values": ["a"], "invert_match": True}}
    t = spans({"trace": 1, "attrs": {"k": "a"}}, {"trace": 2, "attrs": {"k": "b"}}, {"trace": 3},
              {"trace": 4, "attrs": {"k": "b"}}, {"trace": 4, "res": {"k": "a"}})
    assert decide(pol, t) == [INS, IS, IS, INS]


# ------------------------------------------------------------------------------------------------
# boolean_attribute, trace_state, trace_flags, span_count


def test_boolean_non_bool_reads_false() -> None:
    t = spans({"trace": 1, "attrs": {"b": True}}, {"trace": 2, "attrs": {"b": False}},
              {"trace": 3, "attrs": {"b": "true"}}, {"trace": 4}, {"trace": 5, "res": {"b": True}})
    yes = {"type": "boolean_attribute", "boolean_attribute": {"key": "b", "value": True}}
    no = {"type": "boolean_attribute", "boolean_attribute": {"key": "b", "value": False}}
    assert decide(yes, t) == [S, N, N, N, S]
    assert decide(no, t) == [N, S, S, N, N]
    inv = {"type": "boolean_attribute", "boolean_attribute": {"key": "b", "value": True, "invert_match": True}}
    assert decide(inv, t) == [INS, IS, IS, IS, INS]


@pytest.mark.parametrize("state,expected", [
    ("key3=value1", S), ("a=b,key3=value2", S), ("key3=value3", N), ("", N), ("a=value1", N),
    ("key3=value1,key3=value2", N),  # duplicate key: unparsable
    ("KEY3=value1", N),  # invalid key
    ("key3=value1,,x=y", S), (" key3=value1 ", S), ("key3", N),
    (",".join(f"k{i}=v" for i in range(32)) + ",key3=value1", N),  # 33 members
])
def test_trace_state(state: str, expected: int) -> None:
    pol = {"type": "trace_state", "trace_state": {"key": "key3", "values": ["value1", "value2"]}}
    assert decide(pol, spans({"trace_state": state})) == [expected]


def test_trace_state_parse() -> None:
    assert parse_trace_state("a=1,b@c=2") == {"a": "1", "b@c": "2"}
    assert parse_trace_state("a=") is None


def test_trace_flags() -> None:
    t = spans({"trace": 1, "flags": 1}, {"trace": 2, "flags": 0}, {"trace": 3, "flags": 0x301},
              {"trace": 4, "flags": 0x300}, {"trace": 4, "flags": 1})
    assert decide({"type": "trace_flags"}, t) == [S, N, S, S]


@pytest.mark.parametrize("n,expected", [(1, N), (2, S), (20, S), (21, N)])
def test_span_count_edges(n: int, expected: int) -> None:
    pol = {"type": "span_count", "span_count": {"min_spans": 2, "max_spans": 20}}
    assert decide(pol, spans(*[{"trace": 1}] * n)) == [expected]
    open_ended = {"type": "span_count", "span_count": {"min_spans": 2}}
    assert decide(open_ended, spans(*[{"trace": 1}] * n)) == [N if n < 2 else S]


# ------------------------------------------------------------------------------------------------
# probabilistic (FNV-1a 64)


def test_fnv_reference_vectors() -> None:
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_fnv_vectorized_matches_pure_python() -> None:
    rng = random.Random(7)
    ids = [rng.randbytes(16) for _ in range(5000)] + [bytes(16), b"\xff" * 16]
    arr = np.frombuffer(b"".join(ids), dtype=np.uint8).reshape(-1, 16)
    for salt in (b"default-hash-seed", b"custom-salt", b""):
        got = fnv1a64_ids(arr, salt).tolist()
        assert got == [fnv1a64(salt + i) for i in ids]


def test_probabilistic_threshold() -> None:
    assert probabilistic_threshold(0) == 0
    assert probabilistic_threshold(100) == 2**64 - 1
    assert probabilistic_threshold(250) == 2**64 - 1
    assert probabilistic_threshold(50) == 2**63 - 1
    for pct in (0.1, 1, 10, 33.3, 99.9):
        exact = (2**64 - 1) * (pct / 100)
        assert abs(probabilistic_threshold(pct) - exact) <= 2**12  # only float rounding apart


# Known decisions computed offline with the formula (pure-Python FNV above, salt "custom-salt").
KNOWN_IDS = [bytes.fromhex(h) for h in (
    "5b8efff798038103d269b633813fc60c", "00000000000000000000000000000001",
    "4bf92f3577b34da6a3ce929d0e0e4736", "ffffffffffffffffffffffffffffffff",
    "0af7651916cd43dd8448eb211c80319c", "1234567890abcdef1234567890abcdef",
)]


def test_probabilistic_known_ids() -> None:
    table = spans(*[{"trace": int.from_bytes(i, "big")} for i in KNOWN_IDS])
    for pct in (10, 25, 50, 75):
        thr = probabilistic_threshold(pct)
        expected = [S if fnv1a64(b"custom-salt" + i) <= thr else N for i in KNOWN_IDS]
        pol = {"type": "probabilistic", "probabilistic": {"sampling_percentage": pct, "hash_salt": "custom-salt"}}
        assert decide(pol, table) == expected
    # regression pins (so a change of salt handling or byte order cannot slip through)
    assert [fnv1a64(b"default-hash-seed" + i) <= probabilistic_threshold(50) for i in KNOWN_IDS] == \
        [fnv1a64_ids(np.frombuffer(i, np.uint8).reshape(1, 16), b"default-hash-seed")[0]
         <= np.uint64(probabilistic_threshold(50)) for i in KNOWN_IDS]
    assert decide({"type": "probabilistic", "probabilistic": {"sampling_percentage": 100}}, table) == [S] * 6
    assert decide({"type": "probabilistic", "probabilistic": {"sampling_percentage": 0}}, table) == [N] * 6


def test_probabilistic_default_salt() -> None:
    table = spans(*[{"trace": int.from_bytes(i, "big")} for i in KNOWN_IDS])
    thr = probabilistic_threshold(50)
    expected = [S if fnv1a64(b"default-hash-seed" + i) <= thr else N for i in KNOWN_IDS]
    assert decide({"type": "probabilistic", "probabilistic": {"sampling_percentage": 50}}, table) == expected


# ------------------------------------------------------------------------------------------------
# rate_limiting, bytes_limiting, composite (stateful)


def _ten_span_traces(k: int) -> pa.Table:
    return spans(*[{"trace": t} for t in range(1, k + 1) for _ in range(10)])


def test_rate_limiting_strict_less_than_and_new_second() -> None:
    ev = policy({"type": "rate_limiting", "rate_limiting": {"spans_per_second": 35}})
    assert decide(ev, _ten_span_traces(5), wall=100.2) == [S, S, S, N, N]
    assert decide(ev, _ten_span_traces(1), wall=100.9) == [N]  # same second: 30 + 10 = 40
    assert decide(ev, _ten_span_traces(5), wall=101.0) == [S, S, S, N, N]  # reset


def test_rate_limiting_skips_a_big_trace_then_admits_a_small_one() -> None:
    ev = policy({"type": "rate_limiting", "rate_limiting": {"spans_per_second": 12}})
    t = spans(*[{"trace": 1}] * 5, *[{"trace": 2}] * 10, *[{"trace": 3}] * 6, *[{"trace": 4}] * 1)
    assert decide(ev, t, wall=5.0) == [S, N, S, N]  # 5, (15 no), 11, (12 is not < 12)


def test_rate_limiting_only_charges_active_traces() -> None:
    ev = policy({"type": "rate_limiting", "rate_limiting": {"spans_per_second": 35}})
    b = batch_of(_ten_span_traces(4), wall=7.0)
    assert ev.evaluate(b, np.array([False, True, True, True])).tolist()[1:] == [S, S, S]


def test_bytes_limiting_token_bucket() -> None:
    ev = policy({"type": "bytes_limiting", "bytes_limiting": {"bytes_per_second": 100, "burst_capacity": 250}})
    t = _ten_span_traces(4)
    sizes = np.array([100.0, 100.0, 100.0, 40.0])
    assert decide(ev, t, wall=10.0, trace_bytes=sizes) == [S, S, N, S]  # 250 → 150 → 50 → 10
    assert decide(ev, t, wall=10.5, trace_bytes=sizes) == [N, N, N, S]  # +50 → 60 → 20
    assert decide(ev, t, wall=13.0, trace_bytes=sizes) == [S, S, N, S]  # refilled to the cap
    big = np.array([300.0, 1.0, 1.0, 1.0])
    assert decide(ev, t, wall=100.0, trace_bytes=big) == [N, S, S, S]  # larger than burst: never
    default = policy({"type": "bytes_limiting", "bytes_limiting": {"bytes_per_second": 100}})
    assert default.burst == 200


COMPOSITE = {
    "type": "composite",
    "composite": {
        "max_total_spans_per_second": 1000,
        "policy_order": ["c1", "c2", "c3"],
        "composite_sub_policy": [
            {"name": "c1", "type": "numeric_attribute", "numeric_attribute": {"key": "key1", "min_value": 50}},
            {"name": "c2", "type": "string_attribute", "string_attribute": {"key": "key2", "values": ["value1"]}},
            {"name": "c3", "type": "always_sample"},
        ],
        "rate_allocation": [{"policy": "c1", "percent": 50}, {"policy": "c2", "percent": 25}],
    },
}


def test_composite_budgets_and_first_match_claims() -> None:
    ev = policy(COMPOSITE)
    assert ev.budgets.tolist() == [500, 250, 0]
    # 300-span traces: c1 admits one (300 ≤ 500) then not (600 > 500), even though each also
    # matches c2, which would still have budget; c2 admits its own; c3 never (budget 0).
    c1 = [{"trace": 1, "attrs": {"key1": 60, "key2": "value1"}}] * 300
    c1b = [{"trace": 2, "attrs": {"key1": 60, "key2": "value1"}}] * 300
    c2 = [{"trace": 3, "attrs": {"key2": "value1"}}] * 200
    c3 = [{"trace": 4}]
    assert decide(ev, spans(*c1, *c1b, *c2, *c3), wall=50.0) == [S, N, S, N]
    # new second: counters reset
    assert decide(ev, spans(*c1b), wall=51.0) == [S]


def test_composite_zero_percent_gets_an_equal_share() -> None:
    cfg = {**COMPOSITE, "composite": {**COMPOSITE["composite"], "rate_allocation": [
        {"policy": "c1", "percent": 50}, {"policy": "c3", "percent": 0}]}}
    ev = policy(cfg)
    assert ev.budgets.tolist() == [500, 0, 333]
    assert decide(ev, spans(*[{"trace": 4}] * 333), wall=3.0) == [S]


# ------------------------------------------------------------------------------------------------
# and / not / drop


def test_and_probabilistic_gated_by_attribute() -> None:
    pol = {"type": "and", "and": {"and_sub_policy": [
        {"name": "s", "type": "string_attribute", "string_attribute": {"key": "k", "values": ["v"]}},
        {"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 100}},
    ]}}
    t = spans({"trace": 1, "attrs": {"k": "v"}}, {"trace": 2, "attrs": {"k": "w"}})
    assert decide(pol, t) == [S, N]
    inv = {"type": "and", "and": {"and_sub_policy": [
        {"name": "s", "type": "string_attribute",
         "string_attribute": {"key": "k", "values": ["v"], "invert_match": True}},
        {"name": "a", "type": "always_sample"},
    ]}}
    assert decide(inv, t) == [N, S]  # InvertNotSampled short-circuits, InvertSampled passes


def test_drop_and_not() -> None:
    drop = {"type": "drop", "drop": {"drop_sub_policy": [
        {"name": "hc", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["/healthz"]}},
    ]}}
    t = spans({"trace": 1, "attrs": {"http.route": "/healthz"}}, {"trace": 2, "attrs": {"http.route": "/api"}})
    assert decide(drop, t) == [DROPPED, N]
    neg = {"type": "not", "not": {"not_sub_policy": {"name": "e", "type": "status_code",
                                                      "status_code": {"status_codes": ["ERROR"]}}}}
    t = spans({"trace": 1, "status": 2}, {"trace": 2, "status": 1})
    assert decide(neg, t) == [N, S]


# ------------------------------------------------------------------------------------------------
# ottl_condition


class _FakeCond:
    """Fails on any batch holding a span named "bad"; true for spans named "good"."""

    def evaluate(self, ctx: Any) -> np.ndarray:
        from lookout.pipeline.ottl import OttlError

        names = np.array(ctx.table.column("name").to_pylist(), dtype=object)
        if (names == "bad").any():
            raise OttlError("boom")
        return names == "good"


def _fake_ottl(mode: str) -> OttlCondition:
    from lookout.pipeline.tailsampling.config import OttlConditionCfg

    return OttlCondition("o", OttlConditionCfg(("x",), (), mode, (_FakeCond(),), ()))


def test_ottl_error_modes_with_a_failing_span() -> None:
    pytest.importorskip("lookout.pipeline.span_table")
    t = spans({"trace": 1, "name": "bad"}, {"trace": 1, "name": "good"},
              {"trace": 2, "name": "good"}, {"trace": 2, "name": "bad"},
              {"trace": 3, "name": "other"})
    assert decide(_fake_ottl("propagate"), t) == [ERROR, S, N]  # the first failure wins
    assert decide(_fake_ottl("ignore"), t) == [S, S, N]
    assert decide(_fake_ottl("silent"), t) == [S, S, N]


def test_ottl_span_and_spanevent_conditions() -> None:
    pytest.importorskip("lookout.pipeline.span_table")
    pol = {"type": "ottl_condition", "ottl_condition": {
        "span": ['attributes["test_attr"] == "val"'],
        "spanevent": ['name == "exception"', 'attributes["code"] == 7']}}
    t = spans({"trace": 1, "attrs": {"test_attr": "val"}},
              {"trace": 2, "events": [("log", {}), ("exception", {})]},
              {"trace": 3, "events": [("log", {"code": 7})]},
              {"trace": 4, "attrs": {"test_attr": "nope"}, "events": [("log", {"code": 8})]},
              {"trace": 5})
    assert decide(pol, t) == [S, S, S, N, N]
