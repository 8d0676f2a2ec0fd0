"""The tail-sampling state machine with a fake clock: NOTES §5 scenarios, late spans, eviction,
decision caches, low water, shutdown, and a 100,000-trace synthetic run."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from lookout.pipeline.stats import ProcessorStats
from lookout.pipeline.tailsampling import TailSampler, parse_config
from lookout.traces.schema import SPAN_SCHEMA
from tests.pipeline.test_tailsampling_policies import spans, tid


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def sampler(policies: list[dict], **opts: Any) -> tuple[TailSampler, ProcessorStats, Clock, Clock]:
    problems: list[str] = []
    cfg = parse_config({"policies": policies, **opts}, "tail_sampling", problems)
    assert cfg is not None, problems
    stats = ProcessorStats("traces", "tail_sampling")
    clock, wall = Clock(0.0), Clock(1_000.0)
    return TailSampler(cfg, stats, clock=clock, wall=wall), stats, clock, wall


ALWAYS = [{"name": "all", "type": "always_sample"}]
ERRORS = [{"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]


def rows(tables: list[pa.Table]) -> int:
    return sum(t.num_rows for t in tables)


def run_until(ts: TailSampler, clock: Clock, until: float, step: float = 0.05) -> list[tuple[float, pa.Table]]:
    out = []
    while clock.t < until - 1e-9:
        clock.t = round(clock.t + step, 6)
        out += [(clock.t, t) for t in ts.tick()]
    return out


# ------------------------------------------------------------------------------------------------
# §5.1 – §5.3


def test_one_batch_about_decision_wait_after_the_first_span() -> None:
    ts, stats, clock, _ = sampler(ALWAYS, decision_wait="10s")
    released = []
    for at, start_ms in ((0.5, 0), (2.5, 2000), (5.0, 4500)):
        released += run_until(ts, clock, at)
        assert ts.add(spans({"trace": 1, "start_ms": start_ms}), offset=int(at * 10)) == []
    assert (ts.pending_traces, ts.pending_spans) == (1, 3) and ts.pending_bytes > 0
    released += run_until(ts, clock, 15.0)
    assert len(released) == 1
    at, table = released[0]
    assert table.num_rows == 3 and 10.0 <= at - 0.5 <= 11.0
    assert (ts.pending_traces, ts.pending_spans, ts.pending_bytes) == (0, 0, 0)
    assert stats.get("decided_traces", decision="sampled") == 1
    assert stats.get("sampled_spans") == 3 and stats.get("received_spans") == 3


def test_late_spans_follow_the_stored_decision() -> None:
    ts, stats, clock, _ = sampler(ERRORS, decision_wait="10s")
    clock.t = 0.5
    ts.add(spans({"trace": 1, "status": 2}, {"trace": 2, "status": 1}), 0)
    run_until(ts, clock, 12.0)
    assert ts.decision(tid(1)) is True and ts.decision(tid(2)) is False
    late = ts.add(spans({"trace": 1, "name": "late"}, {"trace": 2, "name": "late"}), 1)
    assert rows(late) == 1 and late[0].column("name").to_pylist() == ["late"]
    assert stats.get("late_spans", decision="sampled") == 1
    assert stats.get("late_spans", decision="not_sampled") == 1
    assert ts.pending_traces == 0 and ts.low_water() is None


def test_num_traces_evicts_the_oldest_undecided_trace() -> None:
    ts, stats, clock, _ = sampler(ALWAYS, decision_wait="10s", num_traces=2)
    for i in (1, 2, 3):
        clock.t = i * 0.3
        ts.add(spans({"trace": i}), offset=i)
    assert stats.get("dropped_too_early_traces") == 1
    assert ts.pending_traces == 2 and ts.pending_spans == 2
    assert ts.low_water() == 2  # the evicted trace's record no longer holds anything pending
    released = run_until(ts, clock, 12.0)
    ids = {bytes(x) for _, t in released for x in t.column("trace_id").to_pylist()}
    assert ids == {tid(2), tid(3)} and ts.decision(tid(1)) is None


def test_evicted_decided_trace_without_cache_starts_over() -> None:
    ts, stats, clock, _ = sampler(ERRORS, decision_wait="1s", num_traces=1)
    clock.t = 0.5
    ts.add(spans({"trace": 1, "status": 2}), 0)
    run_until(ts, clock, 2.5)
    assert ts.decision(tid(1)) is True
    ts.add(spans({"trace": 2}), 1)  # evicts trace 1's decided entry (no dropped_too_early)
    assert stats.get("dropped_too_early_traces") == 0 and ts.decision(tid(1)) is None
    assert ts.add(spans({"trace": 1}), 2) == []  # a new trace: held, fresh decision on late spans only
    assert stats.get("dropped_too_early_traces") == 1  # ... which evicted pending trace 2
    run_until(ts, clock, 6.0)
    assert ts.decision(tid(1)) is False  # the late span alone has no error


def test_decision_caches_answer_late_spans_after_the_entry_left_memory() -> None:
    ts, stats, clock, _ = sampler(ERRORS, decision_wait="1s", num_traces=1,
                                  decision_cache={"sampled_cache_size": 10, "non_sampled_cache_size": 10})
    clock.t = 0.5
    ts.add(spans({"trace": 1, "status": 2}), 0)
    ts.add(spans({"trace": 2}), 1)  # num_traces 1: evicts trace 1, undecided
    assert stats.get("dropped_too_early_traces") == 1
    ts.add(spans({"trace": 3, "status": 2}), 2)  # evicts 2
    run_until(ts, clock, 3.0)
    ts.add(spans({"trace": 4}), 3)
    run_until(ts, clock, 6.0)
    assert ts.decision(tid(3)) is True and ts.decision(tid(4)) is False  # both from the caches
    assert ts._ids == {}  # entries left memory at decision time
    for _ in range(3):  # many traces later, the caches still answer
        assert rows(ts.add(spans({"trace": 3}), 9)) == 1
        assert ts.add(spans({"trace": 4}), 9) == []
    assert stats.get("late_spans", decision="sampled") == 3
    assert stats.get("late_spans", decision="not_sampled") == 3
    assert ts.pending_traces == 0


def test_decision_cache_is_lru() -> None:
    ts, _, clock, _ = sampler(ALWAYS, decision_wait="1s", decision_cache={"sampled_cache_size": 2})
    clock.t = 0.5
    for i in (1, 2):
        ts.add(spans({"trace": i}), i)
    run_until(ts, clock, 3.0)
    ts.add(spans({"trace": 1}), 5)  # touch 1, so 2 is the least recently used
    ts.add(spans({"trace": 3}), 6)
    run_until(ts, clock, 6.0)
    assert ts.decision(tid(1)) is True and ts.decision(tid(3)) is True and ts.decision(tid(2)) is None


# ------------------------------------------------------------------------------------------------
# combination (§3), drop, sample_on_first_match


def decide_once(policies: list[dict], *specs: dict, **opts: Any) -> tuple[dict[int, bool | None], ProcessorStats]:
    ts, stats, clock, _ = sampler(policies, decision_wait="1s", **opts)
    clock.t = 0.5
    ts.add(spans(*specs), 0)
    run_until(ts, clock, 3.0)
    traces = sorted({s.get("trace", 1) for s in specs})
    return {t: ts.decision(tid(t)) for t in traces}, stats


HEALTH = {"name": "no-health", "type": "drop", "drop": {"drop_sub_policy": [
    {"name": "hc", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["/healthz"]}}]}}


def test_drop_vetoes_always_sample_wherever_it_is_listed() -> None:
    specs = ({"trace": 1, "attrs": {"http.route": "/healthz"}}, {"trace": 2, "attrs": {"http.route": "/api"}})
    got, stats = decide_once([*ALWAYS, HEALTH], *specs)
    assert got == {1: False, 2: True}
    # drop ran first and stopped evaluation for trace 1: always_sample saw only trace 2
    assert stats.get("policy_decisions", policy="all", decision="sampled") == 1
    assert stats.get("policy_decisions", policy="no-health", decision="dropped") == 1


def test_and_with_probabilistic_100() -> None:
    pol = {"name": "and", "type": "and", "and": {"and_sub_policy": [
        {"name": "svc", "type": "string_attribute",
         "string_attribute": {"key": "service.name", "values": ["checkout"]}},
        {"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 100}}]}}
    got, _ = decide_once([pol], {"trace": 1, "res": {"service.name": "checkout"}},
                         {"trace": 2, "res": {"service.name": "cart"}})
    assert got == {1: True, 2: False}


INV_A = {"name": "inv", "type": "string_attribute",
         "string_attribute": {"key": "k", "values": ["a"], "invert_match": True}}


@pytest.mark.parametrize("policies,expected", [
    ([INV_A], {1: False, 2: True}),  # InvertNotSampled / InvertSampled alone
    ([INV_A, *ALWAYS], {1: False, 2: True}),  # InvertNotSampled vetoes Sampled
    ([INV_A, *ERRORS], {1: False, 2: False}),  # InvertSampled + NotSampled → not sampled
    ([*ERRORS, {"name": "e2", "type": "status_code", "status_code": {"status_codes": ["OK"]}}],
     {1: False, 2: True}),  # plain OR
])
def test_final_decision_table(policies: list[dict], expected: dict[int, bool]) -> None:
    got, _ = decide_once(policies, {"trace": 1, "attrs": {"k": "a"}, "status": 0},
                         {"trace": 2, "attrs": {"k": "b"}, "status": 1})
    assert got == expected


def test_policy_errors_are_counted_and_ignored() -> None:
    class Boom:
        name = "boom"

        def evaluate(self, batch: Any, active: Any) -> Any:
            raise RuntimeError("bug")

    ts, stats, clock, _ = sampler(ALWAYS, decision_wait="1s")
    ts.policies.insert(0, Boom())
    clock.t = 0.5
    ts.add(spans({"trace": 1}), 0)
    run_until(ts, clock, 3.0)
    assert ts.decision(tid(1)) is True and stats.get("policy_evaluation_errors", policy="boom") == 1


def test_sample_on_first_match_stops_evaluation() -> None:
    rl = {"name": "rl", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 1000}}
    specs = ({"trace": 1, "status": 2}, {"trace": 2})
    _, stats = decide_once([*ERRORS, rl], *specs, sample_on_first_match=True)
    assert stats.get("policy_decisions", policy="rl", decision="sampled") == 1  # only trace 2
    _, stats = decide_once([*ERRORS, rl], *specs)
    assert stats.get("policy_decisions", policy="rl", decision="sampled") == 2


def test_rate_limiting_in_the_processor_follows_wall_seconds() -> None:
    ts, _, clock, wall = sampler([{"name": "rl", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 35}}],
                                 decision_wait="1s")
    clock.t = 0.5
    ts.add(spans(*[{"trace": t} for t in range(1, 6) for _ in range(10)]), 0)
    wall.t = 5000.3
    assert rows([t for _, t in run_until(ts, clock, 3.0)]) == 30
    ts.add(spans(*[{"trace": t} for t in range(6, 11) for _ in range(10)]), 1)
    wall.t = 5001.0
    assert rows([t for _, t in run_until(ts, clock, 6.0)]) == 30


# ------------------------------------------------------------------------------------------------
# low water, shutdown, root wait, size limit


def test_low_water_advances_as_traces_are_decided() -> None:
    ts, _, clock, _ = sampler(ALWAYS, decision_wait="2s")
    assert ts.low_water() is None
    clock.t = 0.5
    ts.add(spans({"trace": 1}), 10)
    assert run_until(ts, clock, 1.5) == []  # tick 1 closes the batch holding trace 1
    ts.add(spans({"trace": 2}), 11)
    clock.t = 1.8
    ts.add(spans({"trace": 1}, {"trace": 3}), 12)  # more of trace 1; trace 3 is new
    assert run_until(ts, clock, 2.95) == []  # tick 2 closes the batch holding traces 2 and 3
    assert ts.low_water() == 10
    released = run_until(ts, clock, 3.0)  # tick 3 decides trace 1 (both of its spans)
    assert [(at, t.num_rows) for at, t in released] == [(3.0, 2)] and ts.low_water() == 11
    released = run_until(ts, clock, 4.0)  # tick 4: traces 2 and 3
    assert rows([t for _, t in released]) == 2 and ts.low_water() is None
    assert ts._chunks == [] and ts._staging == []  # nothing pending → no chunk kept


def test_decide_all_and_drop_on_shutdown() -> None:
    ts, stats, clock, _ = sampler(ERRORS, decision_wait="30s")
    ts.add(spans({"trace": 1, "status": 2}, {"trace": 2}, {"trace": 1}), 0)
    out = ts.decide_all()
    assert rows(out) == 2 and ts.pending_traces == 0 and ts.low_water() is None
    assert ts.decision(tid(1)) is True and ts.decision(tid(2)) is False
    ts, stats, clock, _ = sampler(ALWAYS, decision_wait="30s", drop_pending_traces_on_shutdown=True)
    ts.add(spans({"trace": 1}), 0)
    assert ts.decide_all() == [] and ts.pending_traces == 0 and ts.decision(tid(1)) is None
    assert stats.get("dropped_on_shutdown_traces") == 1


def test_decision_wait_after_root_received() -> None:
    ts, _, clock, _ = sampler(ALWAYS, decision_wait="10s", decision_wait_after_root_received="1s")
    clock.t = 0.5
    ts.add(spans({"trace": 1, "parent": b"\x01" * 8}, {"trace": 2, "parent": b"\x01" * 8}), 0)
    run_until(ts, clock, 1.5)
    ts.add(spans({"trace": 1}), 1)  # root span of trace 1, after tick 1: decided at tick 3
    released = run_until(ts, clock, 4.0)
    assert [(at, t.num_rows) for at, t in released] == [(3.0, 2)]
    released = run_until(ts, clock, 12.0)
    assert rows([t for _, t in released]) == 1 and ts.pending_traces == 0


def test_maximum_trace_size_bytes() -> None:
    one = spans({"trace": 1})
    ts, stats, clock, _ = sampler(ALWAYS, decision_wait="5s", maximum_trace_size_bytes=one.nbytes * 3)
    for _ in range(5):
        ts.add(spans({"trace": 1}), 0)
    ts.add(spans({"trace": 2}), 1)
    assert ts.decision(tid(1)) is False and stats.get("dropped_too_large_traces") == 1
    assert ts.pending_traces == 1
    assert ts.add(spans({"trace": 1}), 2) == []


# ------------------------------------------------------------------------------------------------
# 100,000 traces


def fast_table(ids: np.ndarray, start: np.ndarray, dur: np.ndarray, status: np.ndarray) -> pa.Table:
    """A span table built straight from arrays (bulk data without protobuf round trips)."""
    n = len(ids)
    cols = {
        "trace_id": pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(ids.tobytes())]),
        "span_id": pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(8), n, [None, pa.py_buffer(np.arange(n, dtype=">u8").tobytes())]),
        "start_time_unix_nano": pa.array(start, pa.int64()),
        "duration_nano": pa.array(dur, pa.int64()),
        "status_code": pa.array(status, pa.int8()),
        "name": pa.array(np.full(n, "op", dtype=object), pa.string()),
    }
    arrays = [cols.get(f.name, pa.nulls(n, f.type)) for f in SPAN_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)


def test_hundred_thousand_traces() -> None:
    policies = [
        *ERRORS,
        {"name": "slow", "type": "latency", "latency": {"threshold_ms": 1000}},
        {"name": "sample", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}},
    ]
    ts, stats, clock, _ = sampler(policies, decision_wait="2s", num_traces=50_000)
    rng = np.random.default_rng(42)
    n_traces, per = 100_000, 3
    ids = rng.integers(0, 256, size=(n_traces, 16), dtype=np.uint8)
    is_err = rng.random(n_traces) < 0.01
    is_slow = rng.random(n_traces) < 0.01
    # spans of trace i: rows i*3 .. i*3+2; the trace's arrival spreads over 3 consecutive records
    t_id = np.repeat(np.arange(n_traces), per)
    start = 1_700_000_000_000_000_000 + t_id * 1000 + np.tile([0, 10 * 1_000_000, 20 * 1_000_000], n_traces)
    dur = np.full(n_traces * per, 100 * 1_000_000, dtype=np.int64)
    dur[(np.arange(n_traces * per) % per == 2) & is_slow[t_id]] = 1500 * 1_000_000
    status = np.where((np.arange(n_traces * per) % per == 1) & is_err[t_id], 2, 1).astype(np.int8)
    # interleave: record r holds span 0 of traces [r*B, (r+1)*B), span 1 of the previous block, ...
    block = 1000
    order = []
    n_blocks = n_traces // block
    for r in range(n_blocks + per - 1):
        for k in range(per):
            b = r - k
            if 0 <= b < n_blocks:
                order.append(np.arange(b * block, (b + 1) * block) * per + k)
    released: list[pa.Table] = []
    for r, idx in enumerate(np.split(np.concatenate(order), np.cumsum([len(o) for o in order])[:-1])):
        clock.t = 0.1 * r  # ~10,000 new traces per second
        released += ts.add(fast_table(ids[t_id[idx]], start[idx], dur[idx], status[idx]), offset=r)
        released += ts.tick()
        lw = ts.low_water()
        assert lw is None or lw <= r
    while ts.pending_traces:
        clock.t += 0.25
        released += ts.tick()
    assert stats.get("dropped_too_early_traces") == 0
    out = pa.concat_tables(released)
    kept_ids = np.frombuffer(out.column("trace_id").combine_chunks().buffers()[1], np.uint8).reshape(-1, 16)
    # map kept ids back to trace numbers
    lookup = {ids[i].tobytes(): i for i in range(n_traces)}
    kept_traces = np.array([lookup[k.tobytes()] for k in kept_ids])
    counts = np.bincount(kept_traces, minlength=n_traces)
    kept = counts > 0
    assert (counts[kept] == per).all()  # a kept trace is kept whole
    assert kept[is_err].all() and kept[is_slow].all()
    rest = ~(is_err | is_slow)
    frac = kept[rest].mean()
    sd = math.sqrt(0.1 * 0.9 / rest.sum())
    assert abs(frac - 0.1) < 4 * sd, (frac, sd)
    assert stats.get("decided_traces", decision="sampled") == kept.sum()
    assert stats.get("sampled_spans") + stats.get("not_sampled_spans") == n_traces * per
    assert ts.pending_spans == 0 and ts.pending_bytes == 0 and ts._chunks == []
