"""The dashboards API on a real node: create, update with Grafana's conflict rules, delete, list
per tenant, shipped read-only dashboards, Grafana import, validation errors naming the JSON
path; the shipped dashboards' queries parse, and the self-monitoring ones return data."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from test_grafana_import import NODE_EXPORTER

from lookout.devserver import LookoutProcess
from lookout.logs.logql.parser import parse as parse_logql
from lookout.metrics.promql.parse import parse as parse_promql
from lookout.traces.traceql.parser import parse as parse_traceql
from lookout.ui.dashboards.store import read_shipped

API = "/lookout/api/v1/dashboards"
SELFMON_TENANT = "ops"
SAMPLE_VALUES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                 "$service": "frontend|checkout"}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = LookoutProcess(tmp_path_factory.mktemp("dashboards") / "data",
                       {"selfmon": {"interval": "1s", "tenant": SELFMON_TENANT},
                        "storage": {"flush_interval": "1s", "compaction_interval": "1s"}}).start()
    yield n
    n.stop()


@pytest.fixture
def client(node):
    with httpx.Client(base_url=node.http, timeout=15) as c:
        yield c


def _dashboard(title: str, **extra) -> dict:
    return {"title": title, "tags": ["team-a"],
            "panels": [{"title": "Requests", "type": "timeseries",
                        "targets": [{"lang": "promql", "expr": "sum(rate(http_requests_total[5m]))"}]}], **extra}


def _save(client, dashboard, tenant="default", **body) -> httpx.Response:
    return client.post(API, json={"dashboard": dashboard, **body}, headers={"X-Scope-OrgID": tenant})


def _titles(client, tenant="default", **params) -> list[str]:
    r = client.get(API, params=params, headers={"X-Scope-OrgID": tenant})
    assert r.status_code == 200
    return [d["title"] for d in r.json()["dashboards"]]


def test_shipped_dashboards_are_listed_for_every_tenant(client):
    for tenant in ("default", "someone-else"):
        r = client.get(API, headers={"X-Scope-OrgID": tenant})
        assert r.status_code == 200
        listed = {d["uid"]: d for d in r.json()["dashboards"]}
        assert listed["service-overview"] == {"uid": "service-overview", "title": "Service overview",
                                              "tags": ["lookout", "traces", "RED"], "shipped": True,
                                              "version": 1, "updated": None}
        assert listed["lookout-self-monitoring"]["shipped"] is True
    r = client.get(f"{API}/lookout-self-monitoring")
    body = r.json()
    assert body["dashboard"]["tenant"] == SELFMON_TENANT  # the node's, not the file's "lookout"
    assert body["meta"] == {"shipped": True, "version": 1, "created": None, "updated": None,
                            "url": "/ui/d/lookout-self-monitoring"}


def test_create_update_and_grafana_conflicts(client):
    r = _save(client, _dashboard("Checkout latency"))
    assert r.status_code == 200, r.text
    assert r.json() == {"uid": "checkout-latency", "version": 1, "url": "/ui/d/checkout-latency",
                        "status": "success"}
    got = client.get(f"{API}/checkout-latency").json()
    saved = got["dashboard"]
    assert saved["version"] == 1 and saved["tenant"] is None and saved["time"] == {"from": "now-1h", "to": "now"}
    assert saved["panels"][0]["id"] == 1 and saved["panels"][0]["targets"][0]["refId"] == "A"
    assert saved["panels"][0]["gridPos"] == {"x": 0, "y": 0, "w": 12, "h": 8}
    assert got["meta"]["shipped"] is False and got["meta"]["created"].endswith("Z")

    saved["description"] = "edited"
    r = _save(client, saved)
    assert r.json()["version"] == 2

    stale = {**saved, "description": "someone else's edit", "version": 1}
    r = _save(client, stale)
    assert r.status_code == 412 and r.json() == {
        "status": "version-mismatch",
        "message": "dashboard checkout-latency has been changed by someone else (version 2, yours 1); "
                   "reload it, or save with overwrite to replace it"}
    assert client.get(f"{API}/checkout-latency").json()["dashboard"]["description"] == "edited"
    r = _save(client, stale, overwrite=True)
    assert r.status_code == 200 and r.json()["version"] == 3

    twin = _dashboard("checkout LATENCY", uid="another")  # titles compare without case
    r = _save(client, twin)
    assert r.status_code == 412 and r.json()["status"] == "name-exists"
    assert "another" not in [d["uid"] for d in client.get(API).json()["dashboards"]]
    assert _save(client, twin, overwrite=True).json()["uid"] == "another"

    # Without a uid, a dashboard is new: its uid from the title gets a suffix if taken.
    r = _save(client, _dashboard("Checkout latency"), overwrite=True)
    assert r.json()["uid"] == "checkout-latency-2" and r.json()["version"] == 1


def test_dashboards_belong_to_their_tenant(client):
    assert _save(client, _dashboard("Tenant A board", uid="shared-uid"), tenant="tenant-a").status_code == 200
    assert _save(client, _dashboard("Tenant B board", uid="shared-uid"), tenant="tenant-b").status_code == 200
    assert "Tenant A board" in _titles(client, "tenant-a") and "Tenant B board" not in _titles(client, "tenant-a")
    r = client.get(f"{API}/shared-uid", headers={"X-Scope-OrgID": "tenant-b"})
    assert r.json()["dashboard"]["title"] == "Tenant B board"
    assert client.get(f"{API}/shared-uid").status_code == 404  # tenant "default"
    r = client.get(API, headers={"X-Scope-OrgID": "bad/tenant"})
    assert r.status_code == 400 and "invalid tenant id" in r.json()["message"]


def test_list_filters_by_query_and_tags(client):
    _save(client, _dashboard("Payments errors", uid="pay", tags=["payments", "errors"]), tenant="filters")
    _save(client, _dashboard("Payments latency", uid="pay-lat", tags=["payments"]), tenant="filters")
    assert _titles(client, "filters") == ["Lookout self-monitoring", "Payments errors", "Payments latency",
                                          "Service overview"]
    assert _titles(client, "filters", query="PAYMENTS") == ["Payments errors", "Payments latency"]
    assert _titles(client, "filters", tag=["payments", "errors"]) == ["Payments errors"]
    assert _titles(client, "filters", tag="lookout") == ["Lookout self-monitoring", "Service overview"]


def test_shipped_dashboards_are_read_only(client):
    shipped = client.get(f"{API}/service-overview").json()["dashboard"]
    r = _save(client, shipped, overwrite=True)
    assert r.status_code == 400
    assert r.json()["message"] == ("dashboard service-overview is shipped with Lookout and read-only; "
                                   "save it as a copy with a new uid")
    assert client.delete(f"{API}/service-overview").status_code == 400
    copy = {**shipped, "uid": "my-services", "title": "My services", "version": None}
    r = _save(client, copy, tenant="copier")
    assert r.status_code == 200 and r.json()["url"] == "/ui/d/my-services"
    r = _save(client, {**shipped, "uid": None, "title": "Service overview"}, tenant="copier")
    assert r.status_code == 412 and r.json()["status"] == "name-exists"


def test_delete(client):
    _save(client, _dashboard("Short lived", uid="short-lived"), tenant="deleter")
    r = client.delete(f"{API}/short-lived", headers={"X-Scope-OrgID": "deleter"})
    assert r.status_code == 200 and r.json() == {"message": "dashboard short-lived deleted"}
    r = client.get(f"{API}/short-lived", headers={"X-Scope-OrgID": "deleter"})
    assert r.status_code == 404 and r.json()["message"] == "dashboard short-lived not found"
    assert client.delete(f"{API}/short-lived", headers={"X-Scope-OrgID": "deleter"}).status_code == 404


@pytest.mark.parametrize(("dashboard", "message"), [
    ({"title": "x", "panels": [{"type": "stat", "targets": [{"lang": "sql", "expr": "SELECT 1"}]}]},
     'panels[0].targets[0].lang: expected one of promql, logql, traceql, got "sql"'),
    ({"title": "x", "panels": [{"type": "stat"}, {"type": "piechart"}]},
     'panels[1].type: unsupported panel type "piechart" (supported: timeseries, stat, table, logs, traces, text)'),
    ({"title": "x", "panels": [{"type": "logs", "targets": [{"lang": "promql", "expr": "up"}]}]},
     'panels[0].targets[0].lang: a logs panel shows logql queries, got "promql"'),
    ({"title": "x", "panels": [{"type": "text", "gridPos": {"x": 20, "w": 8}}]},
     "panels[0].gridPos: x + w must be at most 24, got 20 + 8"),
    ({"title": "x", "variables": [{"name": "a b", "type": "custom"}]},
     'variables[0].name: expected letters, digits and _ (not starting with a digit), got "a b"'),
    ({"title": "x", "variables": [{"name": "a", "type": "query", "refresh": "always"}]},
     'variables[0].refresh: expected one of load, time, got "always"'),
    ({"title": "x", "variables": [{"name": "a", "type": "query", "regex": "/(.*)/x"}]},
     'variables[0].regex: expected /pattern/flags with flags from dgimsuy, got "/(.*)/x"'),
    ({"title": "x", "uid": "no spaces please"},
     'uid: expected 1 to 40 letters, digits, _ or -, got "no spaces please"'),
    ({"title": "  "}, "title: must not be empty"),
    ({"title": "x", "colour": "red"},
     "colour: unknown field (expected description, panels, refresh, tags, tenant, time, title, uid, variables, "
     "version)"),
])
def test_invalid_dashboards_are_refused_naming_the_path(client, dashboard, message):
    r = _save(client, dashboard, tenant="validation")
    assert r.status_code == 400
    assert r.json() == {"status": "error", "message": message}
    assert _titles(client, "validation") == ["Lookout self-monitoring", "Service overview"]  # nothing saved


def test_bad_bodies(client):
    r = client.post(API, content=b'{"dashboard": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["message"] == "request body is not valid JSON: Expecting value at line 1, column 15"
    r = client.post(API, json=[1, 2])
    assert (r.status_code, r.json()["message"]) == (400, "request body must be a JSON object, got a list")
    r = client.post(API, json={"title": "not under dashboard"})
    assert r.status_code == 400 and 'under "dashboard"' in r.json()["message"]
    big = json.dumps({"dashboard": {"title": "big", "description": "x" * (5 << 20)}})
    r = client.post(f"{API}/import", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than 5 MB" in r.json()["message"]
    assert "big" not in _titles(client)


def test_import_grafana_dashboard(client):
    h = {"X-Scope-OrgID": "importer"}
    r = client.post(f"{API}/import", json={"dashboard": NODE_EXPORTER, "overwrite": False, "folder": "ignored"},
                    headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["uid"], body["version"], body["url"]) == ("rYdddlPWk", 1, "/ui/d/rYdddlPWk")
    assert 'panel 7 "CPU" (type piechart) is not supported and was skipped' in body["warnings"]
    imported = client.get(f"{API}/rYdddlPWk", headers=h).json()["dashboard"]
    assert imported["title"] == "Node Exporter Full" and len(imported["panels"]) == 6
    assert [v["name"] for v in imported["variables"]] == ["job", "node", "nic", "smoothing", "region", "filter"]

    r = client.post(f"{API}/import", json={"dashboard": NODE_EXPORTER}, headers=h)
    assert r.status_code == 412 and r.json()["status"] == "version-mismatch"
    r = client.post(f"{API}/import", json=NODE_EXPORTER, headers=h)  # the bare dashboard, no wrapper
    assert (r.status_code, r.json()["message"]) == (
        412, "dashboard rYdddlPWk already exists (version 1); save with overwrite to replace it")
    r = client.post(f"{API}/import", json={"dashboard": {"dashboard": NODE_EXPORTER, "meta": {}}, "overwrite": True},
                    headers=h)
    assert r.status_code == 200 and r.json()["version"] == 2
    r = client.post(f"{API}/import", json={"something": "else"}, headers=h)
    assert r.status_code == 400 and r.json()["message"].startswith("cannot import: no Grafana dashboard found")


def test_dashboards_survive_a_restart(tmp_path):
    n = LookoutProcess(tmp_path / "data", {"selfmon": {"interval": "0s"}}).start()
    try:
        with httpx.Client(base_url=n.http) as c:
            assert _save(c, _dashboard("Kept", uid="kept")).status_code == 200
        n.terminate()
        n.start()
        r = httpx.get(f"{n.http}{API}/kept")
        assert r.status_code == 200 and r.json()["meta"]["version"] == 1
    finally:
        n.stop()


def _targets(uid: str):
    doc = read_shipped()[uid]
    return [(p["title"], t) for p in doc["panels"] for t in p["targets"]]


def _substitute(expr: str) -> str:
    for name in sorted(SAMPLE_VALUES, key=len, reverse=True):
        expr = expr.replace(name, SAMPLE_VALUES[name])
    return expr


@pytest.mark.parametrize("uid", ["service-overview", "lookout-self-monitoring"])
def test_shipped_queries_parse(uid):
    parsers = {"promql": parse_promql, "logql": parse_logql, "traceql": parse_traceql}
    targets = _targets(uid)
    assert targets
    for title, t in targets:
        try:
            parsers[t["lang"]](_substitute(t["expr"]))
        except Exception as e:  # noqa: BLE001 - name the panel whatever the parser raised
            pytest.fail(f"{uid} panel {title!r} query {t['refId']}: {e}")


def test_self_monitoring_panels_return_data(node, client):
    log = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "t"}}]},
                             "scopeLogs": [{"logRecords": [{"timeUnixNano": str(time.time_ns()),
                                                            "body": {"stringValue": "hello"}}]}]}]}
    assert httpx.post(f"{node.otlp_http}/v1/logs", json=log).status_code == 200
    refused = httpx.post(f"{node.otlp_http}/v1/traces", content=b"\xff\xff not protobuf",
                         headers={"Content-Type": "application/x-protobuf"})
    assert refused.status_code == 400
    targets = _targets("lookout-self-monitoring")
    missing: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        missing = [f"{title} {t['refId']}" for title, t in targets if not _has_data(client, t["expr"])]
        if not missing:
            break
        time.sleep(0.5)
    assert not missing, f"self-monitoring panels without data: {missing}"


def _has_data(client, expr: str) -> bool:
    r = client.get("/api/v1/query", params={"query": _substitute(expr)}, headers={"X-Scope-OrgID": SELFMON_TENANT})
    assert r.status_code == 200, r.text
    return bool(r.json()["data"]["result"])
