"""``tail_sampling:`` config: the Collector's fixtures, Go durations, and error messages."""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from lookout.pipeline.tailsampling import TailSamplingConfig, parse_config
from lookout.pipeline.tailsampling.config import parse_go_duration

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared/conformance/tailsampling/testdata"


def load(name: str) -> dict:
    return yaml.safe_load((TESTDATA / name).read_text())["tail_sampling"]


def parse(raw: Any) -> tuple[TailSamplingConfig | None, list[str]]:
    problems: list[str] = []
    return parse_config(raw, "tail_sampling", problems), problems


@pytest.fixture
def ottl_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the real OTTL engine; if it is not importable yet, a stub that compiles anything, so
    the rest of the fixture is still checked."""
    try:
        import lookout.pipeline.ottl  # noqa: F401
    except ImportError:
        stub = types.ModuleType("lookout.pipeline.ottl")

        class OttlError(ValueError):
            pass

        stub.OttlError = OttlError  # type: ignore[attr-defined]
        stub.compile_condition = lambda text, ctx: (text, ctx)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "lookout.pipeline.ottl", stub)


def test_full_fixture_loads_with_every_policy(ottl_available: None) -> None:
    cfg, problems = parse(load("tail_sampling_config.yaml"))
    assert problems == [] and cfg is not None
    assert cfg.decision_wait == 10.0 and cfg.num_traces == 100 and cfg.expected_new_traces_per_sec == 10
    assert cfg.sampled_cache_size == 0 and cfg.non_sampled_cache_size == 0
    assert [(p.name, p.type) for p in cfg.policies] == [
        ("test-policy-1", "always_sample"), ("test-policy-2", "latency"), ("test-policy-3", "numeric_attribute"),
        ("test-policy-4", "probabilistic"), ("test-policy-5", "status_code"), ("test-policy-6", "string_attribute"),
        ("test-policy-7", "rate_limiting"), ("test-policy-8", "span_count"), ("test-policy-9", "trace_state"),
        ("test-policy-10", "boolean_attribute"), ("test-policy-11", "ottl_condition"), ("and-policy-1", "and"),
        ("composite-policy-1", "composite"),
    ]
    p = {x.name: x.settings for x in cfg.policies}
    assert p["test-policy-2"].threshold_ms == 5000
    assert (p["test-policy-3"].min_value, p["test-policy-3"].max_value) == (50, 100)
    assert p["test-policy-4"].hash_salt == "custom-salt" and p["test-policy-4"].sampling_percentage == 0.1
    assert p["test-policy-5"].status_codes == (2, 0)
    assert p["test-policy-7"].spans_per_second == 35
    assert (p["test-policy-8"].min_spans, p["test-policy-8"].max_spans) == (2, 20)
    assert p["test-policy-11"].error_mode == "ignore" and len(p["test-policy-11"].spanevent) == 2
    assert [s.name for s in p["and-policy-1"].sub_policies] == ["test-and-policy-1", "test-and-policy-2"]
    comp = p["composite-policy-1"]
    assert comp.max_total_spans_per_second == 1000
    assert comp.rate_allocation == (("test-composite-policy-1", 50), ("test-composite-policy-2", 25))

    # and it builds a working sampler
    from lookout.pipeline.stats import ProcessorStats
    from lookout.pipeline.tailsampling import TailSampler

    TailSampler(cfg, ProcessorStats("traces", "tail_sampling"), clock=lambda: 0.0, wall=lambda: 0.0)


def test_numeric_min_greater_than_max_is_rejected() -> None:
    cfg, problems = parse(load("numeric_attribute_with_minvalue_greather_than_maxvalue.yaml"))
    assert cfg is None
    assert problems == [
        "tail_sampling.policies[0].numeric_attribute: policy 'test-policy-3': "
        "min_value (500) must be less than or equal to max_value (100)"
    ]


def test_numeric_without_bounds_is_rejected() -> None:
    cfg, problems = parse(load("numeric_attribute_without_minvalue_or_maxvalue.yaml"))
    assert cfg is None
    assert len(problems) == 1 and problems[0].startswith("tail_sampling.policies[0].numeric_attribute: ")
    assert "'test-policy-3'" in problems[0] and "min_value or max_value" in problems[0]


def test_errormode_fixture_defaults_to_propagate_and_samples() -> None:
    pytest.importorskip("lookout.pipeline.ottl")
    pytest.importorskip("lookout.pipeline.span_table")
    from lookout.pipeline.stats import ProcessorStats
    from lookout.pipeline.tailsampling import TailSampler
    from tests.pipeline.test_tailsampling_policies import spans, tid

    cfg, problems = parse(load("tail_sampling_config_errormode.yaml"))
    assert problems == [] and cfg is not None
    assert cfg.decision_wait == 30.0 and cfg.num_traces == 50_000  # Collector defaults
    assert cfg.policies[0].settings.error_mode == "propagate"

    def run(cfg: TailSamplingConfig) -> tuple[dict[bytes, bool | None], ProcessorStats]:
        stats = ProcessorStats("traces", "tail_sampling")
        ts = TailSampler(cfg, stats, clock=lambda: 0.0, wall=lambda: 0.0)
        ts.add(spans({"trace": 1, "attrs": {"test_attr": "val"}}, {"trace": 2, "attrs": {"test_attr": "x"}}), 0)
        ts.decide_all()
        return {t: ts.decision(t) for t in (tid(1), tid(2))}, stats

    got, stats = run(cfg)
    assert got == {tid(1): True, tid(2): False}
    assert stats.total("policy_evaluation_errors") == 0

    # Default (propagate) error mode: a runtime error fails the policy for the trace, which is
    # counted and ignored (→ not sampled by this policy) instead of skipping the failing span.
    from lookout.pipeline.ottl import OttlError

    class Failing:
        def evaluate(self, ctx: Any) -> Any:
            raise OttlError("runtime error")

    pol = cfg.policies[0]
    broken = dataclasses.replace(pol, settings=dataclasses.replace(pol.settings, compiled_span=(Failing(),)))
    got, stats = run(dataclasses.replace(cfg, policies=(broken,)))
    assert got == {tid(1): False, tid(2): False}
    assert stats.get("policy_evaluation_errors", policy="test-policy-ottl") == 2


@pytest.mark.parametrize("text,seconds", [
    ("10s", 10.0), ("500ms", 0.5), ("1m30s", 90.0), ("1h", 3600.0), ("1.5s", 1.5), ("0", 0.0),
    ("2h45m", 9900.0), ("300us", 0.0003), ("100ns", 1e-7), ("1s500ms", 1.5),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["10", 10, "10 s", "s", "1d", "", "1.s5", None, True])
def test_go_durations_rejected(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(bad)


def test_processor_options_and_durations() -> None:
    cfg, problems = parse({
        "decision_wait": "1m30s", "num_traces": 7, "decision_cache": {"sampled_cache_size": 10,
                                                                       "non_sampled_cache_size": 20},
        "sample_on_first_match": True, "drop_pending_traces_on_shutdown": True,
        "decision_wait_after_root_received": "2s", "maximum_trace_size_bytes": 1000,
        "policies": [{"name": "a", "type": "always_sample"}]})
    assert problems == [] and cfg is not None
    assert (cfg.decision_wait, cfg.num_traces, cfg.sampled_cache_size, cfg.non_sampled_cache_size) == (90, 7, 10, 20)
    assert cfg.sample_on_first_match and cfg.drop_pending_traces_on_shutdown
    assert cfg.decision_wait_after_root_received == 2.0 and cfg.maximum_trace_size_bytes == 1000


def test_every_problem_is_reported_with_its_policy() -> None:
    cfg, problems = parse({
        "decision_wait": "10", "num_traces": 0, "bogus": 1,
        "decision_cache": {"sampled_cache_size": 1, "size": 2},
        "policies": [
            {"name": "lat", "type": "latency", "latency": {"threshold_ms": "5s"}},
            {"name": "st", "type": "status_code", "status_code": {"status_codes": ["ERR"]}},
            {"name": "re", "type": "string_attribute",
             "string_attribute": {"key": "k", "values": ["("], "enabled_regex_matching": True}},
            {"name": "lat", "type": "always_sample"},
            {"name": "x", "type": "nonsense"},
            {"type": "always_sample"},
            {"name": "typo", "type": "span_count", "span_count": {"min_span": 2}},
            {"name": "and1", "type": "and", "and": {"and_sub_policy": [
                {"name": "inner", "type": "composite", "composite": {}}]}},
            {"name": "c", "type": "composite", "composite": {
                "max_total_spans_per_second": 10,
                "composite_sub_policy": [{"name": "c1", "type": "always_sample"}],
                "rate_allocation": [{"policy": "nope", "percent": 50}]}},
            {"name": "sc", "type": "span_count", "span_count": {"min_spans": 5, "max_spans": 2}},
            {"name": "o", "type": "ottl_condition", "ottl_condition": {"error_mode": "loud"}},
        ]})
    assert cfg is None
    text = "\n".join(problems)
    for expected in [
        "tail_sampling.decision_wait: expected a Go duration",
        "tail_sampling: num_traces must be ≥ 1",
        "tail_sampling: unknown key 'bogus'",
        "tail_sampling.decision_cache: unknown key 'size'",
        "tail_sampling.policies[0].latency: policy 'lat': threshold_ms must be an integer",
        "tail_sampling.policies[1].status_code: policy 'st': unknown status code 'ERR'",
        "tail_sampling.policies[2].string_attribute: policy 're': invalid regular expression '('",
        "tail_sampling.policies[3]: policy 'lat': duplicate policy name",
        "tail_sampling.policies[4]: policy 'x': unknown policy type 'nonsense'",
        "tail_sampling.policies[5]: every policy needs a non-empty name",
        "tail_sampling.policies[6].span_count: unknown key 'min_span'",
        "tail_sampling.policies[7].and.and_sub_policy[0]: policy 'inner': type 'composite' is not allowed here",
        "tail_sampling.policies[8].composite.rate_allocation[0]: policy 'c': "
        "policy 'nope' is not a composite_sub_policy",
        "tail_sampling.policies[9].span_count: policy 'sc': max_spans (2) must be ≥ min_spans (5)",
        "tail_sampling.policies[10].ottl_condition: policy 'o': error_mode must be one of",
    ]:
        assert expected in text, (expected, problems)


def test_policies_required() -> None:
    cfg, problems = parse({"decision_wait": "5s"})
    assert cfg is None and problems == ["tail_sampling.policies: at least one policy is required"]


def test_ottl_compile_error_names_the_policy() -> None:
    pytest.importorskip("lookout.pipeline.ottl")
    cfg, problems = parse({"policies": [{"name": "o", "type": "ottl_condition",
                                         "ottl_condition": {"span": ['attributes["a"] == == 1']}}]})
    assert cfg is None and problems[0].startswith("tail_sampling.policies[0].ottl_condition.span[0]: policy 'o': ")
