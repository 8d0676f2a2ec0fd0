"""The redaction processor on real OTLP requests: Collector semantics, Lookout detectors, and the
promise that no input secret survives process + encode."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from lookout.pipeline.otlp_view import OtlpBatch
from lookout.pipeline.processors.redaction import RedactionProcessor, build

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
SECRETS = {
    "email": "alice.doe@example.com",
    "card": "4111 1111 1111 1111",
    "iban": "DE89370400440532013000",
    "jwt": JWT,
    "bearer": "tok_9f8e7d6c5b4a",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_" + "x1Y2" * 9,
    "slack": "xoxb-123456789012-abcdefghijkl",
    "stripe": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "google": "AIzaSyA-1234567890abcdefghijklmnopqrstu",
    "password": "hunter2hunter2",
    "qs": "qsT0kenValue99",
}


def make(cfg: dict[str, Any] | None, signal: str = "traces") -> RedactionProcessor:
    problems: list[str] = []
    p = build("redaction", cfg, signal=signal, path=f"pipeline.{signal}[0].redaction",
              problems=problems)
    assert problems == [] and p is not None
    return p


def put(attrs, key: str, value: Any) -> None:
    kv = attrs.add()
    kv.key = key
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, list):
        for v in value:
            kv.value.array_value.values.add().string_value = v
    elif isinstance(value, dict):
        for k, v in value.items():
            e = kv.value.kvlist_value.values.add()
            e.key, e.value.string_value = k, v
    else:
        kv.value.string_value = value


def attrs_of(msg) -> dict[str, Any]:
    out = {}
    for kv in msg.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind in (
            "string_value", "int_value", "bool_value", "double_value") else kv.value
    return out


def traces_request() -> ExportTraceServiceRequest:
    r = ExportTraceServiceRequest()
    rs = r.resource_spans.add()
    put(rs.resource.attributes, "service.name", "checkout")
    put(rs.resource.attributes, "deploy.owner", SECRETS["email"])
    ss = rs.scope_spans.add()
    put(ss.scope.attributes, "scope.token", f"token={SECRETS['password']}")
    s = ss.spans.add()
    s.trace_id, s.span_id = b"\1" * 16, b"\2" * 8
    s.name = f"charge {SECRETS['email']}"
    s.status.message = f"declined card {SECRETS['card']}"
    put(s.attributes, "user.email", SECRETS["email"])
    put(s.attributes, "payment.iban", f"iban {SECRETS['iban']}")
    put(s.attributes, "auth.jwt", SECRETS["jwt"])
    put(s.attributes, "http.request.header.authorization", [f"Bearer {SECRETS['bearer']}"])
    put(s.attributes, "url.full", f"https://api.example.com/v1?api_key={SECRETS['qs']}&page=2")
    put(s.attributes, "cloud.keys", [SECRETS["aws"], "harmless"])
    put(s.attributes, "vcs", {"token": SECRETS["github"], "note": f"slack {SECRETS['slack']}"})
    put(s.attributes, "billing", f"stripe {SECRETS['stripe']} google {SECRETS['google']}")
    put(s.attributes, "http.status_code", 500)
    ev = s.events.add()
    ev.name = f"login by {SECRETS['email']}"
    put(ev.attributes, "exception.message", f"password={SECRETS['password']} rejected")
    link = s.links.add()
    link.trace_id, link.span_id = b"\3" * 16, b"\4" * 8
    put(link.attributes, "peer", SECRETS["email"])
    s2 = ss.spans.add()
    s2.trace_id, s2.span_id, s2.name = b"\1" * 16, b"\5" * 8, "clean"
    put(s2.attributes, "http.route", "/healthz")
    return r


def run(p: RedactionProcessor, signal: str, req) -> tuple[bytes, Any]:
    batch = OtlpBatch.decode(signal, req.SerializeToString())
    p.process(batch, "tenant")
    data = batch.encode()
    return data, type(req).FromString(data)


def assert_no_secret(data: bytes) -> None:
    for name, secret in SECRETS.items():
        assert secret.encode() not in data, name


# ---- end to end ------------------------------------------------------------------------------


def test_traces_end_to_end_no_secret_survives() -> None:
    p = make({"allow_all_keys": True})
    data, out = run(p, "traces", traces_request())
    assert_no_secret(data)
    span = out.resource_spans[0].scope_spans[0].spans[0]
    assert span.name == "charge ****"
    assert span.status.message == "declined card ****"
    assert span.events[0].name == "login by ****"
    a = attrs_of(span)
    assert a["user.email"] == "****"
    assert a["url.full"] == "https://api.example.com/v1?api_key=****&page=2"
    assert a["http.status_code"] == 500
    assert a["http.request.header.authorization"] == "****"  # header key: whole value
    assert [v.string_value for v in a["cloud.keys"].array_value.values] == ["****", "harmless"]
    assert {kv.key: kv.value.string_value for kv in a["vcs"].kvlist_value.values} == {
        "token": "****", "note": "slack ****"}
    assert attrs_of(out.resource_spans[0].resource)["service.name"] == "checkout"
    clean = out.resource_spans[0].scope_spans[0].spans[1]
    assert clean.name == "clean" and attrs_of(clean) == {"http.route": "/healthz"}
    assert p.stats.get("received_items") == 2
    assert p.stats.get("redacted_values", rule="email") >= 4
    assert p.stats.get("redacted_values", rule="credit_card") == 1
    assert p.stats.get("redacted_values", rule="iban") == 1
    assert p.stats.get("redacted_values", rule="jwt") == 1
    assert p.stats.get("redacted_values", rule="api_key") >= 4
    assert p.stats.get("deleted_keys") == 0


def test_logs_end_to_end_bodies_and_body_summary() -> None:
    r = ExportLogsServiceRequest()
    sl = r.resource_logs.add().scope_logs.add()
    for i, body in enumerate([f"user {SECRETS['email']} paid with {SECRETS['card']}",
                              f"Authorization: Bearer {SECRETS['bearer']}", "all good"]):
        rec = sl.log_records.add()
        rec.body.string_value = body
        rec.severity_text = "INFO"
        put(rec.attributes, "iteration", i)
        put(rec.attributes, "user.iban", SECRETS["iban"])
    rec = sl.log_records.add()
    rec.body.int_value = 7
    p = make({"allow_all_keys": True, "summary": "debug"}, "logs")
    data, out = run(p, "logs", r)
    assert_no_secret(data)
    recs = out.resource_logs[0].scope_logs[0].log_records
    assert recs[0].body.string_value == "user **** paid with ****"
    assert recs[1].body.string_value == "Authorization: Bearer ****"
    assert recs[2].body.string_value == "all good"
    assert recs[3].body.int_value == 7
    a0 = attrs_of(recs[0])
    assert a0["redaction.body.masked.keys"] == "body" and a0["redaction.body.masked.count"] == 1
    assert a0["redaction.masked.keys"] == "user.iban" and a0["redaction.masked.count"] == 1
    assert "redaction.body.masked.count" not in attrs_of(recs[2])


def test_metrics_end_to_end_datapoint_attributes() -> None:
    r = ExportMetricsServiceRequest()
    sm = r.resource_metrics.add().scope_metrics.add()
    m = sm.metrics.add()
    m.name = "http.server.requests"
    dp = m.sum.data_points.add()
    dp.as_int = 3
    put(dp.attributes, "user", SECRETS["email"])
    put(dp.attributes, "route", "/pay")
    g = sm.metrics.add()
    g.name = "queue.depth"
    gp = g.gauge.data_points.add()
    gp.as_double = 1.5
    put(gp.attributes, "queue", f"https://sqs/q?token={SECRETS['qs']}")
    p = make({"allow_all_keys": True}, "metrics")
    data, out = run(p, "metrics", r)
    assert_no_secret(data)
    ms = out.resource_metrics[0].scope_metrics[0].metrics
    assert attrs_of(ms[0].sum.data_points[0]) == {"user": "****", "route": "/pay"}
    assert attrs_of(ms[1].gauge.data_points[0]) == {"queue": "https://sqs/q?token=****"}


def test_unchanged_request_keeps_original_bytes() -> None:
    r = ExportTraceServiceRequest()
    s = r.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = b"\1" * 16, b"\2" * 8, "GET /"
    put(s.attributes, "http.route", "/")
    payload = r.SerializeToString()
    batch = OtlpBatch.decode("traces", payload)
    make({"allow_all_keys": True}).process(batch, "t")
    assert not batch.changed
    assert batch.encode() == payload


# ---- Collector semantics ---------------------------------------------------------------------


def test_collector_default_deletes_every_key_not_allowed() -> None:
    p = make({})  # what a bare `redaction:` means in the Collector: fail closed
    _, out = run(p, "traces", traces_request())
    rs = out.resource_spans[0]
    assert list(rs.resource.attributes) == []
    span = rs.scope_spans[0].spans[0]
    assert list(span.attributes) == []  # summary defaults to silent
    assert p.stats.get("deleted_keys") == 15  # 2 resource, 1 scope, 9+1 span, 1 event, 1 link


def test_allowed_ignored_and_summary_debug() -> None:
    r = ExportTraceServiceRequest()
    s = r.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = b"\1" * 16, b"\2" * 8, "op"
    put(s.attributes, "id", "42")
    put(s.attributes, "name", f"mail {SECRETS['email']}")
    put(s.attributes, "group", "4111111111111111")
    put(s.attributes, "birth_date", "1990-01-01")
    put(s.attributes, "mothers_maiden_name", "Smith")
    put(s.attributes, "safe_attribute", SECRETS["email"])
    p = make({"allowed_keys": ["id", "name", "group"], "ignored_keys": ["safe_attribute"],
              "blocked_values": [r"4[0-9]{12}(?:[0-9]{3})?"], "detectors": ["email"],
              "summary": "debug"})
    _, out = run(p, "traces", r)
    a = attrs_of(out.resource_spans[0].scope_spans[0].spans[0])
    assert a == {
        "id": "42", "name": "mail ****", "group": "****", "safe_attribute": SECRETS["email"],
        "redaction.redacted.keys": "birth_date,mothers_maiden_name",
        "redaction.redacted.count": 2,
        "redaction.masked.keys": "group,name", "redaction.masked.count": 2,
        "redaction.ignored.count": 1,
    }
    assert p.stats.get("redacted_values", rule="blocked_values[0]") == 1
    assert p.stats.get("deleted_keys") == 2


def test_summary_info_counts_only_and_silent_nothing() -> None:
    def summary_of(level: str) -> dict[str, Any]:
        r = ExportTraceServiceRequest()
        s = r.resource_spans.add().scope_spans.add().spans.add()
        s.trace_id, s.span_id, s.name = b"\1" * 16, b"\2" * 8, "op"
        put(s.attributes, "a", SECRETS["email"])
        put(s.attributes, "b", "x")
        _, out = run(make({"allowed_keys": ["a"], "summary": level}), "traces", r)
        return attrs_of(out.resource_spans[0].scope_spans[0].spans[0])

    assert summary_of("info") == {"a": "****", "redaction.redacted.count": 1,
                                  "redaction.masked.count": 1}
    assert summary_of("silent") == {"a": "****"}


def test_summary_merges_with_upstream_summary() -> None:
    r = ExportTraceServiceRequest()
    s = r.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = b"\1" * 16, b"\2" * 8, "op"
    put(s.attributes, "redaction.redacted.keys", "zeta")
    put(s.attributes, "redaction.redacted.count", 1)
    put(s.attributes, "keep", "x")
    put(s.attributes, "drop", "y")
    _, out = run(make({"allowed_keys": ["keep"], "summary": "debug"}), "traces", r)
    a = attrs_of(out.resource_spans[0].scope_spans[0].spans[0])
    assert a["redaction.redacted.keys"] == "drop,zeta"
    assert a["redaction.redacted.count"] == 2
    assert a["keep"] == "x" and "drop" not in a


def test_blocked_key_patterns_mask_whole_values_any_type() -> None:
    r = ExportTraceServiceRequest()
    s = r.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = b"\1" * 16, b"\2" * 8, "op"
    put(s.attributes, "user.ssn", "123-45-6789")
    put(s.attributes, "user.pin", 1234)
    put(s.attributes, "user.name", "Bob")
    p = make({"allow_all_keys": True, "blocked_key_patterns": [r"\.ssn$", r"\.pin$"],
              "detectors": []})
    _, out = run(p, "traces", r)
    a = attrs_of(out.resource_spans[0].scope_spans[0].spans[0])
    assert a == {"user.ssn": "****", "user.pin": "****", "user.name": "Bob"}
    assert p.stats.get("redacted_values", rule="blocked_key_patterns[0]") == 1
    assert p.stats.get("redacted_values", rule="blocked_key_patterns[1]") == 1


def test_allowed_values_win_over_blocked_keys_and_values() -> None:
    r = ExportTraceServiceRequest()
    s = r.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = b"\1" * 16, b"\2" * 8, "op"
    put(s.attributes, "support", "help@lookout.dev")
    put(s.attributes, "user", SECRETS["email"])
    put(s.attributes, "secret.contact", "help@lookout.dev")
    p = make({"allow_all_keys": True, "allowed_values": [r"@lookout\.dev$"],
              "blocked_key_patterns": ["^secret"], "summary": "debug"})
    _, out = run(p, "traces", r)
    a = attrs_of(out.resource_spans[0].scope_spans[0].spans[0])
    assert a["support"] == "help@lookout.dev" and a["secret.contact"] == "help@lookout.dev"
    assert a["user"] == "****"
    assert a["redaction.allowed.keys"] == "secret.contact,support"
    assert a["redaction.allowed.count"] == 2


def test_hash_function_replaces_matches_with_hex_digest() -> None:
    r = ExportTraceServiceRequest()
    s = r.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = b"\1" * 16, b"\2" * 8, "op"
    put(s.attributes, "note", "card 4111111111111111")
    put(s.attributes, "mail", SECRETS["email"])
    p = make({"allow_all_keys": True, "blocked_values": [r"4[0-9]{15}"], "hash_function": "md5",
              "detectors": ["email"]})
    data, out = run(p, "traces", r)
    a = attrs_of(out.resource_spans[0].scope_spans[0].spans[0])
    assert a["note"] == "card " + hashlib.md5(b"4111111111111111").hexdigest()  # noqa: S324
    assert a["mail"] == hashlib.md5(SECRETS["email"].encode()).hexdigest()  # noqa: S324
    assert b"4111111111111111" not in data


def test_redact_all_types() -> None:
    r = ExportTraceServiceRequest()
    s = r.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = b"\1" * 16, b"\2" * 8, "op"
    put(s.attributes, "card_number", 4111111111111111)
    put(s.attributes, "count", 5)
    p = make({"allow_all_keys": True, "redact_all_types": True})
    _, out = run(p, "traces", r)
    a = attrs_of(out.resource_spans[0].scope_spans[0].spans[0])
    assert a == {"card_number": "****", "count": 5}


def test_apply_to_limits_places() -> None:
    p = make({"allow_all_keys": True, "apply_to": ["attributes"]})
    data, out = run(p, "traces", traces_request())
    span = out.resource_spans[0].scope_spans[0].spans[0]
    assert span.name == f"charge {SECRETS['email']}"  # span_names not selected
    assert attrs_of(span)["user.email"] == "****"
    # url.full is governed by `urls`, which is not selected
    assert SECRETS["qs"] in attrs_of(span)["url.full"]


def test_custom_mask_and_no_detectors() -> None:
    p = make({"allow_all_keys": True, "mask": "[REDACTED]", "detectors": [],
              "blocked_values": ["secret-[0-9]+"]})
    r = ExportTraceServiceRequest()
    s = r.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = b"\1" * 16, b"\2" * 8, "op secret-42"
    put(s.attributes, "mail", SECRETS["email"])
    _, out = run(p, "traces", r)
    span = out.resource_spans[0].scope_spans[0].spans[0]
    assert span.name == "op [REDACTED]"
    assert attrs_of(span)["mail"] == SECRETS["email"]


def test_nested_values_serialize_back_losslessly() -> None:
    r = ExportTraceServiceRequest()
    s = r.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name = b"\1" * 16, b"\2" * 8, "op"
    kv = s.attributes.add()
    kv.key = "deep"
    inner = AnyValue()
    inner.kvlist_value.values.append(KeyValue(key="mail", value=AnyValue(string_value=SECRETS["email"])))
    inner.kvlist_value.values.append(KeyValue(key="n", value=AnyValue(int_value=3)))
    kv.value.array_value.values.append(inner)
    kv.value.array_value.values.append(AnyValue(double_value=2.5))
    data, out = run(make({"allow_all_keys": True}), "traces", r)
    assert_no_secret(data)
    deep = out.resource_spans[0].scope_spans[0].spans[0].attributes[0].value.array_value.values
    assert deep[0].kvlist_value.values[0].value.string_value == "****"
    assert deep[0].kvlist_value.values[1].value.int_value == 3
    assert deep[1].double_value == 2.5


# ---- config errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("cfg, message", [
    ({"blocked_values": ["ok", "("]}, "pipeline.traces[0].redaction.blocked_values[1]: invalid regex"),
    ({"allowed_values": ["[a-"]}, "redaction.allowed_values[0]: invalid regex"),
    ({"blocked_key_patterns": ["(?<=x)y"]}, "redaction.blocked_key_patterns[0]: invalid regex"),
    ({"detectors": ["email", "ssn"]}, "redaction.detectors[1]: unknown detector 'ssn'"),
    ({"hash_function": "sha256"}, "redaction.hash_function: unknown hash function 'sha256'"),
    ({"hash_function": "hmac-sha256"}, "redaction.hmac_key: required"),
    ({"summary": "verbose"}, "redaction.summary: unknown summary 'verbose'"),
    ({"allowed_key": ["a"]}, "redaction.allowed_key: unknown key"),
    ({"apply_to": ["bodies"]}, "redaction.apply_to[0]: unknown place 'bodies'"),
    ({"allow_all_keys": "yes"}, "redaction.allow_all_keys: expected true or false"),
    ({"allowed_keys": "a"}, "redaction.allowed_keys: expected a list of strings"),
    ({"action": "mask", "hash_function": "md5"}, "redaction.action: 'mask' contradicts"),
    ({"url_sanitizer": {"enabled": True}}, "redaction.url_sanitizer: the Collector's URL sanitizer"),
])
def test_config_errors_name_path_and_key(cfg: dict[str, Any], message: str) -> None:
    problems: list[str] = []
    assert build("redaction", cfg, signal="traces", path="pipeline.traces[0].redaction",
                 problems=problems) is None
    assert any(message in p for p in problems), problems


def test_all_problems_reported_at_once() -> None:
    problems: list[str] = []
    build("redaction", {"blocked_values": ["("], "detectors": ["nope"], "bogus": 1},
          signal="logs", path="p", problems=problems)
    assert len(problems) == 3
