"""The attributes and resource processors (Collector attributesprocessor / resourceprocessor)."""

from __future__ import annotations

import hashlib
import struct

from lookout.pipeline.otlp_view import OtlpBatch
from lookout.pipeline.processors.attributes import build_attributes, build_resource
from tests.pipeline.test_otlp_view import (
    logs_request,
    metrics_request,
    parse,
    traces_request,
)

PATH = "pipeline.traces[0].attributes/t"


def make(raw, signal: str = "traces", resource: bool = False):
    problems: list[str] = []
    fn = build_resource if resource else build_attributes
    proc = fn("attributes/t", raw, signal=signal, path=PATH, problems=problems)
    assert not problems, problems
    return proc


def run(proc, signal: str, msg):
    batch = OtlpBatch.decode(signal, msg.SerializeToString())
    proc.process(batch, "tenant")
    return parse(signal, batch.encode())


def attrs(kvs) -> dict:
    out = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def spans(req):
    return [sp for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans]


def test_insert_update_upsert_delete():
    proc = make({"actions": [
        {"key": "env", "value": "prod", "action": "insert"},
        {"key": "n", "value": 99, "action": "insert"},           # exists: unchanged
        {"key": "ratio", "value": 1.5, "action": "update"},
        {"key": "absent", "value": True, "action": "update"},    # missing: nothing
        {"key": "ok", "value": "yes", "action": "upsert"},
        {"key": "route2", "from_attribute": "http.route", "action": "upsert"},
        {"key": "copy", "from_attribute": "missing", "action": "insert"},
        {"key": "n", "action": "DELETE"},
    ]})
    got = spans(run(proc, "traces", traces_request()))
    a = attrs(got[1].attributes)
    assert a == {"http.route": "/healthz", "ratio": 1.5, "ok": "yes", "env": "prod",
                 "route2": "/healthz"}
    assert list(a)[-2:] == ["env", "route2"]  # new keys are appended, order kept
    assert got[0].events[0].attributes[0].key == "exception.type"  # events untouched
    assert proc.stats.get("modified_items") == 5


def test_delete_and_hash_by_pattern():
    proc = make({"actions": [{"pattern": "^(n|ok)$", "action": "delete"},
                             {"key": "http.route", "pattern": "^rat", "action": "hash"}]})
    got = spans(run(proc, "traces", traces_request()))
    a = attrs(got[1].attributes)
    assert set(a) == {"http.route", "ratio"}
    assert a["http.route"] == hashlib.sha256(b"/healthz").hexdigest()
    assert a["ratio"] == hashlib.sha256(struct.pack("<d", 0.5)).hexdigest()


def test_hash_non_string_values_as_the_collector():
    proc = make({"actions": [{"key": k, "action": "hash"} for k in ("n", "ok")]})
    got = spans(run(proc, "traces", traces_request()))
    a = attrs(got[1].attributes)
    assert a["n"] == hashlib.sha256(struct.pack("<q", 1)).hexdigest()
    assert a["ok"] == hashlib.sha256(b"\x00").hexdigest()
    assert attrs(got[0].attributes)["ok"] == hashlib.sha256(b"\x01").hexdigest()


def test_extract_named_groups_upserted():
    req = traces_request()
    sp = spans(req)[0]
    sp.attributes.add(key="http.url").value.string_value = "GET /api/v1/users/42"
    spans(req)[1].attributes.add(key="http.url").value.string_value = "no match"
    proc = make({"actions": [{"key": "http.url", "action": "extract",
                              "pattern": r"^(?P<http_method>\w+) /api/(?P<version>v\d+)/(?P<n>\w+)"}]})
    got = spans(run(proc, "traces", req))
    a = attrs(got[0].attributes)
    assert a["http_method"] == "GET" and a["version"] == "v1"
    assert a["n"] == "users"  # existing key overwritten (upsert), in place
    assert list(a)[1] == "n"
    assert "http_method" not in attrs(got[1].attributes)


def test_convert():
    req = traces_request()
    for sp in spans(req):
        sp.attributes.add(key="num").value.string_value = "12"
        sp.attributes.add(key="bad").value.string_value = "x1"
        sp.attributes.add(key="f").value.string_value = "2.5"
    proc = make({"actions": [
        {"key": "num", "action": "convert", "converted_type": "int"},
        {"key": "bad", "action": "convert", "converted_type": "int"},
        {"key": "f", "action": "convert", "converted_type": "double"},
        {"key": "ratio", "action": "convert", "converted_type": "string"},
        {"key": "n", "action": "convert", "converted_type": "double"},
        {"key": "ok", "action": "convert", "converted_type": "int"},
    ]})
    got = spans(run(proc, "traces", req))
    a = attrs(got[1].attributes)
    assert a["num"] == 12 and a["bad"] == "x1" and a["f"] == 2.5
    assert a["ratio"] == "0.5" and attrs(got[0].attributes)["ratio"] == "0"
    assert a["n"] == 1.0 and got[1].attributes[1].value.WhichOneof("value") == "double_value"
    assert a["ok"] == 0 and attrs(got[0].attributes)["ok"] == 1


def test_include_exclude():
    proc = make({"include": {"match_type": "strict", "services": ["db"]},
                 "actions": [{"key": "tier", "value": "data", "action": "insert"}]})
    got = spans(run(proc, "traces", traces_request()))
    assert ["tier" in attrs(s.attributes) for s in got] == [False, False, False, True, True]
    proc = make({"exclude": {"match_type": "regexp", "span_names": ["-1$"],
                             "attributes": [{"key": "http.route", "value": "^/api"}]},
                 "actions": [{"key": "x", "value": 1, "action": "insert"}]})
    got = spans(run(proc, "traces", traces_request()))
    assert ["x" in attrs(s.attributes) for s in got] == [True, True, True, True, True]
    proc = make({"exclude": {"match_type": "strict", "attributes": [{"key": "n", "value": 1}]},
                 "actions": [{"key": "x", "value": 1, "action": "insert"}]})
    got = spans(run(proc, "traces", traces_request()))
    assert ["x" in attrs(s.attributes) for s in got] == [True, False, True, True, False]


def test_logs_and_metrics_sites():
    proc = make({"include": {"match_type": "strict", "log_severity_texts": ["ERROR"]},
                 "actions": [{"key": "alert", "value": True, "action": "upsert"}]}, "logs")
    got = run(proc, "logs", logs_request())
    recs = got.resource_logs[0].scope_logs[0].log_records
    assert ["alert" in attrs(r.attributes) for r in recs] == [False, False, True, False]
    proc = make({"include": {"match_type": "strict", "metric_names": ["requests"]},
                 "actions": [{"key": "code", "action": "convert", "converted_type": "string"}]},
                "metrics")
    got = run(proc, "metrics", metrics_request())
    ms = got.resource_metrics[0].scope_metrics[0].metrics
    assert [attrs(dp.attributes)["code"] for dp in ms[1].sum.data_points] == ["200", "201", "202"]
    assert attrs(ms[0].gauge.data_points[0].attributes) == {"cpu": "0"}


def test_no_change_keeps_payload():
    proc = make({"actions": [{"key": "nope", "action": "delete"}]})
    payload = traces_request().SerializeToString()
    batch = OtlpBatch.decode("traces", payload)
    proc.process(batch, "t")
    assert batch.encode() is payload


def test_resource_processor():
    proc = make({"attributes": [
        {"key": "deployment.environment", "value": "prod", "action": "upsert"},
        {"key": "service.name", "action": "hash"},
    ]}, "logs", resource=True)
    got = run(proc, "logs", logs_request())
    a = attrs(got.resource_logs[1].resource.attributes)
    assert a == {"service.name": hashlib.sha256(b"db").hexdigest(),
                 "deployment.environment": "prod"}
    assert attrs(got.resource_logs[0].scope_logs[0].log_records[0].attributes) == {"i": 0}


def test_config_errors():
    cases = [
        ({"actions": [{"key": "a", "action": "insert"}]}, ".actions[0]: insert needs"),
        ({"actions": [{"action": "upsert", "value": 1}]}, ".actions[0].key: missing"),
        ({"actions": [{"key": "a"}]}, ".actions[0].action: missing"),
        ({"actions": [{"key": "a", "action": "explode"}]}, "unsupported action 'explode'"),
        ({"actions": [{"key": "a", "action": "extract", "pattern": "(\\w+)"}]}, "named groups"),
        ({"actions": [{"key": "a", "action": "extract", "pattern": "(?P<x>"}]}, "invalid regular"),
        ({"actions": [{"key": "a", "action": "delete", "pattern": "["}]}, ".actions[0].pattern"),
        ({"actions": [{"action": "hash"}]}, "hash needs key and/or pattern"),
        ({"actions": [{"key": "a", "action": "convert"}]}, ".actions[0].converted_type: missing"),
        ({"actions": [{"key": "a", "action": "convert", "converted_type": "bool"}]}, "invalid 'bool'"),
        ({"actions": [{"key": "a", "action": "insert", "from_context": "x"}]}, "from_context"),
        ({"actions": [{"key": "a", "action": "insert", "value": [1]}]}, ".actions[0].value"),
        ({"actions": [{"key": "a", "action": "insert", "value": 1, "from_attribute": "b"}]}, "only one"),
        ({"actions": [{"key": "a", "action": "delete", "color": 1}]}, ".actions[0].color: unknown key"),
        ({"actions": []}, ".actions: expected a non-empty list"),
        ({}, ".actions: missing"),
        ({"actions": [{"key": "a", "action": "delete"}], "include": {"services": ["x"]}},
         ".include.match_type"),
        ({"actions": [{"key": "a", "action": "delete"}],
          "include": {"match_type": "strict", "libraries": [{"name": "x"}]}}, ".include.libraries"),
        ({"actions": [{"key": "a", "action": "delete"}],
          "include": {"match_type": "strict", "log_severity_texts": ["x"]}}, "not valid for traces"),
        ({"actions": [{"key": "a", "action": "delete"}], "extra": 1}, ".extra: unknown key"),
    ]
    for raw, want in cases:
        problems: list[str] = []
        assert build_attributes("attributes/t", raw, signal="traces", path=PATH,
                                problems=problems) is None, raw
        assert any(p.startswith(PATH) and want in p for p in problems), (raw, problems)
    problems = []
    assert build_resource("resource", {"actions": []}, signal="traces", path="p",
                          problems=problems) is None
    assert any("p.actions: unknown key" in p for p in problems)
    assert any("p.attributes: missing" in p for p in problems)
