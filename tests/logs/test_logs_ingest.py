"""Logs in through the real clients' wire formats and out through the Loki API, on the real server:
the OpenTelemetry SDK log exporters (gRPC and HTTP), the Loki push API (protobuf+snappy, JSON,
gzip JSON) with its errors and limits, trace-id lookups, and durability (WAL replay after
kill -9, flushed blocks, compaction, trace-id pruning of blocks)."""

from __future__ import annotations

import gzip
import json
import logging
import time

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from lookout.devserver import LookoutProcess
from lookout.logs.loki_push import encode_push_request
from tests.conftest import metric_value, wait_for

NS = 1_000_000_000
PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


def push(srv: LookoutProcess, body: bytes, headers: dict, tenant: str | None = None) -> httpx.Response:
    h = dict(headers)
    if tenant:
        h["X-Scope-OrgID"] = tenant
    return httpx.post(f"{srv.http}/loki/api/v1/push", content=body, headers=h, timeout=30)


def query(srv: LookoutProcess, q: str, tenant: str | None = None, **params) -> list[dict]:
    now = time.time_ns()
    params = {"query": q, "start": str(now - 3600 * NS), "end": str(now + 60 * NS), "limit": "1000",
              "direction": "forward", **params}
    r = httpx.get(f"{srv.http}/loki/api/v1/query_range", params=params,
                  headers={"X-Scope-OrgID": tenant} if tenant else {}, timeout=30)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["resultType"] == "streams"
    return data["result"]


def lines(result: list[dict]) -> list[str]:
    return [v[1] for s in sorted(result, key=lambda s: s["values"][0][0]) for v in s["values"]]


def all_lines(result: list[dict]) -> list[str]:
    return [v[1] for v in sorted((v for s in result for v in s["values"]), key=lambda v: int(v[0]))]


# ---- the OpenTelemetry SDK ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_log_exporters(lookout, transport):
    service = f"checkout-{transport}"
    resource = Resource.create({"service.name": service, "deployment.environment": "test",
                                "service.namespace": "shop", "host.name": "box-1"})
    exporter = (GrpcLogExporter(endpoint=lookout.otlp_grpc, insecure=True) if transport == "grpc"
                else HttpLogExporter(endpoint=f"{lookout.otlp_http}/v1/logs"))
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger = logging.getLogger(f"lookout.test.{transport}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    tracer = TracerProvider(resource=resource).get_tracer("test")
    try:
        with tracer.start_as_current_span("checkout") as span:
            ctx = span.get_span_context()
            logger.error("payment declined for order %s", "o-17", extra={"user_id": "42", "amount": 12.5})
            logger.info("cart viewed", extra={"user_id": "7"})
        logger.warning({"event": "refund", "items": [1, 2], "ok": True})
        assert provider.force_flush(10_000)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    trace_hex, span_hex = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
    sel = f'{{service_name="{service}"}}'

    result = wait_for(lambda: (r := query(lookout, sel)) and len(all_lines(r)) == 3 and r)
    assert all_lines(result) == ["payment declined for order o-17", "cart viewed",
                                 all_lines(result)[2]]
    assert json.loads(all_lines(result)[2]) == {"event": "refund", "items": [1, 2], "ok": True}

    # resource attributes in the stream-label list become stream labels, dots → underscores
    series = httpx.get(f"{lookout.http}/loki/api/v1/series", params={"match[]": sel}).json()["data"]
    assert series == [{"service_name": service, "service_namespace": "shop", "deployment_environment": "test",
                       "service_instance_id": resource.attributes["service.instance.id"]}]

    # everything else is structured metadata, usable in label filters
    assert all_lines(query(lookout, sel + ' | user_id="42"')) == ["payment declined for order o-17"]
    assert all_lines(query(lookout, sel + ' | user_id="7"')) == ["cart viewed"]
    assert all_lines(query(lookout, sel + ' | amount > 10')) == ["payment declined for order o-17"]
    assert len(all_lines(query(lookout, sel + ' | host_name="box-1"'))) == 3
    # severity: the SDK's severity_text and severity_number
    assert all_lines(query(lookout, sel + ' | severity_text="ERROR"')) == ["payment declined for order o-17"]
    assert all_lines(query(lookout, sel + " | severity_number >= 13")) == [
        "payment declined for order o-17", all_lines(result)[2]]
    # the span context
    got = query(lookout, sel + f' | trace_id="{trace_hex}"')
    assert all_lines(got) == ["payment declined for order o-17", "cart viewed"]
    assert all_lines(query(lookout, sel + f' | span_id="{span_hex}" | user_id="7"')) == ["cart viewed"]
    r = httpx.get(f"{lookout.http}/lookout/api/v1/traces/{trace_hex}/logs")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["resultType"] == "streams"
    assert all_lines(data["result"]) == ["payment declined for order o-17", "cart viewed"]
    assert {s["stream"]["service_name"] for s in data["result"]} == {service}
    # each line carries its structured metadata as Loki's categorized third element
    meta = {v[1]: v[2]["structuredMetadata"] for s in data["result"] for v in s["values"]}
    assert meta["cart viewed"]["span_id"] == span_hex and meta["cart viewed"]["trace_id"] == trace_hex
    assert meta["payment declined for order o-17"]["severity_text"] == "ERROR"


# ---- Loki push ----------------------------------------------------------------------------------


def test_loki_push_protobuf_json_and_gzip(lookout):
    now = time.time_ns()
    pb = encode_push_request([({"app": "pb", "env": "x"}, [(now, "from protobuf", {"user": "u1"})])])
    assert push(lookout, pb, PB).status_code == 204
    doc = {"streams": [{"stream": {"app": "js"},
                        "values": [[str(now + 1), "json with metadata", {"user": "u2", "trace_id": "ab12"}],
                                   [str(now + 2), "json plain"]]}]}
    r = push(lookout, json.dumps(doc).encode(), JS)
    assert r.status_code == 204, r.text
    assert r.content == b""
    doc["streams"][0]["stream"] = {"app": "gz"}
    r = push(lookout, gzip.compress(json.dumps(doc).encode()), {**JS, "Content-Encoding": "gzip"})
    assert r.status_code == 204, r.text

    wait_for(lambda: len(all_lines(query(lookout, '{app=~"pb|js|gz"}'))) == 5)
    assert all_lines(query(lookout, '{app="pb"} | user="u1"')) == ["from protobuf"]
    assert all_lines(query(lookout, '{app="js"}')) == ["json with metadata", "json plain"]
    assert all_lines(query(lookout, '{app="js"} | user="u2"')) == ["json with metadata"]
    assert all_lines(query(lookout, '{app="gz"} | user="u2"')) == ["json with metadata"]
    assert all_lines(query(lookout, '{app=~"js|gz"} | user=""')) == ["json plain", "json plain"]
    assert metric_value(lookout.metrics(), "lookout_logs_entries_appended_total") == 5


def test_loki_push_errors_are_400_naming_the_problem(lookout):
    now = time.time_ns()
    r = push(lookout, b"\xff\x00 this is not snappy", PB)
    assert r.status_code == 400
    assert "snappy" in r.text.lower()

    req = encode_push_request([({"app": "x"}, [(now, "l", {})])])
    import cramjam

    from lookout.logs.loki_push import push_request_class
    msg = push_request_class()()
    msg.ParseFromString(bytes(cramjam.snappy.decompress_raw(req)))
    msg.streams[0].labels = '{app="x", 9bad="y"}'
    r = push(lookout, bytes(cramjam.snappy.compress_raw(msg.SerializeToString())), PB)
    assert r.status_code == 400
    assert "labels" in r.text and "position 10" in r.text, r.text

    old = now - 8 * 86400 * NS  # logs.reject_old_samples_max_age defaults to 7 days
    r = push(lookout, encode_push_request([({"app": "x"}, [(now, "new", {}), (old, "old", {})])]), PB)
    assert r.status_code == 400
    assert "too old" in r.text and "reject_old_samples_max_age" in r.text

    doc = {"streams": [{"stream": {"app": "x"}, "values": [["yesterday", "line"]]}]}
    r = push(lookout, json.dumps(doc).encode(), JS)
    assert r.status_code == 400
    assert "timestamp" in r.text and "yesterday" in r.text

    r = push(lookout, b"not json", JS)
    assert r.status_code == 400 and "JSON" in r.text

    r = push(lookout, b"app=x line", {"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert "text/plain" in r.text

    m = lookout.metrics()
    assert metric_value(m, "lookout_receiver_refused_requests_total", signal="logs", reason="malformed") == 5
    assert metric_value(m, "lookout_logs_entries_appended_total") == 0
    assert query(lookout, '{app="x"}') == []


def test_lines_over_max_line_size_are_refused_and_counted(lookout_factory):
    srv = lookout_factory({"logs": {"max_line_size": 64}})
    now = time.time_ns()
    body = encode_push_request([({"app": "big"}, [(now, "short line", {}), (now + 1, "x" * 100, {})])])
    r = push(srv, body, PB)
    assert r.status_code == 400, r.text
    assert "64" in r.text and "max_line_size" in r.text
    m = srv.metrics()
    assert metric_value(m, "lookout_receiver_refused_requests_total", signal="logs") >= 1
    # a request where every line fits goes through
    assert push(srv, encode_push_request([({"app": "big"}, [(now + 2, "fits", {})])]), PB).status_code == 204
    wait_for(lambda: all_lines(query(srv, '{app="big"}')) == ["fits"])


def test_rate_limit_is_429_with_retry_after(lookout_factory):
    srv = lookout_factory({"logs": {"max_lines_per_second": 5}})
    now = time.time_ns()
    first = encode_push_request([({"app": "flood"}, [(now + i, f"line {i}", {}) for i in range(8)])])
    assert push(srv, first, PB).status_code == 204  # within the burst (2 s worth)
    second = encode_push_request([({"app": "flood"}, [(now + 10 + i, f"more {i}", {}) for i in range(8)])])
    r = push(srv, second, PB)
    assert r.status_code == 429, r.text
    assert "logs.max_lines_per_second" in r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert metric_value(srv.metrics(), "lookout_receiver_refused_requests_total", signal="logs",
                        reason="rate_limited") == 1
    wait_for(lambda: len(all_lines(query(srv, '{app="flood"}'))) == 8)
    assert all(ln.startswith("line ") for ln in all_lines(query(srv, '{app="flood"}')))
    # the limit is per tenant: another tenant is not affected
    small = encode_push_request([({"app": "flood"}, [(now, "one", {})])])
    assert push(srv, small, PB, tenant="other").status_code == 204


# ---- durability ---------------------------------------------------------------------------------


def test_acked_push_survives_kill9(lookout_factory, tmp_path):
    data = tmp_path / "durable"
    srv = lookout_factory(data_dir=data)
    now = time.time_ns()
    for i in range(3):
        body = encode_push_request([({"app": "durable"}, [(now + i, f"line {i}", {"k": str(i)})])])
        assert push(srv, body, PB).status_code == 204
    srv.kill9()
    again = lookout_factory(data_dir=data)
    wait_for(lambda: all_lines(query(again, '{app="durable"}')) == ["line 0", "line 1", "line 2"])
    assert all_lines(query(again, '{app="durable"} | k="1"')) == ["line 1"]


def _push_and_flush(srv: LookoutProcess, streams, tenant: str | None = None) -> None:
    before = metric_value(srv.metrics(), "lookout_flushes_total", signal="logs")
    assert push(srv, encode_push_request(streams), PB, tenant).status_code == 204
    wait_for(lambda: metric_value(srv.metrics(), "lookout_flushes_total", signal="logs") > before)
    wait_for(lambda: metric_value(srv.metrics(), "lookout_logs_head_rows") == 0)


def test_trace_lookup_after_flush_reads_only_matching_blocks(lookout_factory):
    srv = lookout_factory({"storage": {"flush_interval": 0.2, "compaction_interval": 3600}})
    now = time.time_ns()
    tid_a, tid_b = "0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"
    _push_and_flush(srv, [({"app": "shop"}, [(now, "a1", {"trace_id": tid_a}), (now + 1, "x1", {})])])
    _push_and_flush(srv, [({"app": "shop"}, [(now + 2, "b1", {"trace_id": tid_b}), (now + 3, "x2", {})])])
    _push_and_flush(srv, [({"app": "shop"}, [(now + 4, "b2", {"trace_id": tid_b})]),
                          ({"app": "other"}, [(now + 5, "b3", {"trace_id": tid_b})])])
    _push_and_flush(srv, [({"app": "shop"}, [(now + 6, "a2", {"trace_id": tid_a})])], tenant="t2")
    assert metric_value(srv.metrics(), "lookout_logs_blocks") == 4

    before = srv.metrics()
    r = httpx.get(f"{srv.http}/lookout/api/v1/traces/{tid_a}/logs")
    assert r.status_code == 200, r.text
    assert all_lines(r.json()["data"]["result"]) == ["a1"]  # t2's a2 is another tenant's
    after = srv.metrics()
    assert (metric_value(after, "lookout_logs_blocks_read_total")
            - metric_value(before, "lookout_logs_blocks_read_total")) == 1
    assert (metric_value(after, "lookout_logs_blocks_skipped_total", reason="trace_id")
            - metric_value(before, "lookout_logs_blocks_skipped_total", reason="trace_id")) == 2

    r = httpx.get(f"{srv.http}/lookout/api/v1/traces/{tid_b}/logs")
    assert sorted(all_lines(r.json()["data"]["result"])) == ["b1", "b2", "b3"]
    r = httpx.get(f"{srv.http}/lookout/api/v1/traces/{tid_a}/logs", headers={"X-Scope-OrgID": "t2"})
    assert all_lines(r.json()["data"]["result"]) == ["a2"]
    assert all_lines(query(srv, f'{{app="shop"}} | trace_id="{tid_b}"')) == ["b1", "b2"]
    assert httpx.get(f"{srv.http}/lookout/api/v1/traces/not-hex/logs").status_code == 400
    # all data is still there, from blocks
    assert all_lines(query(srv, '{app=~".+"}')) == ["a1", "x1", "b1", "x2", "b2", "b3"]


def test_data_queryable_after_flush_and_compaction(lookout_factory):
    srv = lookout_factory({"storage": {"flush_interval": 0.2, "compaction_interval": 0.5,
                                       "compaction_min_blocks": 2}})
    now = time.time_ns()
    tid = "5b8efff798038103d269b633813fc60c"
    _push_and_flush(srv, [({"app": "c"}, [(now, "one", {"trace_id": tid}), (now + 1, "two", {})])])
    _push_and_flush(srv, [({"app": "c"}, [(now + 2, "three", {"user": "u"})]),
                          ({"app": "d"}, [(now + 3, "four", {})])])
    wait_for(lambda: metric_value(srv.metrics(), "lookout_compactions_total", signal="logs") >= 1
             and metric_value(srv.metrics(), "lookout_logs_blocks") == 1)
    assert all_lines(query(srv, '{app=~"c|d"}')) == ["one", "two", "three", "four"]
    assert all_lines(query(srv, '{app="c"} | user="u"')) == ["three"]
    r = httpx.get(f"{srv.http}/lookout/api/v1/traces/{tid}/logs")
    assert all_lines(r.json()["data"]["result"]) == ["one"]
    stats = httpx.get(f"{srv.http}/loki/api/v1/index/stats",
                      params={"query": '{app="c"}', "start": str(now - NS), "end": str(now + NS)}).json()
    assert stats["streams"] == 1 and stats["entries"] == 3
    assert httpx.get(f"{srv.http}/loki/api/v1/label/app/values").json()["data"] == ["c", "d"]
