"""The filter processor (Collector filterprocessor, OTTL conditions) over real OTLP requests."""

from __future__ import annotations

import pytest

from lookout.pipeline.otlp_view import OtlpBatch
from lookout.pipeline.processors.filter import FilterError, build
from tests.pipeline.test_otlp_view import logs_request, metrics_request, parse, traces_request


def make(raw, signal: str):
    problems: list[str] = []
    proc = build("filter/t", raw, signal=signal, path="pipeline.x[0].filter/t", problems=problems)
    assert not problems, problems
    assert proc is not None
    return proc


def run(proc, signal: str, msg):
    batch = OtlpBatch.decode(signal, msg.SerializeToString())
    proc.process(batch, "tenant")
    return batch


def test_health_check_spans_dropped():
    proc = make({"traces": {"span": ['attributes["http.route"] == "/healthz"']}}, "traces")
    batch = run(proc, "traces", traces_request())
    got = parse("traces", batch.encode())
    names = [sp.name for rs in got.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    assert names == ["span-0-0-0", "span-0-1-0", "span-1-0-0"]
    assert proc.stats.get("received_items") == 5
    assert proc.stats.get("dropped_items", reason="filter") == 2


def test_conditions_are_ored_and_empty_containers_go():
    proc = make({"traces": {"span": ['resource.attributes["service.name"] == "db"',
                                     'name == "span-0-1-0"']}}, "traces")
    got = parse("traces", run(proc, "traces", traces_request()).encode())
    assert len(got.resource_spans) == 1 and len(got.resource_spans[0].scope_spans) == 1
    assert [s.name for s in got.resource_spans[0].scope_spans[0].spans] == ["span-0-0-0", "span-0-0-1"]


def test_span_events():
    proc = make({"traces": {"spanevent": ['name == "retry"']}}, "traces")
    got = parse("traces", run(proc, "traces", traces_request()).encode())
    events = [e.name for rs in got.resource_spans for ss in rs.scope_spans for sp in ss.spans
              for e in sp.events]
    assert events == ["exception"] * 3
    assert proc.stats.get("dropped_span_events", reason="filter") == 1
    assert proc.stats.get("dropped_items", reason="filter") == 0


def test_everything_dropped_leaves_an_empty_batch():
    proc = make({"traces": {"span": ["true"]}}, "traces")
    assert run(proc, "traces", traces_request()).is_empty()


def test_nothing_matched_keeps_the_payload():
    proc = make({"traces": {"span": ['name == "nope"']}}, "traces")
    payload = traces_request().SerializeToString()
    batch = OtlpBatch.decode("traces", payload)
    proc.process(batch, "t")
    assert batch.encode() is payload


def test_debug_logs_dropped():
    proc = make({"logs": {"log_record": ["severity_number < SEVERITY_NUMBER_INFO"]}}, "logs")
    got = parse("logs", run(proc, "logs", logs_request()).encode())
    texts = [r.severity_text for rl in got.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert texts == ["INFO", "ERROR", "WARN"]
    assert len(got.resource_logs) == 1  # the db resource held only a TRACE record
    assert proc.stats.get("dropped_items", reason="filter") == 2


def test_metric_name_filter():
    proc = make({"metrics": {"metric": ['name == "cpu"', 'name == "mem"']}}, "metrics")
    batch = run(proc, "metrics", metrics_request())
    got = parse("metrics", batch.encode())
    assert len(got.resource_metrics) == 1
    assert [m.name for m in got.resource_metrics[0].scope_metrics[0].metrics] == [
        "requests", "latency", "exp", "summary"]
    assert proc.stats.get("dropped_items", reason="filter") == 3


def test_datapoint_filter_removes_emptied_metric():
    proc = make({"metrics": {"datapoint": ['metric.name == "requests" and value_int < 15',
                                           'attributes["cpu"] == "1"']}}, "metrics")
    got = parse("metrics", run(proc, "metrics", metrics_request()).encode())
    ms = got.resource_metrics[0].scope_metrics[0].metrics
    assert [dp.as_int for dp in ms[1].sum.data_points] == [20]
    assert [dp.attributes[0].value.string_value for dp in ms[0].gauge.data_points] == ["0"]
    proc = make({"metrics": {"datapoint": ['metric.name == "requests"']}}, "metrics")
    got = parse("metrics", run(proc, "metrics", metrics_request()).encode())
    assert "requests" not in [m.name for m in got.resource_metrics[0].scope_metrics[0].metrics]


def test_sections_for_other_signals_are_ignored():
    raw = {"traces": {"span": ['name == "x"']}, "logs": {"log_record": ["true"]}}
    proc = make(raw, "traces")
    assert [r.kind for r in proc.rules] == ["span"]
    batch = run(make(raw, "metrics"), "metrics", metrics_request())
    assert not batch.changed


def test_config_errors():
    cases = [
        ({"traces": {"span": ['name == ']}}, "pipeline.x[0].filter/t.traces.span[0]: "),
        ({"error_mode": "loud"}, "pipeline.x[0].filter/t.error_mode"),
        ({"spans": {"include": {"match_type": "strict"}}}, "OTTL"),
        ({"traces": {"include": {}}}, "OTTL"),
        ({"traces": {"spans": []}}, "pipeline.x[0].filter/t.traces.spans"),
        ({"traces": {"span": 'name == "x"'}}, "expected a list"),
        ({"bogus": 1}, "pipeline.x[0].filter/t.bogus: unknown key"),
        ({"logs": {"log_record": ['nosuchpath == 1']}}, "pipeline.x[0].filter/t.logs.log_record[0]"),
    ]
    for raw, want in cases:
        problems: list[str] = []
        assert build("filter/t", raw, signal="traces", path="pipeline.x[0].filter/t",
                     problems=problems) is None, raw
        assert any(want in p for p in problems), (raw, problems)


def test_error_modes():
    class Boom:
        text = "boom"

        def evaluate(self, ctx):
            raise ValueError("bad")

    proc = make({"error_mode": "propagate", "traces": {"span": ["true"]}}, "traces")
    proc.rules[0].conditions = [Boom()]
    with pytest.raises(FilterError):
        run(proc, "traces", traces_request())
    proc = make({"error_mode": "ignore", "traces": {"span": ['name == "span-0-0-0"']}}, "traces")
    proc.rules[0].conditions.insert(0, Boom())
    assert run(proc, "traces", traces_request()).item_count() == 4
