"""The node stores its own /metrics in its metrics store, in its own tenant."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from tests.conftest import metric_value, wait_for


def _query(lookout, q: str, tenant: str) -> list[dict]:
    r = httpx.get(f"{lookout.http}/api/v1/query", params={"query": q}, headers={"X-Scope-OrgID": tenant})
    assert r.status_code == 200, r.text
    return r.json()["data"]["result"]


def test_own_metrics_are_queryable_by_promql_in_the_selfmon_tenant(lookout_factory):
    lookout = lookout_factory({"selfmon": {"interval": "200ms", "tenant": "ops"}})
    up = wait_for(lambda: _query(lookout, 'up{job="lookout"}', "ops"), timeout=30)
    assert up[0]["metric"]["instance"] == lookout.addr["http"]
    assert up[0]["value"][1] == "1"
    # a counter of the node itself, with its own labels, grows as the node ingests its own scrapes
    accepted = wait_for(lambda: _query(
        lookout, 'lookout_receiver_accepted_items_total{signal="metrics",tenant="ops"}', "ops"), timeout=30)
    assert float(accepted[0]["value"][1]) > 0
    meta = httpx.get(f"{lookout.http}/api/v1/metadata", params={"metric": "lookout_ready"},
                     headers={"X-Scope-OrgID": "ops"}).json()["data"]
    assert meta["lookout_ready"][0]["type"] == "gauge"
    # other tenants never see them
    assert _query(lookout, 'up{job="lookout"}', "default") == []


def test_selfmon_can_be_switched_off(lookout_factory):
    lookout = lookout_factory({"selfmon": {"interval": "0s"}})
    time.sleep(1.0)  # an enabled scrape runs at once on ready and is consumed within milliseconds
    assert metric_value(lookout.metrics(), "lookout_receiver_accepted_items_total") == 0
    r = httpx.get(f"{lookout.http}/api/v1/label/__name__/values", headers={"X-Scope-OrgID": "lookout"})
    assert r.json()["data"] == []


def _status_kib(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_process_metrics_describe_the_server_process(lookout_factory):
    """process_* as every Prometheus client exports them, read from the server's own /proc: its
    resident memory and open files are the server process', not the test's."""
    before = time.time()
    lookout = lookout_factory({"selfmon": {"interval": "200ms", "tenant": "ops"}})
    pid = lookout.proc.pid
    text = lookout.metrics()
    rss = metric_value(text, "process_resident_memory_bytes")
    assert abs(rss - _status_kib(pid, "VmRSS") * 1024) < 0.25 * rss  # the server's RSS, not the test's
    assert metric_value(text, "process_virtual_memory_bytes") >= rss
    assert metric_value(text, "process_open_fds") == pytest.approx(len(os.listdir(f"/proc/{pid}/fd")), abs=8)
    assert 0 < metric_value(text, "process_cpu_seconds_total") < 3600
    started = metric_value(text, "process_start_time_seconds")
    assert before - 2 <= started <= time.time()  # /proc's start time has clock-tick resolution
    assert "# TYPE process_cpu_seconds_total counter" in text
    # stored like every own metric: the self-monitoring dashboard's memory panel has data
    got = wait_for(lambda: _query(lookout, 'process_resident_memory_bytes{job="lookout"}', "ops"), timeout=30)
    assert float(got[0]["value"][1]) > 10 * 2**20
