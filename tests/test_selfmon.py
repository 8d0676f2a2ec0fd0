"""The node stores its own /metrics in its metrics store, in its own tenant."""

from __future__ import annotations

import time

import httpx

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
