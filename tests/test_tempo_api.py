"""Tempo API behaviour over the real server: tenants, search (TraceQL and tags), tag discovery,
the OTLP JSON examples, head and block reads."""

from __future__ import annotations

import os
import time

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import SHARED, wait_for

PB = {"Content-Type": "application/x-protobuf"}


def send(node, spans: list[dict], service: str = "api", tenant: str | None = None) -> None:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    ss = rs.scope_spans.add()
    for s in spans:
        sp = ss.spans.add(trace_id=s["trace_id"], span_id=s.get("span_id", os.urandom(8)), name=s["name"],
                          kind=s.get("kind", 2), start_time_unix_nano=s["start"],
                          end_time_unix_nano=s["start"] + s["duration"], parent_span_id=s.get("parent", b""))
        sp.status.code = s.get("status", 0)
        for k, v in s.get("attrs", {}).items():
            kv = sp.attributes.add(key=k)
            if isinstance(v, bool):
                kv.value.bool_value = v
            elif isinstance(v, int):
                kv.value.int_value = v
            else:
                kv.value.string_value = v
    headers = {**PB, **({"X-Scope-OrgID": tenant} if tenant else {})}
    r = httpx.post(f"{node.otlp_http}/v1/traces", content=req.SerializeToString(), headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def test_tenants_never_see_each_other(lookout):
    a, b = os.urandom(16), os.urandom(16)
    now = time.time_ns()
    send(lookout, [{"trace_id": a, "name": "secret-a", "start": now, "duration": 10}], tenant="team-a")
    send(lookout, [{"trace_id": b, "name": "secret-b", "start": now, "duration": 10}], tenant="team-b")
    get = lambda tid, tenant: httpx.get(f"{lookout.http}/api/traces/{tid.hex()}",  # noqa: E731
                                        headers={"X-Scope-OrgID": tenant}, timeout=10)
    wait_for(lambda: get(a, "team-a").status_code == 200)
    wait_for(lambda: get(b, "team-b").status_code == 200)
    assert get(a, "team-b").status_code == 404 and get(b, "team-a").status_code == 404
    assert httpx.get(f"{lookout.http}/api/traces/{a.hex()}", timeout=10).status_code == 404  # default tenant
    found = httpx.get(f"{lookout.http}/api/search", params={"q": "{}"}, headers={"X-Scope-OrgID": "team-b"},
                      timeout=10).json()
    assert [t["traceID"] for t in found["traces"]] == [b.hex()]
    tags = httpx.get(f"{lookout.http}/api/v2/search/tag/name/values", headers={"X-Scope-OrgID": "team-a"},
                     timeout=10).json()
    assert [v["value"] for v in tags["tagValues"]] == ["secret-a"]


def test_search_traceql_tags_and_durations(lookout):
    now = time.time_ns()
    slow, fast, err = os.urandom(16), os.urandom(16), os.urandom(16)
    root = os.urandom(8)
    send(lookout, [
        {"trace_id": slow, "span_id": root, "name": "GET /slow", "start": now, "duration": 2_000_000_000,
         "attrs": {"http.status_code": 200, "http.route": "/slow"}},
        {"trace_id": slow, "name": "db", "start": now + 10, "duration": 1_000_000, "parent": root, "kind": 3},
        {"trace_id": fast, "name": "GET /fast", "start": now, "duration": 5_000_000,
         "attrs": {"http.status_code": 200, "http.route": "/fast"}},
        {"trace_id": err, "name": "GET /err", "start": now, "duration": 7_000_000, "status": 2,
         "attrs": {"http.status_code": 500, "http.route": "/err", "retry": True}},
    ], service="checkout")

    def ids(params):
        r = httpx.get(f"{lookout.http}/api/search", params=params, timeout=10)
        assert r.status_code == 200, r.text
        return {t["traceID"] for t in r.json()["traces"]}

    wait_for(lambda: len(ids({"q": "{}"})) == 3)
    assert ids({"q": '{ status = error }'}) == {err.hex()}
    assert ids({"q": "{ duration > 1s }"}) == {slow.hex()}
    assert ids({"q": '{ span.http.status_code >= 500 }'}) == {err.hex()}
    assert ids({"q": '{ span.http.route =~ "/(fast|slow)" }'}) == {fast.hex(), slow.hex()}
    assert ids({"q": '{ resource.service.name = "checkout" && kind = client }'}) == {slow.hex()}
    assert ids({"q": '{ name = "GET /fast" } || { span.retry = true }'}) == {fast.hex(), err.hex()}
    assert ids({"q": '{ name = "GET /slow" } && { name = "db" }'}) == {slow.hex()}
    assert ids({"q": '({ name = "db" } && { name = "GET /slow" }) || { status = error }'}) == {slow.hex(), err.hex()}
    assert ids({"q": '{ rootName = "GET /slow" && kind = client }'}) == {slow.hex()}
    assert ids({"q": "{ traceDuration > 1s }"}) == {slow.hex()}
    assert ids({"q": "{ .http.route = nil }"}) == {slow.hex()}
    assert ids({"tags": "http.status_code=500"}) == {err.hex()}
    assert ids({"tags": 'service.name=checkout http.route="/fast"'}) == {fast.hex()}
    assert ids({"minDuration": "1s"}) == {slow.hex()}
    assert ids({"maxDuration": "6ms"}) == {fast.hex()}

    result = httpx.get(f"{lookout.http}/api/search", params={"q": '{ name = "db" }'}, timeout=10).json()
    (t,) = result["traces"]
    assert t["rootServiceName"] == "checkout" and t["rootTraceName"] == "GET /slow"
    assert t["durationMs"] == 2000 and t["spanSet"]["matched"] == 1

    bad = httpx.get(f"{lookout.http}/api/search", params={"q": "{ span.x = }"}, timeout=10)
    assert bad.status_code == 400 and "parse error" in bad.text

    names = httpx.get(f"{lookout.http}/api/search/tags", timeout=10).json()["tagNames"]
    assert {"http.route", "http.status_code", "service.name"} <= set(names)
    v2 = httpx.get(f"{lookout.http}/api/v2/search/tags", timeout=10).json()["scopes"]
    scopes = {s["name"]: s["tags"] for s in v2}
    assert "http.route" in scopes["span"] and "service.name" in scopes["resource"] and "status" in scopes["intrinsic"]
    vals = httpx.get(f"{lookout.http}/api/v2/search/tag/span.http.status_code/values", timeout=10).json()
    assert {(v["type"], v["value"]) for v in vals["tagValues"]} == {("int", "200"), ("int", "500")}
    v1 = httpx.get(f"{lookout.http}/api/search/tag/http.route/values", timeout=10).json()
    assert v1["tagValues"] == ["/err", "/fast", "/slow"]

    def values(tag: str, q: str) -> list[str]:
        r = httpx.get(f"{lookout.http}/api/v2/search/tag/{tag}/values", params={"q": q}, timeout=10)
        assert r.status_code == 200, r.text
        return sorted(v["value"] for v in r.json()["tagValues"])

    # Tempo's q: only the values of the spans the query matches (what an editor offers next)
    assert values("span.http.route", "{ status = error }") == ["/err"]
    assert values("span.http.route", "{ duration > 1s }") == ["/slow"]
    assert values("name", "{ kind = client }") == ["db"]
    assert values("name", '{ rootName = "GET /slow" }') == ["GET /slow", "db"]
    assert values("span.http.status_code", '{ span.http.route = "/fast" } || { status = error }') == ["200", "500"]
    assert values("span.http.route", '{ resource.service.name = "nobody" }') == []
    # an unfinished query (typed so far) or {} lists every value, as Tempo does
    assert values("span.http.route", "{ span.http.status_code = ") == ["/err", "/fast", "/slow"]
    assert values("span.http.route", "{}") == ["/err", "/fast", "/slow"]


def test_otlp_json_examples_are_accepted(lookout):
    body = (SHARED / "conformance" / "otlp" / "examples" / "trace.json").read_bytes()
    r = httpx.post(f"{lookout.otlp_http}/v1/traces", content=body,
                   headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 200
    url = f"{lookout.http}/api/traces/5b8efff798038103d269b633813fc60c"
    resp = wait_for(lambda: (x := httpx.get(url, timeout=10)).status_code == 200 and x)
    (batch,) = resp.json()["batches"]
    (sp,) = batch["scopeSpans"][0]["spans"]
    assert sp["name"] == "I'm a server span" and sp["kind"] == 2
    assert int(sp["endTimeUnixNano"]) - int(sp["startTimeUnixNano"]) == 1_000_000_000
    assert {"key": "service.name", "value": {"stringValue": "my.service"}} in batch["resource"]["attributes"]


def test_trace_found_in_blocks_after_flush_and_compaction(lookout_factory):
    node = lookout_factory({"storage": {"flush_interval": "200ms", "compaction_interval": "300ms"}})
    now = time.time_ns()
    tid = os.urandom(16)
    for i in range(4):  # four flushes -> four L0 blocks, compacted into one
        send(node, [{"trace_id": tid, "name": f"part-{i}", "start": now + i, "duration": 10}])
        time.sleep(0.5)
    blocks_dir = node.data_dir / "blocks" / "default" / "traces"
    wait_for(lambda: len(list(blocks_dir.rglob("meta.json"))) == 1, timeout=30)
    body = httpx.get(f"{node.http}/api/traces/{tid.hex()}", timeout=10).json()
    names = sorted(sp["name"] for b in body["batches"] for ss in b["scopeSpans"] for sp in ss["spans"])
    assert names == ["part-0", "part-1", "part-2", "part-3"]


def test_health_ready_metrics_echo_buildinfo(lookout):
    assert httpx.get(lookout.health, timeout=10).status_code == 200
    assert httpx.get(f"{lookout.http}/ready", timeout=10).status_code == 200
    assert httpx.get(f"{lookout.http}/api/echo", timeout=10).text == "echo"
    assert "version" in httpx.get(f"{lookout.http}/api/status/buildinfo", timeout=10).json()
    text = httpx.get(f"{lookout.http}/metrics", timeout=10).text
    for name in ("lookout_receiver_accepted_items_total", "lookout_head_bytes", "lookout_log_bytes",
                 "lookout_log_consumer_lag_bytes", "lookout_blocks"):
        assert f"# TYPE {name}" in text
