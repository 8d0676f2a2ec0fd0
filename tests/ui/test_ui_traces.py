"""The traces views against the seeded shop: search (form and TraceQL), the trace list, the
waterfall (tree, errors, critical path, collapse), span details with their logs and metrics
links, and a 10,000-span trace that must stay virtualized."""

from __future__ import annotations

import os
import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.ui.uikit import shot

ERROR_QUERY = '{ resource.service.name = "payments" && status = error }'
# GET /checkout > POST checkout > POST /api/checkout > [SELECT orders, POST charge > charge]
TREE = [("GET /checkout", 0), ("POST checkout", 1), ("POST /api/checkout", 2), ("SELECT orders", 3),
        ("POST charge", 3), ("charge", 4)]


def _order_of(shop, trace_id: str) -> str:
    """Every 5th order is declined: the k-th error trace is order o-(5k+4)."""
    return f"o-{5 * shop.error_trace_ids.index(trace_id) + 4}"


def _row_ids(page) -> set[str]:
    return {r.get_attribute("data-trace-id") for r in page.get_by_test_id("trace-row").all()}


def _span_rows(page):
    return page.locator("[data-testid=span-row]")


def _span_row(page, name: str):
    exact = re.compile(f"^{re.escape(name)}$")
    return _span_rows(page).filter(has=page.locator("[data-testid=span-name]", has_text=exact))


def test_search_form_builds_traceql_and_finds_the_error_traces(shop, page):
    page.goto(f"{shop.url}/ui/traces")
    expect(page.get_by_test_id("trace-row").first).to_be_visible()  # recent traces by default
    expect(page.get_by_test_id("search-span").locator("option")).to_have_count(7)  # any + 6 span names
    page.get_by_test_id("search-service").select_option("payments")
    # the span names offered are the chosen service's (tag values narrowed by q)
    expect(page.get_by_test_id("search-span").locator("option")).to_have_text(["any", "charge"])
    page.get_by_test_id("search-status").select_option("error")
    expect(page.get_by_test_id("built-traceql")).to_have_text(ERROR_QUERY)
    expect(page.get_by_test_id("trace-row")).to_have_count(6)
    assert _row_ids(page) == set(shop.error_trace_ids)
    # every row is marked as an error trace and opens its trace
    expect(page.locator("[data-testid=trace-row].is-error")).to_have_count(6)
    assert "service=payments" in page.url and "status=error" in page.url
    shot(page, "traces-search")

    # the view is in the URL: reloading it gives the same list
    page.reload()
    expect(page.get_by_test_id("trace-row")).to_have_count(6)

    # a tag narrows it (logfmt, shown as TraceQL); an impossible one finds nothing, in words
    page.get_by_test_id("search-service").select_option("")
    page.get_by_test_id("search-status").select_option("")
    page.get_by_test_id("search-tags").fill("order.id=o-9")
    page.get_by_test_id("search-run").click()
    expect(page.get_by_test_id("built-traceql")).to_have_text('{ .order.id = "o-9" }')
    expect(page.get_by_test_id("trace-row")).to_have_count(1)
    assert _row_ids(page) == {shop.error_trace_ids[1]}
    page.get_by_test_id("search-tags").fill("order.id=o-999")
    page.get_by_test_id("search-run").click()
    expect(page.get_by_test_id("no-traces")).to_have_text("No traces match.")

    # the ok traces are not marked
    page.get_by_test_id("search-tags").fill("order.id=o-0")
    page.get_by_test_id("search-run").click()
    expect(page.get_by_test_id("trace-row")).to_have_count(1)
    expect(page.locator("[data-testid=trace-row].is-error")).to_have_count(0)

    # "Edit in TraceQL" carries the query to the other tab
    page.get_by_test_id("edit-in-traceql").click()
    expect(page.get_by_test_id("query-input")).to_have_value('{ .order.id = "o-0" }')
    assert "mode=traceql" in page.url
    expect(page.get_by_test_id("trace-row")).to_have_count(1)
    assert _row_ids(page) == {shop.ok_trace_ids[0]}


def test_traceql_search_bad_query_and_go_to_trace(shop, page):
    page.goto(f"{shop.url}/ui/traces?mode=traceql")
    page.get_by_test_id("query-input").fill(ERROR_QUERY)
    page.get_by_test_id("query-input").press("Enter")
    expect(page.get_by_test_id("trace-row")).to_have_count(6)
    assert _row_ids(page) == set(shop.error_trace_ids)
    shot(page, "traces-traceql")

    # a row opens its trace
    page.get_by_test_id("trace-row").first.locator("a").click()
    page.wait_for_url(re.compile(r"/ui/traces/[0-9a-f]{32}$"))
    assert page.url.rsplit("/", 1)[1] in shop.error_trace_ids
    page.go_back()

    # a query that does not parse: the server's words with a caret under its position
    bad = '{ resource.service.name = }'
    page.get_by_test_id("query-input").fill(bad)
    page.get_by_test_id("query-input").press("Enter")
    error = page.get_by_test_id("query-error")
    expect(error).to_contain_text("parse error at line 1, col 27")
    pointer = page.get_by_test_id("query-error-pointer").inner_text().split("\n")
    assert pointer[0] == bad and pointer[1] == " " * 26 + "^"
    expect(page.get_by_test_id("trace-row")).to_have_count(0)
    shot(page, "traces-error")

    # "Go to trace id": an existing one, one not found, and one the server rejects
    page.get_by_test_id("goto-trace-id").fill(shop.ok_trace_ids[0])
    page.get_by_test_id("goto-trace-id").press("Enter")
    page.wait_for_url(f"**/ui/traces/{shop.ok_trace_ids[0]}")
    expect(page.get_by_test_id("trace-span-count")).to_have_text("6")
    page.goto(f"{shop.url}/ui/traces/0123456789abcdef")
    expect(page.get_by_test_id("trace-not-found")).to_have_text("Trace 0123456789abcdef not found.")
    page.goto(f"{shop.url}/ui/traces/not-a-trace")
    expect(page.get_by_test_id("trace-error")).to_contain_text('invalid trace id "not-a-trace"')


def test_waterfall_tree_errors_critical_path_and_collapse(shop, page):
    tid = shop.error_trace_ids[0]
    page.goto(f"{shop.url}/ui/traces/{tid}")
    rows = _span_rows(page)
    expect(rows).to_have_count(6)
    got = [(r.locator("[data-testid=span-name]").inner_text(), int(r.get_attribute("data-depth"))) for r in rows.all()]
    assert got == TREE
    summary = page.get_by_test_id("trace-summary")
    expect(page.get_by_test_id("trace-span-count")).to_have_text("6")
    expect(page.get_by_test_id("trace-error-count")).to_have_text("3")  # charge, POST /api/checkout, the root
    expect(summary).to_contain_text("frontend (2)")
    expect(summary).to_contain_text("checkout (3)")
    expect(summary).to_contain_text("payments (1)")
    expect(page.get_by_test_id("trace-root-name")).to_have_text("GET /checkout")

    # errors highlighted; the ok spans are not
    statuses = [r.get_attribute("data-status") for r in rows.all()]
    assert statuses == ["error", "unset", "error", "unset", "unset", "error"]
    expect(_span_row(page, "charge")).to_have_class(re.compile("is-error"))
    # the critical path runs root -> ... -> charge and through SELECT orders (done before the charge)
    assert [r.get_attribute("data-critical") for r in rows.all()] == ["true"] * 6
    expect(_span_row(page, "charge").locator(".wf-critical")).to_have_count(1)
    shot(page, "trace-waterfall")
    page.get_by_test_id("critical-path-toggle").uncheck()
    expect(page.locator(".wf-critical")).to_have_count(0)
    assert [r.get_attribute("data-critical") for r in rows.all()] == ["false"] * 6
    page.get_by_test_id("critical-path-toggle").check()

    # collapsing the root hides its descendants; expanding brings them back
    rows.first.get_by_test_id("span-toggle").click()
    expect(rows).to_have_count(1)
    rows.first.get_by_test_id("span-toggle").click()
    expect(rows).to_have_count(6)
    _span_row(page, "POST charge").get_by_test_id("span-toggle").click()
    expect(rows).to_have_count(5)
    expect(_span_row(page, "charge")).to_have_count(0)
    page.get_by_test_id("expand-all").click()
    expect(rows).to_have_count(6)
    page.get_by_test_id("collapse-all").click()
    expect(rows).to_have_count(1)
    page.get_by_test_id("expand-all").click()

    # finding spans by attribute
    page.get_by_test_id("span-find").fill("postgresql")
    expect(page.get_by_test_id("span-find-count")).to_have_text("1 of 1")
    expect(page.locator("[data-testid=span-row].is-match")).to_have_count(1)
    expect(_span_row(page, "SELECT orders")).to_have_class(re.compile("is-match"))


def test_span_details_logs_and_metrics_links(shop, page):
    tid = shop.error_trace_ids[1]
    order = _order_of(shop, tid)
    page.goto(f"{shop.url}/ui/traces/{tid}")
    _span_row(page, "charge").click()
    details = page.get_by_test_id("span-details")
    expect(details.get_by_test_id("span-details-name")).to_have_text("charge")
    expect(details.get_by_test_id("span-exception")).to_contain_text("CardDeclined: card declined")
    expect(details.get_by_test_id("span-status")).to_have_text("Status error: card declined")
    events = details.get_by_test_id("span-events")
    expect(events).to_contain_text("exception")
    expect(events).to_contain_text("exception.message")
    expect(details.get_by_test_id("span-resource-attributes")).to_contain_text("payments")
    # the span's own log line, with its level, and the same line among the trace's logs
    line = f"payment declined for order {order}: card declined"
    span_logs = details.get_by_test_id("span-logs")
    expect(span_logs).to_contain_text(line)
    expect(span_logs).to_contain_text("ERROR")
    expect(span_logs.locator("li")).to_have_count(1)
    expect(page.get_by_test_id("trace-logs")).to_contain_text(line)
    expect(page.get_by_test_id("trace-logs")).to_contain_text(f"checkout page requested for order {order}")
    # the trace's lines carry their level and their span: a click on the span selects it
    trace_logs = page.get_by_test_id("trace-logs")
    declined = trace_logs.locator("li", has_text=line)
    expect(declined).to_contain_text("ERROR")
    expect(declined.get_by_test_id("log-span")).to_have_text("charge")
    expect(trace_logs.locator("li", has_text="payment failed for order")).to_contain_text("WARN")
    requested = trace_logs.locator("li", has_text=f"checkout page requested for order {order}")
    requested.get_by_test_id("log-span").click()
    expect(details.get_by_test_id("span-details-name")).to_have_text("GET /checkout")
    declined.get_by_test_id("log-span").click()
    expect(details.get_by_test_id("span-details-name")).to_have_text("charge")
    # the selected span is in the URL
    assert re.search(r"[?&]span=[0-9a-f]{16}", page.url)
    shot(page, "trace-span-details")

    href = details.get_by_test_id("span-logs-link").get_attribute("href")
    assert href.startswith("/ui/logs?query=") and tid in href
    assert details.get_by_test_id("span-service-link").get_attribute("href") == "/ui/services/payments"

    # another span's attributes
    _span_row(page, "SELECT orders").click()
    attrs = page.get_by_test_id("span-attributes")
    expect(attrs).to_contain_text("db.system")
    expect(attrs).to_contain_text("postgresql")
    expect(page.get_by_test_id("span-exception")).to_have_count(0)

    # service metrics: a PromQL over the span metrics for that service and operation
    _span_row(page, "charge").click()
    page.get_by_test_id("span-metrics-link").first.click()
    page.wait_for_url("**/ui/metrics?**")
    query = httpx.URL(page.url).params["query"]
    assert "traces_spanmetrics_calls_total" in query
    assert 'service="payments"' in query and 'span_name="charge"' in query


def _post_big_trace(shop) -> str:
    """Root + 99 steps x 100 items = 10,000 spans, sent as OTLP JSON in a few requests."""
    tid = os.urandom(16).hex()
    t0 = time.time_ns() - 10_000_000_000

    def span(i: int, parent: int | None, name: str, start: int, end: int) -> dict:
        s = {"traceId": tid, "spanId": f"{i + 1:016x}", "name": name, "kind": 1,
             "startTimeUnixNano": str(t0 + start), "endTimeUnixNano": str(t0 + end)}
        if parent is not None:
            s["parentSpanId"] = f"{parent + 1:016x}"
        return s

    spans = [span(0, None, "batch job", 0, 2_000_000_000)]
    for c in range(99):
        step = len(spans)
        spans.append(span(step, 0, f"step-{c}", c * 20_000_000, c * 20_000_000 + 19_000_000))
        for g in range(100):
            at = c * 20_000_000 + g * 180_000
            spans.append(span(len(spans), step, f"item-{c}-{g}", at, at + 150_000))
    assert len(spans) == 10_000
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "batch"}}]}
    with httpx.Client(timeout=120) as client:
        for k in range(0, len(spans), 2500):
            body = {"resourceSpans": [{"resource": resource,
                                       "scopeSpans": [{"scope": {"name": "big"}, "spans": spans[k:k + 2500]}]}]}
            client.post(f"{shop.node.otlp_http}/v1/traces", json=body).raise_for_status()
        deadline = time.monotonic() + 90
        while True:
            r = client.get(f"{shop.url}/api/traces/{tid}")
            if r.status_code == 200 and sum(len(ss.get("spans", [])) for b in r.json()["batches"]
                                            for ss in b["scopeSpans"]) == 10_000:
                return tid
            if time.monotonic() > deadline:
                pytest.fail(f"the 10,000-span trace is not readable: {r.status_code} {r.text[:200]}")
            time.sleep(0.5)


def test_ten_thousand_span_trace_stays_virtualized(shop, page):
    page.goto(f"{shop.url}/ui/traces")  # load the app first: the server is busy with the big trace later
    page.get_by_test_id("goto-trace-id").wait_for()
    tid = _post_big_trace(shop)
    page.get_by_test_id("goto-trace-id").fill(tid)
    page.get_by_test_id("goto-trace-id").press("Enter")
    expect(page.get_by_test_id("trace-span-count")).to_have_text("10000", timeout=60_000)
    rows = _span_rows(page)
    assert 0 < rows.count() < 300
    assert rows.first.locator("[data-testid=span-name]").inner_text() == "batch job"
    expect(page.get_by_text("No logs for this trace.")).to_be_visible(timeout=30_000)
    shot(page, "trace-10k")
    # scrolled to the bottom, the last span of the tree is there, and the DOM is still small
    page.get_by_test_id("span-list").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    last = _span_row(page, "item-98-99")
    expect(last).to_be_visible()
    assert last.get_attribute("data-depth") == "2"
    assert rows.count() < 300
    # collapsing the root leaves one row
    page.get_by_test_id("collapse-all").click()
    expect(rows).to_have_count(1)
