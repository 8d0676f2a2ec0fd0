"""``kill -9`` during a steady stream, restart: every acknowledged span is there, none twice.
And SIGTERM drains, flushes and exits 0."""

from __future__ import annotations

import os
import threading
import time

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import metric_value


def make_request(i: int, spans: int = 20) -> tuple[bytes, bytes]:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "crash-test"
    ss = rs.scope_spans.add()
    trace_id = os.urandom(16)
    now = time.time_ns()
    for j in range(spans):
        sp = ss.spans.add(trace_id=trace_id, span_id=os.urandom(8), name=f"op-{j}",
                          start_time_unix_nano=now + j, end_time_unix_nano=now + j + 1000)
        sp.attributes.add(key="i").value.int_value = i
    return trace_id, req.SerializeToString()


def stream(url: str, acked: list, stop: threading.Event) -> None:
    i = 0
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            trace_id, body = make_request(i)
            try:
                r = client.post(url, content=body, headers={"Content-Type": "application/x-protobuf"})
            except httpx.HTTPError:
                return  # the server died mid-request: this one was never acknowledged
            if r.status_code == 200:
                acked.append(trace_id)
            i += 1


def span_count(base: str, trace_id: bytes) -> int:
    r = httpx.get(f"{base}/api/traces/{trace_id.hex()}", timeout=10)
    if r.status_code == 404:
        return 0
    return sum(len(ss["spans"]) for b in r.json()["batches"] for ss in b["scopeSpans"])


def test_kill9_loses_no_acknowledged_span(lookout_factory, tmp_path):
    cfg = {"storage": {"flush_interval": "300ms", "compaction_interval": "500ms"}}
    node = lookout_factory(cfg, data_dir=tmp_path / "node")
    acked: list[bytes] = []
    stop = threading.Event()
    senders = [threading.Thread(target=stream, args=(f"{node.otlp_http}/v1/traces", acked, stop))
               for _ in range(3)]
    for t in senders:
        t.start()
    time.sleep(2.5)
    node.kill9()
    stop.set()
    for t in senders:
        t.join()
    assert len(acked) > 20, "the stream should have been acknowledged many times before the kill"

    # A crash mid-append leaves a torn record: simulate one on top of whatever the kill left.
    segment = sorted((tmp_path / "node" / "wal" / "traces").glob("*.seg"))[-1]
    with open(segment, "ab") as f:
        f.write(b"\x40\x00\x00\x00torn")

    node2 = lookout_factory(cfg, data_dir=tmp_path / "node")
    missing = [t.hex() for t in acked if span_count(node2.http, t) != 20]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged traces lost or duplicated: {missing[:5]}"
    assert metric_value(node2.metrics(), "lookout_log_torn_tail_records_total", signal="traces") >= 1


def test_sigterm_drains_flushes_and_exits_zero(lookout_factory, tmp_path):
    cfg = {"storage": {"flush_interval": "1h"}}  # nothing would flush on its own
    node = lookout_factory(cfg, data_dir=tmp_path / "node")
    trace_id, body = make_request(1, spans=7)
    r = httpx.post(f"{node.otlp_http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200
    assert node.terminate() == 0
    blocks = list((tmp_path / "node" / "blocks" / "default" / "traces").rglob("meta.json"))
    assert blocks, "SIGTERM must flush the head into a committed block"

    node2 = lookout_factory(cfg, data_dir=tmp_path / "node")
    assert span_count(node2.http, trace_id) == 7
    # Served from the block: nothing needed replaying.
    assert metric_value(node2.metrics(), "lookout_head_rows", signal="traces") == 0


def test_health_and_ready_are_503_until_replay_is_done(lookout_factory, tmp_path):
    from lookout.buffer.wal import WriteAheadLog

    data = tmp_path / "node"
    body = make_request(0, spans=1000)[1]
    with WriteAheadLog(data / "wal", fsync=False) as wal:
        for _ in range(600):  # 600k spans to replay: seconds of decoding
            wal.append_sync("traces", "default", body)
    node = lookout_factory(data_dir=data, wait_ready=False)
    seen = set()
    while True:
        r = httpx.get(node.health, timeout=10)
        seen.add(r.status_code)
        if r.status_code == 200:
            break
        assert httpx.get(f"{node.http}/ready", timeout=10).status_code in (503, 200)
        time.sleep(0.01)
    assert 503 in seen, "health must answer 503 while the log is replayed"
    assert httpx.get(f"{node.http}/ready", timeout=10).status_code == 200
    assert metric_value(node.metrics(), "lookout_decoded_items_total") == 600_000
