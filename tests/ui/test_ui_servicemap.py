"""The service map and a service's page over the seeded shop: the graph the servicegraph
processor generated (frontend -> checkout -> payments, checkout -> the "orders" database, the
virtual "user" client), each call's error rate as the metrics say it, and the payments page
with its RED charts, operations, callers and error traces."""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

import httpx
from playwright.sync_api import expect

from tests.ui.uikit import shot

EDGE_TOTALS = 'sum by (client, server) (traces_service_graph_request_total)'
EDGE_FAILED = 'sum by (client, server) (traces_service_graph_request_failed_total)'


def _edge_counts(base: str, query: str) -> dict[tuple[str, str], float]:
    r = httpx.get(f"{base}/api/v1/query", params={"query": query}, timeout=10)
    assert r.status_code == 200, r.text
    return {(s["metric"]["client"], s["metric"]["server"]): float(s["value"][1]) for s in r.json()["data"]["result"]}


def _settled_edge_counts(base: str) -> tuple[dict, dict]:
    """The edge counters once every seeded call is counted (they are collected every second)."""
    deadline = time.monotonic() + 20
    while True:
        totals, failed = _edge_counts(base, EDGE_TOTALS), _edge_counts(base, EDGE_FAILED)
        if (totals and all(v == 30 for v in totals.values())) or time.monotonic() > deadline:
            return totals, failed
        time.sleep(0.25)


def _edge(page, client: str, server: str):
    return page.locator(f'[data-testid="service-edge"][data-client="{client}"][data-server="{server}"]')


def test_service_map_draws_the_shop_with_error_rates(shop, page):
    # What the data says: every order calls each hop once; the 6 declined orders fail the
    # payments span, and checkout's and frontend's server spans too (so both hops count them);
    # the database call never fails.
    totals, failed = _settled_edge_counts(shop.url)
    hops = {("user", "frontend"), ("frontend", "checkout"), ("checkout", "payments"), ("checkout", "orders")}
    assert set(totals) == hops
    assert all(totals[h] == 30 for h in hops)
    assert failed == {("user", "frontend"): 6, ("frontend", "checkout"): 6, ("checkout", "payments"): 6,
                      ("checkout", "orders"): 0}

    page.goto(f"{shop.url}/ui/services")
    nodes = page.get_by_test_id("service-node")
    expect(nodes).to_have_count(5)
    kinds = {nodes.nth(i).get_attribute("data-service"): nodes.nth(i).get_attribute("data-kind") for i in range(5)}
    assert kinds == {"frontend": "service", "checkout": "service", "payments": "service", "orders": "database",
                     "user": "user"}
    expect(page.get_by_test_id("service-edge")).to_have_count(4)

    for client, server in hops - {("checkout", "orders")}:
        edge = _edge(page, client, server)
        expect(edge.get_by_test_id("edge-label")).to_contain_text("20% errors")
        expect(edge).to_have_class(re.compile(r"\berror\b"))
        assert edge.get_attribute("data-error-rate") == "0.2"
    db = _edge(page, "checkout", "orders")
    expect(db.get_by_test_id("edge-label")).to_contain_text("0% errors")
    expect(db).not_to_have_class(re.compile(r"\berror\b"))
    assert db.get_attribute("data-connection-type") == "database"
    # 30 calls in the last hour: the rate is per second over the whole range
    expect(_edge(page, "checkout", "payments").get_by_test_id("edge-label")).to_contain_text("0.00833 req/s")
    expect(_edge(page, "checkout", "payments").get_by_test_id("edge-label")).to_contain_text("p95")
    payments = page.locator('[data-testid="service-node"][data-service="payments"]')
    expect(payments).to_contain_text("20% errors")

    row = page.locator('[data-testid="edge-row"][data-client="checkout"][data-server="payments"]')
    assert [c.strip() for c in row.locator("td").all_inner_texts()][:7] == [
        "checkout", "payments", "call", "30", "0.00833 req/s", "6", "20%"]

    # hovering a service lights up its calls and dims the rest
    payments.hover()
    expect(_edge(page, "checkout", "payments")).to_have_class(re.compile(r"\blit\b"))
    expect(_edge(page, "user", "frontend")).to_have_class(re.compile(r"\bdim\b"))
    page.mouse.move(5, 5)
    expect(_edge(page, "user", "frontend")).not_to_have_class(re.compile(r"\bdim\b"))
    shot(page, "service-map")

    payments.click()
    page.wait_for_url("**/ui/services/payments?*")
    expect(page.get_by_test_id("service-name")).to_have_text("payments")


def test_service_page_shows_red_operations_callers_and_error_traces(shop, page):
    page.goto(f"{shop.url}/ui/services/payments")
    expect(page.get_by_test_id("stat-errors")).to_contain_text("20%")
    for chart in ("chart-requests", "chart-errors", "chart-latency"):
        expect(page.get_by_test_id(chart).locator("canvas").first).to_be_visible()

    op = page.locator('[data-testid="operation-row"][data-operation="charge"]')
    cells = [c.strip() for c in op.locator("td").all_inner_texts()]
    assert cells[:5] == ["charge", "server", "30", "0.00833 req/s", "20%"]
    expect(page.get_by_test_id("operation-row")).to_have_count(1)

    callers = page.get_by_test_id("upstream-table").get_by_test_id("peer-row")
    expect(callers).to_have_count(1)
    expect(callers.first).to_have_attribute("data-service", "checkout")
    expect(page.get_by_test_id("downstream")).to_contain_text("No calls to other services")

    errors = page.get_by_test_id("error-traces").get_by_test_id("trace-row")
    expect(errors).to_have_count(len(shop.error_trace_ids))
    assert {errors.nth(i).get_attribute("data-trace-id") for i in range(errors.count())} == set(shop.error_trace_ids)
    expect(page.get_by_test_id("recent-traces").get_by_test_id("trace-row")).to_have_count(20)

    logs = unquote(page.get_by_test_id("link-logs").get_attribute("href"))
    assert logs.startswith('/ui/logs?query={service_name="payments"}')
    traces = unquote(page.get_by_test_id("link-traces").get_attribute("href").replace("+", " "))
    assert 'q={ resource.service.name = "payments" }' in traces and "mode=traceql" in traces
    shot(page, "service-page")

    # a caller is one click away
    callers.first.locator("a").click()
    page.wait_for_url("**/ui/services/checkout?*")
    expect(page.get_by_test_id("downstream-table").get_by_test_id("peer-row")).to_have_count(2)


def test_service_map_says_how_to_get_data_when_the_range_is_empty(shop, page):
    page.goto(f"{shop.url}/ui/services?from=now-3h&to=now-2h")
    expect(page.get_by_test_id("servicemap-empty")).to_have_text(
        "No service-graph data in this time range — enable the servicegraph processor in pipeline.traces "
        "(see lookout.example.yaml)")
    expect(page.get_by_test_id("service-node")).to_have_count(0)
