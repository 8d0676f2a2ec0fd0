"""Metrics ingestion through the real server: Prometheus remote write (status codes, errors that
name the problem and change nothing, stale markers), per-tenant limits (rate, active series),
out-of-order samples, and durability (kill -9, SIGTERM, flushed blocks, compaction)."""

from __future__ import annotations

import time

import cramjam
import httpx
import numpy as np

from lookout.metrics import prompb
from lookout.metrics.batch import MetricMetadata
from lookout.metrics.model import STALE_NAN
from lookout.metrics.remote_write import encode_write_request, encode_write_request_raw
from tests.conftest import metric_value, wait_for

T = "default"  # the tenant of requests without X-Scope-OrgID (self-monitoring has its own)
REFUSED_REQ = "lookout_receiver_refused_requests_total"
REFUSED_SAMPLES = "lookout_metrics_samples_refused_total"
RW_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
              "X-Prometheus-Remote-Write-Version": "0.1.0"}


def now_ms() -> int:
    return int(time.time() * 1000)


def rw_body(series: dict[str, list[tuple[int, float]]] | list, metadata=None) -> bytes:
    """``{"name{a=b}"...}`` is awkward; take a list of (labels, [(t, v), ...])."""
    out = []
    for labels, points in series:
        t = np.array([p[0] for p in points], np.int64)
        v = np.array([p[1] for p in points], np.float64)
        out.append((labels, t, v))
    return encode_write_request(out, metadata)


def remote_write(lk, series, tenant: str | None = None, metadata=None, headers=None,
                 body: bytes | None = None) -> httpx.Response:
    h = dict(RW_HEADERS)
    if tenant:
        h["X-Scope-OrgID"] = tenant
    h.update(headers or {})
    data = body if body is not None else rw_body(series, metadata)
    return httpx.post(f"{lk.http}/api/v1/write", content=data, headers=h, timeout=30)


def query(lk, q: str, t_ms: int | None = None, tenant: str | None = None) -> list[dict]:
    params = {"query": q}
    if t_ms is not None:
        params["time"] = f"{t_ms / 1000:.3f}"
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    r = httpx.get(f"{lk.http}/api/v1/query", params=params, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    return body["data"]["result"]


def values(result: list[dict]) -> dict[tuple, float]:
    return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in result}


def wait_query(lk, q: str, t_ms: int | None = None, n: int = 1, tenant: str | None = None) -> list[dict]:
    return wait_for(lambda: (lambda r: r if len(r) >= n else None)(query(lk, q, t_ms, tenant)))


# --------------------------------------------------------------------------------------------
# remote write: success and every refusal


def test_remote_write_204_and_queryable(lookout) -> None:
    t0 = now_ms() - 60_000
    r = remote_write(lookout, [({"__name__": "rw_up", "job": "j", "instance": "i1"},
                                [(t0, 1.0), (t0 + 15_000, 2.0), (t0 + 30_000, 3.0)]),
                               ({"__name__": "rw_up", "job": "j", "instance": "i2"}, [(t0 + 30_000, 7.5)])])
    assert r.status_code == 204, r.text
    assert r.content == b""
    res = wait_query(lookout, "rw_up", t0 + 30_000, n=2)
    assert values(res) == {(("__name__", "rw_up"), ("instance", "i1"), ("job", "j")): 3.0,
                           (("__name__", "rw_up"), ("instance", "i2"), ("job", "j")): 7.5}
    # the sample before the last one is there too
    assert values(query(lookout, "rw_up{instance='i1'}", t0 + 16_000)) == {
        (("__name__", "rw_up"), ("instance", "i1"), ("job", "j")): 2.0}
    m = lookout.metrics()
    assert metric_value(m, "lookout_receiver_accepted_items_total", signal="metrics", tenant=T) == 4


def _malformed_bodies() -> dict[str, tuple[bytes, str]]:
    good_raw = encode_write_request_raw([({"__name__": "never_seen", "a": "1"}, np.array([now_ms()]),
                                          np.array([1.0]))])
    req = prompb.message_class("WriteRequest")()
    ts = req.timeseries.add()
    ts.labels.add(name=b"job", value=b"nameless")
    ts.samples.add(value=1.0, timestamp=now_ms())
    no_name = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
    return {
        "bad snappy": (b"\xff\xff\xff\x0fthis is not snappy at all", "snappy"),
        "uncompressed protobuf": (good_raw, "snappy"),
        "bad protobuf": (bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\xff\xff\x0f\x01\x02")), "protobuf"),
        "no __name__": (no_name, "name"),
    }


def test_remote_write_malformed_is_400_naming_the_problem_and_changes_nothing(lookout) -> None:
    for what, (body, word) in _malformed_bodies().items():
        r = remote_write(lookout, None, body=body)
        assert r.status_code == 400, (what, r.status_code, r.text)
        assert word in r.text.lower(), (what, r.text)
    # a good write afterwards proves the consumer is alive and ordered after the refusals
    t = now_ms()
    assert remote_write(lookout, [({"__name__": "after_bad"}, [(t, 1.0)])]).status_code == 204
    wait_query(lookout, "after_bad", t)
    assert query(lookout, "never_seen", t) == []
    assert query(lookout, '{job="nameless"}', t) == []
    m = lookout.metrics()
    assert metric_value(m, REFUSED_REQ, signal="metrics", reason="malformed", tenant=T) == 4
    assert metric_value(m, "lookout_metrics_dropped_requests_total", tenant=T) == 0


def test_remote_write_wrong_content_type_and_v2_are_415(lookout) -> None:
    body = rw_body([({"__name__": "ct_metric"}, [(now_ms(), 1.0)])])
    r = remote_write(lookout, None, body=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 415 and "application/json" in r.text
    r = remote_write(lookout, None, body=body,
                     headers={"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                              "X-Prometheus-Remote-Write-Version": "2.0.0"})
    assert r.status_code == 415 and "2.0" in r.text
    r = remote_write(lookout, None, body=body, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 415 and "gzip" in r.text
    # v1 with an explicit proto parameter is fine
    r = remote_write(lookout, None, body=body,
                     headers={"Content-Type": "application/x-protobuf;proto=prometheus.WriteRequest"})
    assert r.status_code == 204, r.text
    wait_query(lookout, "ct_metric")
    assert metric_value(lookout.metrics(), "lookout_receiver_refused_requests_total", signal="metrics",
                        reason="unsupported_media_type", tenant=T) == 3


def test_remote_write_over_max_request_bytes_is_413(lookout_factory) -> None:
    lk = lookout_factory({"ingest": {"max_request_bytes": 2048}})
    t = now_ms()
    big = [({"__name__": "big_metric", "i": f"{i:05d}", "pad": "x" * 40}, [(t, float(i))]) for i in range(200)]
    r = remote_write(lk, big)
    assert r.status_code == 413, r.text
    assert "ingest.max_request_bytes" in r.text
    assert remote_write(lk, [({"__name__": "small_metric"}, [(t, 1.0)])]).status_code == 204
    wait_query(lk, "small_metric", t)
    assert query(lk, "big_metric", t) == []
    assert metric_value(lk.metrics(), "lookout_receiver_refused_requests_total", reason="too_large", tenant=T) == 1


def test_remote_write_decompression_bomb_is_refused(lookout_factory) -> None:
    """A small snappy body that expands past ingest.max_request_bytes must be refused, not
    held in memory (the limit is on the uncompressed request)."""
    lk = lookout_factory({"ingest": {"max_request_bytes": 64 << 10}})
    t = now_ms()
    series = [({"__name__": "bomb", "i": str(i), "pad": "y" * 200}, [(t, 1.0)]) for i in range(2000)]
    body = rw_body(series)
    assert len(body) < 64 << 10
    r = remote_write(lk, None, body=body)
    assert r.status_code == 413, r.text
    assert "ingest.max_request_bytes" in r.text
    assert remote_write(lk, [({"__name__": "after_bomb"}, [(t, 1.0)])], tenant="t1").status_code == 204
    wait_query(lk, "after_bomb", t, tenant="t1")
    assert query(lk, "count(bomb)", t) == []
    assert metric_value(lk.metrics(), "lookout_receiver_refused_requests_total", signal="metrics",
                        tenant="default", reason="too_large") == 1


def test_stale_marker_ends_a_series(lookout) -> None:
    t0 = now_ms() - 30_000
    ok = remote_write(lookout, [({"__name__": "stale_me", "k": "a"}, [(t0, 1.0), (t0 + 10_000, 2.0)]),
                                ({"__name__": "stale_me", "k": "b"}, [(t0, 5.0), (t0 + 10_000, 6.0)])])
    assert ok.status_code == 204
    wait_query(lookout, "stale_me", t0 + 10_000, n=2)
    r = remote_write(lookout, [({"__name__": "stale_me", "k": "a"}, [(t0 + 20_000, STALE_NAN)])])
    assert r.status_code == 204

    def gone():
        return len(query(lookout, "stale_me", t0 + 25_000)) == 1

    wait_for(gone)
    assert values(query(lookout, "stale_me", t0 + 25_000)) == {(("__name__", "stale_me"), ("k", "b")): 6.0}
    # before the marker the series is still there
    assert len(query(lookout, "stale_me", t0 + 15_000)) == 2


def test_remote_write_metadata_reaches_metadata_api(lookout) -> None:
    t = now_ms()
    md = [MetricMetadata("rw_requests_total", "counter", "", "Requests served."),
          MetricMetadata("rw_latency_seconds", "histogram", "seconds", "Latency.")]
    r = remote_write(lookout, [({"__name__": "rw_requests_total"}, [(t, 3.0)])], metadata=md)
    assert r.status_code == 204
    wait_query(lookout, "rw_requests_total", t)
    body = httpx.get(f"{lookout.http}/api/v1/metadata", timeout=10).json()
    assert body["status"] == "success"
    assert body["data"]["rw_requests_total"] == [{"type": "counter", "help": "Requests served.", "unit": ""}]
    assert body["data"]["rw_latency_seconds"] == [{"type": "histogram", "help": "Latency.", "unit": "seconds"}]
    one = httpx.get(f"{lookout.http}/api/v1/metadata", params={"metric": "rw_latency_seconds"}, timeout=10).json()
    assert list(one["data"]) == ["rw_latency_seconds"]
    lim = httpx.get(f"{lookout.http}/api/v1/metadata", params={"limit": "1"}, timeout=10).json()
    assert len(lim["data"]) == 1


def test_metadata_only_request_is_stored(lookout) -> None:
    """Prometheus sends metadata in WriteRequests of their own (no series): they must be kept."""
    t = now_ms()
    assert remote_write(lookout, [({"__name__": "solo_bytes"}, [(t, 1.0)])]).status_code == 204
    md = [MetricMetadata("solo_bytes", "gauge", "bytes", "Bytes in use.")]
    r = remote_write(lookout, [], metadata=md)
    assert r.status_code == 204, r.text

    def stored():
        data = httpx.get(f"{lookout.http}/api/v1/metadata", params={"metric": "solo_bytes"}, timeout=10).json()
        return data["data"].get("solo_bytes")

    assert wait_for(stored) == [{"type": "gauge", "help": "Bytes in use.", "unit": "bytes"}]


def test_native_histograms_are_counted_not_silently_dropped(lookout) -> None:
    t = now_ms()
    req = prompb.message_class("WriteRequest")()
    ts = req.timeseries.add()
    ts.labels.add(name=b"__name__", value=b"native_latency")
    ts.histograms.add(count_int=3, sum=1.0, schema=0, timestamp=t)
    body = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
    assert remote_write(lookout, None, body=body).status_code == 204

    def counted():
        return metric_value(lookout.metrics(), "lookout_metrics_refused_data_points_total", tenant=T) == 1

    wait_for(counted)
    assert query(lookout, "native_latency", t) == []


# --------------------------------------------------------------------------------------------
# per-tenant limits


def test_rate_limit_is_429_with_retry_after_and_counted(lookout_factory) -> None:
    lk = lookout_factory({"metrics": {"max_samples_per_second": 50}})
    t = now_ms()
    small = [({"__name__": "rl", "i": str(i)}, [(t, 1.0)]) for i in range(40)]
    assert remote_write(lk, small).status_code == 204
    refused = None
    for k in range(1, 6):
        r = remote_write(lk, [({"__name__": "rl", "i": str(i)}, [(t + k, 2.0)]) for i in range(40)])
        if r.status_code == 429:
            refused = r
            break
    assert refused is not None, "never rate limited"
    assert "metrics.max_samples_per_second" in refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    # over the burst it can never fit: refused (never retried forever) naming the limit, never a 400
    huge = [({"__name__": "rl_huge", "i": str(i)}, [(t, 1.0)]) for i in range(500)]
    r = remote_write(lk, huge)
    assert r.status_code in (413, 429) and "metrics.max_samples_per_second" in r.text, r.text
    m = lk.metrics()
    assert metric_value(m, REFUSED_REQ, signal="metrics", reason="rate_limited", tenant=T) >= 1
    assert query(lk, "count(rl_huge)", t) == []
    # another tenant has its own bucket
    assert remote_write(lk, small, tenant="other").status_code == 204


def test_active_series_limit(lookout_factory) -> None:
    lk = lookout_factory({"metrics": {"max_active_series": 10}})
    t = now_ms() - 10_000
    first = [({"__name__": "lim", "i": str(i)}, [(t, float(i))]) for i in range(8)]
    assert remote_write(lk, first).status_code == 204
    wait_query(lk, "lim", t, n=8)
    # 8 existing + 6 new: 2 new fit, 4 are refused (the request was accepted into the log)
    more = [({"__name__": "lim", "i": str(i)}, [(t + 1000, float(i))]) for i in range(14)]
    assert remote_write(lk, more).status_code == 204

    def refused():
        return metric_value(lk.metrics(), "lookout_metrics_samples_refused_total", reason="series_limit", tenant=T) >= 4

    wait_for(refused)
    res = query(lk, "lim", t + 1000)
    assert len(res) == 10
    assert {s["metric"]["i"] for s in res} >= {str(i) for i in range(8)}
    # now at the limit: further requests are refused up front, naming the setting
    r = remote_write(lk, [({"__name__": "lim_new"}, [(t + 2000, 1.0)])])
    assert r.status_code == 429, r.text
    assert "metrics.max_active_series" in r.text and "Retry-After" in r.headers
    m = lk.metrics()
    assert metric_value(m, REFUSED_REQ, signal="metrics", reason="series_limit", tenant=T) >= 1
    assert metric_value(m, "lookout_metrics_active_series", tenant=T) == 10
    # existing series are still queryable, and another tenant is unaffected
    assert len(query(lk, "lim", t + 1000)) == 10
    assert remote_write(lk, [({"__name__": "lim_new"}, [(t + 2000, 1.0)])], tenant="t2").status_code == 204
    wait_query(lk, "lim_new", t + 2000, tenant="t2")


def test_existing_series_keep_ingesting_at_the_series_limit(lookout_factory) -> None:
    """At the limit a request that only touches existing series must still be accepted: the
    limit refuses new series, not samples of series the tenant already has."""
    lk = lookout_factory({"metrics": {"max_active_series": 3}})
    t = now_ms() - 10_000
    series = [({"__name__": "full", "i": str(i)}, [(t, 1.0)]) for i in range(3)]
    assert remote_write(lk, series).status_code == 204
    wait_query(lk, "full", t, n=3)
    again = [({"__name__": "full", "i": str(i)}, [(t + 5000, 2.0)]) for i in range(3)]
    r = remote_write(lk, again)
    assert r.status_code == 204, r.text

    def updated():
        return set(values(query(lk, "full", t + 5000)).values()) == {2.0}

    wait_for(updated)


# --------------------------------------------------------------------------------------------
# out-of-order samples


def test_out_of_order_refused_and_counted_by_default(lookout) -> None:
    t = now_ms() - 60_000
    assert remote_write(lookout, [({"__name__": "ooo"}, [(t + 30_000, 3.0)])]).status_code == 204
    wait_query(lookout, "ooo", t + 30_000)
    assert remote_write(lookout, [({"__name__": "ooo"}, [(t + 10_000, 1.0)])]).status_code == 204

    def counted():
        return metric_value(lookout.metrics(), REFUSED_SAMPLES, reason="out_of_order", tenant=T) == 1

    wait_for(counted)
    assert query(lookout, "ooo", t + 15_000) == []


def test_out_of_order_accepted_within_window(lookout_factory) -> None:
    lk = lookout_factory({"metrics": {"out_of_order_time_window": "10m"}})
    t = now_ms() - 60_000
    assert remote_write(lk, [({"__name__": "ooo"}, [(t + 30_000, 3.0)])]).status_code == 204
    wait_query(lk, "ooo", t + 30_000)
    assert remote_write(lk, [({"__name__": "ooo"}, [(t + 10_000, 1.0)])]).status_code == 204
    wait_for(lambda: values(query(lk, "ooo", t + 15_000)) == {(("__name__", "ooo"),): 1.0})
    assert metric_value(lk.metrics(), "lookout_metrics_samples_refused_total", tenant=T) == 0
    r = httpx.get(f"{lk.http}/api/v1/query_range", params={"query": "ooo", "start": (t + 10_000) / 1000,
                                                          "end": (t + 30_000) / 1000, "step": "10"}, timeout=10)
    assert [float(v) for _, v in r.json()["data"]["result"][0]["values"]] == [1.0, 1.0, 3.0]


# --------------------------------------------------------------------------------------------
# durability


def _write_series(lk, t: int, name: str) -> None:
    series = [({"__name__": name, "i": str(i)}, [(t + k * 1000, float(i * 10 + k)) for k in range(5)])
              for i in range(20)]
    r = remote_write(lk, series)
    assert r.status_code == 204, r.text


def _check_series(lk, t: int, name: str) -> None:
    got = values(query(lk, name, t + 4000))
    assert len(got) == 20
    assert got == {(("__name__", name), ("i", str(i))): float(i * 10 + 4) for i in range(20)}
    assert values(query(lk, f"sum(count_over_time({name}[1m]))", t + 4000))[()] == 100


def test_kill9_after_ack_replays_the_wal(lookout_factory, tmp_path) -> None:
    lk = lookout_factory(data_dir=tmp_path / "d")
    t = now_ms() - 30_000
    _write_series(lk, t, "durable_kill")
    lk.kill9()
    lk2 = lookout_factory(data_dir=tmp_path / "d")
    _check_series(lk2, t, "durable_kill")


def test_sigterm_restart_keeps_data(lookout_factory, tmp_path) -> None:
    lk = lookout_factory(data_dir=tmp_path / "d")
    t = now_ms() - 30_000
    _write_series(lk, t, "durable_term")
    wait_query(lk, "durable_term", t + 4000, n=20)
    assert lk.terminate() == 0
    lk2 = lookout_factory(data_dir=tmp_path / "d")
    _check_series(lk2, t, "durable_term")


def test_queryable_after_flush_and_compaction(lookout_factory, tmp_path) -> None:
    cfg = {"storage": {"flush_interval": "0.3s", "compaction_interval": "0.5s", "compaction_min_blocks": 2,
                       "compaction_window": "1h"}}
    lk = lookout_factory(cfg, data_dir=tmp_path / "d")
    t = now_ms() - 3_600_000  # an hour ago: a sealed compaction window soon
    t = t - t % 3_600_000 - 3_600_000
    flushes = 0.0
    for k, name in enumerate(("flushed_a", "flushed_b", "flushed_c")):
        _write_series(lk, t + k * 10, name)
        wait_for(lambda f=flushes: metric_value(lk.metrics(), "lookout_flushes_total", signal="metrics") > f)
        flushes = metric_value(lk.metrics(), "lookout_flushes_total", signal="metrics")
    for name in ("flushed_a", "flushed_b", "flushed_c"):
        _check_series(lk, t + (("flushed_a", "flushed_b", "flushed_c").index(name)) * 10, name)
    wait_for(lambda: metric_value(lk.metrics(), "lookout_compactions_total", signal="metrics") >= 1)
    for k, name in enumerate(("flushed_a", "flushed_b", "flushed_c")):
        _check_series(lk, t + k * 10, name)
    # and after a restart, from blocks only
    lk.kill9()
    lk2 = lookout_factory(cfg, data_dir=tmp_path / "d")
    for k, name in enumerate(("flushed_a", "flushed_b", "flushed_c")):
        _check_series(lk2, t + k * 10, name)
